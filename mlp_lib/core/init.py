r"""Weight initialisers, with the report's fan-in convention.

The report writes layer :math:`n` as :math:`H = W X` with
:math:`X = \mathrm{concat}(1, \cdot)`, so its fan-in counts the bias input:
:math:`X_{len} = n_{in} + 1`. With :math:`H_{len} = n_{out}`:

===========  ===================================================================================
``normal``   :math:`\mathcal N(0, \sigma)`, :math:`\sigma = 0.1` by default
``uniform``  :math:`\mathcal U[low, high)`, :math:`[0, 1)` by default (numpy's; docs/experiments.md)
``xavier``   :math:`\mathcal N\bigl(0, \sqrt{2 / (X_{len} + H_{len})}\bigr)`
``he``       :math:`\mathcal N\bigl(0, \sqrt{2 / X_{len}}\bigr)`
===========  ===================================================================================

(:math:`\mathcal N(0, s)` means standard deviation :math:`s`.) Biases start at 0.

Each layer draws a full ``(n_out, n_in + 1)`` matrix, as the report's code
does, and discards column 0 (the bias column, which the report then zeroes).
So the weights equal the report's ``W[:, 1:]`` for the same stream of random
numbers; they are stored transposed, ``(n_in, n_out)`` (see ``MLP``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["INITS", "init_std", "initialize"]

INITS = ("normal", "uniform", "xavier", "he")


def init_std(scheme, n_in, n_out, std=0.1):
    """Standard deviation of the normal schemes for one layer (bias input counted)."""
    fan_in = n_in + 1
    if scheme == "normal":
        return std
    if scheme == "xavier":
        return np.sqrt(2 / (fan_in + n_out))
    if scheme == "he":
        return np.sqrt(2 / fan_in)
    raise ValueError(
        f"init_std: {scheme!r} is not a normal scheme; choose from 'normal', 'xavier', 'he'"
    )


def initialize(layer_sizes, scheme, rng, dtype=np.float64, std=0.1, low=0.0, high=1.0):
    """Draw the weights and zero biases of an MLP.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``[n_input, n_hidden_1, ..., n_output]``.
    scheme : {"normal", "uniform", "xavier", "he"}
    rng : numpy.random.Generator
        The only source of randomness; layers draw in order 1, 2, ...
    dtype : float dtype
        Draws are made in float64 and then cast, so float32 weights are the
        float64 ones rounded.
    std : float
        Standard deviation for ``normal``.
    low, high : float
        Range for ``uniform``.

    Returns
    -------
    weights : list of arrays, ``weights[l]`` of shape ``(n_in, n_out)``
    biases : list of zero arrays, ``biases[l]`` of shape ``(n_out,)``
    """
    if scheme not in INITS:
        raise ValueError(f"unknown init {scheme!r}; valid: {', '.join(INITS)}")
    weights, biases = [], []
    for n_in, n_out in zip(layer_sizes[:-1], layer_sizes[1:]):
        shape = (n_out, n_in + 1)  # the report's W, bias column first
        if scheme == "uniform":
            full = rng.uniform(low, high, shape)
        else:
            full = rng.normal(0.0, init_std(scheme, n_in, n_out, std), shape)
        weights.append(np.ascontiguousarray(full[:, 1:].T, dtype=dtype))
        biases.append(np.zeros(n_out, dtype=dtype))
    return weights, biases
