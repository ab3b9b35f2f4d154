r"""Checking hand-derived gradients against central differences.

For a scalar function :math:`f` of a parameter array :math:`\theta`, each
entry's derivative is estimated by

.. math::

    \frac{\partial f}{\partial \theta_i} \approx
    \frac{f(\theta + \epsilon e_i) - f(\theta - \epsilon e_i)}{2 \epsilon},

whose error is :math:`O(\epsilon^2)`. An analytic gradient :math:`g` is then
compared with the estimate :math:`n` by the relative error
:math:`\lVert g - n\rVert / (\lVert g\rVert + \lVert n\rVert)`: about 1e-10 for a
correct float64 gradient, of order 1 for a wrong one.
"""

from __future__ import annotations

import numpy as np

__all__ = ["numerical_gradient", "relative_error", "gradcheck", "layer_errors"]


def numerical_gradient(f, array, eps=1e-5):
    """Central differences of the scalar ``f()`` with respect to every entry of
    ``array``, which is changed in place (and restored) between calls."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + eps
        up = f()
        array[index] = saved - eps
        down = f()
        array[index] = saved
        grad[index] = (up - down) / (2 * eps)
    return grad


def relative_error(analytic, numeric):
    """``||a - n|| / (||a|| + ||n||)``; 0 when both are 0."""
    denom = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    return 0.0 if denom == 0 else float(np.linalg.norm(analytic - numeric) / denom)


def gradcheck(model, x, labels, eps=1e-5, **options):
    """The largest relative error between ``model.gradients`` and central
    differences of ``model.gradients(...)[0]`` (the loss), over every weight and
    bias array of a float64 ``model``. ``options`` go to ``model.gradients``
    (``weight_decay``; dropout needs an ``rng`` that is re-created per call,
    so pass a seed as ``rng_seed``)."""
    if model.dtype != np.float64:
        raise ValueError(
            "gradcheck needs a float64 model: central differences in float32 are too coarse"
        )
    seed = options.pop("rng_seed", None)

    def loss():
        rng = None if seed is None else np.random.default_rng(seed)
        return model.gradients(x, labels, rng=rng, **options)[0]

    rng = None if seed is None else np.random.default_rng(seed)
    _, weight_grads, bias_grads = model.gradients(x, labels, rng=rng, **options)
    return max(
        relative_error(g, numerical_gradient(loss, p, eps))
        for p, g in zip(model.weights + model.biases, weight_grads + bias_grads)
    )


def layer_errors(model, x, labels, backward=None, eps=1e-5):
    """Each layer's weights and biases checked apart: a list of ``(layer, "W" or
    "b", shape, relative error)``, layer 1 next to the input.

    ``backward(probs, cache, labels) -> (weight_grads, bias_grads)`` is the
    backward pass under test (default ``model.backward``): a hand-written one, or
    one with a derivative broken on purpose, is held against central differences
    of the model's own loss. A correct float64 gradient is off by about 1e-10; a
    wrong factor shows as an error of order 1e-2 to 1, from its layer down."""
    if model.dtype != np.float64:
        raise ValueError("layer_errors needs a float64 model (central differences)")
    backward = model.backward if backward is None else backward
    probs, cache = model.forward_cache(x, labels=labels)
    weight_grads, bias_grads = backward(probs, cache, labels)

    def loss():
        return model.forward_cache(x, labels=labels)[1]["loss"]

    rows = []
    for layer, (w, b) in enumerate(zip(model.weights, model.biases)):
        for kind, param, grad in (("W", w, weight_grads[layer]), ("b", b, bias_grads[layer])):
            error = relative_error(np.asarray(grad), numerical_gradient(loss, param, eps))
            rows.append((layer + 1, kind, param.shape, error))
    return rows
