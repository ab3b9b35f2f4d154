r"""The report's training loop as a textbook writes it: read this first.

Per-sample stochastic gradient descent (the report, §1.4.3). For every image
:math:`x` with label :math:`y`, in file order, at global step :math:`s`:

.. math::

    A_0 &= x                                                  &\quad (1)\\
    Z_l &= A_{l-1} W_l + b_l, \quad A_l = \mathrm{act}(Z_l)   &\quad (2)\\
    \hat y &= \mathrm{softmax}(Z_L), \quad L = -\ln \hat y_y  &\quad (3)\\
    \delta_L &= \hat y - e_y                                  &\quad (4)\\
    \partial L/\partial W_l &= A_{l-1}^\top \delta_l, \quad
    \partial L/\partial b_l = \delta_l                        &\quad (5)\\
    \delta_{l-1} &= (\delta_l W_l^\top) \odot \mathrm{act}'(Z_{l-1})  &\quad (6)\\
    W_l &\leftarrow W_l - \eta_s\, \partial L/\partial W_l, \quad
    b_l \leftarrow b_l - \eta_s\, \partial L/\partial b_l     &\quad (7)

with every gradient of a step computed from the weights *before* that step's
update, and :math:`\eta_s` the schedule's rate at step :math:`s`.
``MLP.forward_cache`` computes (1)–(3), ``MLP.backward`` (4)–(6) and
``SGD.step`` (7): the same objects the rest of the library uses.

This loop is slow (generic code for a batch of one, weight-sized gradients
allocated every step). ``mlp_lib.engines.per_sample`` is the engine that computes the
same numbers much faster (notebook 01 measures the two side by side), and the
tests prove the two agree to 1e-12 (``tests/test_reference.py``).
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..core.model import MLP
from ..core.optim import SGD
from ..core.schedules import Constant
from .lifecycle import DivergenceError, History, block_means, check_data, check_positive_int

__all__ = ["train_per_sample"]


def train_per_sample(model: MLP, images, labels, epochs=3, schedule=None, record_every=100):
    """Train ``model`` in place with per-sample SGD, the plain way.

    Parameters
    ----------
    model : MLP
    images : array (N, n_input); labels : int array (N,)
        Used in this order every epoch (no shuffling), as the report does.
    epochs : int, default 3
    schedule : schedule, default ``Constant(0.01)``
        Learning rate by global step (``mlp_lib.core.schedules``).
    record_every : int, default 100
        Steps averaged into one entry of ``History.loss_curve``.

    Returns
    -------
    History
        As ``mlp_lib.engines.per_sample.train_per_sample`` returns it. A NaN or
        infinite loss raises ``DivergenceError``.
    """
    images, labels = check_data(model, images, labels)
    epochs = check_positive_int("epochs", epochs)
    record_every = check_positive_int("record_every", record_every)
    schedule = Constant(0.01) if schedule is None else schedule
    n_steps = epochs * len(images)
    rates = schedule.values(n_steps)
    sgd = SGD()
    # The equation numbers stay in a column beside the code, unformatted:
    # fmt: off
    params = model.weights + model.biases                   # [W_1..W_L, b_1..b_L]
    losses = np.empty(n_steps)
    started = time.perf_counter()

    for step in range(n_steps):
        i = step % len(images)                              # file order, every epoch
        x, y = images[i:i + 1], labels[i:i + 1]             # one sample: a batch of one row
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging run: caught below
            probs, cache = model.forward_cache(x, labels=y) # (1)-(3): A_l, Z_l, ŷ, L
        losses[step] = cache["loss"]                        # L = -ln ŷ_y
        if not math.isfinite(losses[step]):
            raise DivergenceError(f"training diverged at step {step}: the loss is not "
                                  f"finite", step, rates[step], None)
        weight_grads, bias_grads = model.backward(probs, cache, y)    # (4)-(6)
        sgd.step(params, weight_grads + bias_grads,                   # (7)
                 model.dtype.type(rates[step]))
    # fmt: on

    return History(
        loss_curve=block_means(losses, record_every),
        record_every=record_every,
        losses=losses,
        steps=n_steps,
        seconds=time.perf_counter() - started,
    )
