r"""The fast per-sample engine: the report's SGD with batch size 1, computed
exactly but quickly.

The algorithm is the one of ``mlp_lib.reference.train_per_sample`` (read that
first: each of its lines is an equation); ``tests/test_reference.py`` proves the
two equal to 1e-12 over thousands of steps. This module computes the same
numbers with fewer bytes moved and fewer calls:

* the bias is the last row of each weight matrix, ``[W; b]``, fed by a
  constant 1 kept at the end of a preallocated activation buffer (the report's
  bias trick without a ``concatenate`` per layer; the layouts are listed in
  ``mlp_lib.model``);
* only the nonzero pixels touch layer 1: MNIST is about 81% zeros, and the
  gradient of a weight row whose input is 0 is exactly 0, so those rows are
  neither read nor written (the input's own gradient is never computed). The
  image is a sparse row, and SciPy's compiled sparse-times-dense loops (the
  kernels behind ``scipy.sparse``) read those rows for the forward pass and
  update them in place, with no copy of the rows in and out;
* likewise, a ReLU unit whose output is 0 contributes nothing to the next
  layer, its weight row there does not change and its :math:`\delta` is 0, so
  a big layer (``GATHER_MIN_SIZE``) whose input is at most half active works on
  the rows of the active units only (after the first few thousand steps about
  a quarter of layer 1's units are active);
* when no unit of such a layer is active (the report's U[0,1) row kills all
  of layer 1 within a few steps), every :math:`\delta` below it is exactly 0
  and no weight there can change, so the backward pass stops at that layer;
* every rank-1 update :math:`[W; b] \mathrel{-}= \eta\, [a, 1]^\top \delta` is one
  in-place BLAS ``ger`` call, with no outer-product temporary.

Names follow ``mlp_lib.model``: ``z`` is a layer's pre-activation :math:`Z_l`,
``a`` its activation :math:`A_l`, ``delta`` :math:`\delta_l = \partial L/\partial Z_l`.
It differs from the reference only by floating-point rounding order (about
1e-16 relative per operation).
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager

import numpy as np
from scipy.linalg.blas import get_blas_funcs
from threadpoolctl import threadpool_limits

from ._blas import sparse_kernels, zeros_like
from .functional import ACTIVATIONS
from .lifecycle import (
    History,
    check_data,
    check_divergence_mode,
    closing,
    diverged,
    interrupted,
    interrupted_state,
    progress_bar,
    settings,
    sigint_flag,
)
from .model import MLP

__all__ = ["train_per_sample", "SPARSE_FIRST_LAYER", "GATHER_MIN_SIZE"]

csr_matvecs, csc_matvecs = sparse_kernels()
_max_reduce, _add_reduce = np.maximum.reduce, np.add.reduce

#: Layer 1 of the per-sample engine reads and updates the rows of the nonzero
#: pixels in place with SciPy's sparse kernels (faster than gathering those
#: rows, a gemv and a ger on the copy, and writing it back: README, Performance). False, or a SciPy without the kernels: the gather path.
SPARSE_FIRST_LAYER = csr_matvecs is not None

#: Weight matrices at least this big (entries, bias row included) gather the
#: rows of their active ReLU inputs in the per-sample engine; smaller ones are
#: cheaper to use whole (the gather and scatter cost two extra calls).
GATHER_MIN_SIZE = 65536


def _sparse_rows(images, bias_column=None):
    """CSR view of the images: for row i, ``columns[ptr[i]:ptr[i+1]]`` are the
    nonzero pixels and ``values[...]`` their intensities. With ``bias_column``,
    each row ends with that column and the value 1 (the bias input)."""
    n_rows, n_columns = images.shape
    nonzero = images != 0
    flat = np.flatnonzero(nonzero)  # row-major: rows in order
    extra = 0 if bias_column is None else 1
    ptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(nonzero.sum(axis=1) + extra, out=ptr[1:])
    pixel_slots = np.ones(ptr[-1], dtype=bool)
    if extra:
        pixel_slots[ptr[1:] - 1] = False  # each row's last slot: the bias
    columns = np.full(ptr[-1], -1 if bias_column is None else bias_column, dtype=np.int64)
    values = np.ones(ptr[-1], dtype=images.dtype)
    columns[pixel_slots] = flat % n_columns
    values[pixel_slots] = images.reshape(-1)[flat]
    return ptr, columns, values


@contextmanager
def _write_back(augmented, model):
    """Copy the trainer's ``[W; b]`` matrices into the model's own arrays (in
    place, so references stay valid) however the loop ends."""
    try:
        yield
    finally:
        for matrix, weights, bias in zip(augmented, model.weights, model.biases):
            weights[...] = matrix[:-1]
            bias[...] = matrix[-1]


def train_per_sample(
    model: MLP,
    images,
    labels,
    epochs=None,
    schedule=None,
    record_every=None,
    progress=None,
    on_divergence="raise",
    checkpoint=None,
    resume=None,
):
    """The report's training, fast: SGD with batch size 1 in the given order.

    Same results as ``mlp_lib.reference.train_per_sample`` (up to rounding),
    about two orders of magnitude faster.

    Parameters
    ----------
    model : MLP
        Trained in place.
    images : array (N, n_input); labels : int array (N,)
        Training data, used in this order every epoch (no shuffling).
    epochs : int, default 3
        Passes over the data; the report uses 3 (180,000 steps on MNIST).
    schedule : schedule, default ``Constant(0.01)``
        Learning rate by global step (``mlp_lib.schedules``).
    record_every : int, default 100
        Steps averaged into one entry of ``loss_curve`` (the report: 100).
    progress : bool, None or callable
        Progress bar; ``None`` shows it when stderr is a terminal; a callable
        ``progress(done, total)`` is told the steps done as the bar moves.
    on_divergence : {"raise", "stop", "continue"}
        What a NaN/inf loss does: raise ``DivergenceError``, stop and return
        (``history.diverged_at`` set), or carry on.
    checkpoint : path, optional
        Where Ctrl-C saves model and training state before raising
        ``TrainingInterrupted``.
    resume : TrainingState, optional
        Continue a run from ``load_checkpoint``'s state (same data; ``model``
        the checkpoint's model). The result is bit-identical to a run that was
        never interrupted.

    Returns
    -------
    History
    """
    images, labels = check_data(model, images, labels)
    check_divergence_mode(on_divergence)
    epochs, schedule, record_every, start, past, fingerprint = settings(
        "per-sample", images, labels, resume, epochs, schedule, record_every, 3, 0.01
    )
    n_samples = len(images)
    total = epochs * n_samples
    rate_list = np.asarray(schedule.values(total), dtype=np.float64).tolist()
    label_list = labels.tolist()  # Python ints and floats: cheaper in the loop

    # The report's bias trick without its concatenations: each layer's bias is
    # an extra last row of its weight matrix, fed by a constant 1 that sits at
    # the end of a preallocated activation buffer (and at the end of every
    # image's list of nonzero pixels). One gemv then gives A W + b and one ger
    # updates both W and b.
    ptr, columns, values = _sparse_rows(images, bias_column=model.layer_sizes[0])
    augmented = [np.vstack((w, b[None, :])) for w, b in zip(model.weights, model.biases)]
    buffers = [None] + [np.ones(n + 1, model.dtype) for n in model.layer_sizes[1:-1]]
    # layer 1 in place: [W_1; b_1] as a flat array for the sparse kernels
    sparse_first = SPARSE_FIRST_LAYER
    first_matrix, first_flat = augmented[0], augmented[0].reshape(-1)
    n_first_rows, n_first_units = first_matrix.shape
    ger = get_blas_funcs("ger", (augmented[0],))
    # views made once, not per step: [A_l, 1] buffers, their A_l parts, W_l
    # without its bias row, and the Fortran-ordered transposes ger updates
    activations = [None] + [buffer[:-1] for buffer in buffers[1:]]
    zeros = [None] + [zeros_like(a) for a in activations[1:]]  # for ReLU's maximum
    weights_only = [matrix[:-1] for matrix in augmented]
    transposed = [matrix.T for matrix in augmented]
    sigmoid_hidden = model.activation == "sigmoid"
    relu_hidden = model.activation == "relu"
    act, act_grad = ACTIVATIONS[model.activation]  # other activations: the generic path
    # ReLU zeroes units exactly, and a unit with A = 0 adds nothing to the next
    # layer's Z = A W + b, leaves its weight row unchanged (η · 0 · δ) and gets
    # δ = 0 (relu' = 0): like layer 1's blank pixels, its row need not be
    # touched. After a few thousand steps about 75% of layer 1's units are 0,
    # so a big layer whose input is at most half active works on a gathered
    # block of the active rows: fewer bytes moved, which is what a step costs.
    gather_layer = [
        relu_hidden and layer > 0 and matrix.size >= GATHER_MIN_SIZE
        for layer, matrix in enumerate(augmented)
    ]
    gathered = [None] * len(augmented)
    n_layers, dtype = model.n_layers, model.dtype

    losses = np.empty(total)
    losses[:start] = past
    history = History(loss_curve=np.empty(0), record_every=record_every, steps=start)
    bar = progress_bar(progress, total, "per-sample SGD", initial=start)
    try:
        # one BLAS thread: each call is far too small to gain from more, and
        # thread hand-offs cost more than the work (two threads make a step slower)
        # over="ignore": σ's e^{-z} = inf gives σ = 0, as it should (entering
        # errstate once, not once per layer and step, saves microseconds a step)
        with (
            sigint_flag() as interrupt,
            threadpool_limits(1),
            np.errstate(over="ignore"),
            closing(bar, history, losses, time.perf_counter()),
            _write_back(augmented, model),
        ):
            for step in range(start, total):
                if interrupt[0]:
                    raise KeyboardInterrupt
                lr = rate_list[step]
                i = step % n_samples
                # ---- forward: Z_l = A_{l-1} W_l + b_l, A_l = act(Z_l)
                image_span = ptr[i : i + 2]  # where image i's pixels are listed
                if sparse_first:  # Z_1 = Σ_p x_p [W_1; b_1]_p over x's nonzero pixels p
                    z = np.zeros(n_first_units, dtype)
                    csr_matvecs(
                        1, n_first_rows, n_first_units, image_span, columns, values, first_flat, z
                    )
                else:  # the same on a copy of those rows
                    lo, hi = image_span.tolist()
                    pixels, intensities = columns[lo:hi], values[lo:hi]
                    first_rows = first_matrix[pixels]
                    z = intensities @ first_rows
                for layer in range(1, n_layers):
                    a = activations[layer]  # [A_l, 1]: write A_l in place
                    if sigmoid_hidden:  # σ(z) = 1 / (1 + e^{-z})
                        np.negative(z, out=a)
                        np.exp(a, out=a)
                        a += 1
                        np.reciprocal(a, out=a)
                    elif relu_hidden:  # max(0, z)
                        np.maximum(z, zeros[layer], out=a)
                    else:
                        a[...] = act(z)
                    buffer = buffers[layer]
                    if gather_layer[layer]:
                        active = buffer.nonzero()[0]  # active units, and the bias's 1
                        if 2 * len(active) <= len(buffer):  # (take: a faster row gather)
                            inputs, block = buffer[active], augmented[layer].take(active, 0)
                            gathered[layer] = (active, inputs, block)
                            z = inputs @ block  # the zero rows add nothing
                            continue
                        gathered[layer] = None
                    z = buffer @ augmented[layer]
                # ---- loss: -ln softmax(z)_y = ln Σ e^{z_j - m} + m - z_y
                label = label_list[i]
                top = _max_reduce(z)  # z.max() and .sum() without
                exps = np.exp(z - top)  # their Python wrappers
                total_exp = _add_reduce(exps)
                loss = math.log(total_exp) + top - z[label]
                losses[step] = loss
                if not math.isfinite(loss):
                    diverged(
                        history,
                        step,
                        lr,
                        on_divergence,
                        model,
                        images[i],
                        [(m[:-1], m[-1]) for m in augmented],
                    )
                    if on_divergence == "stop":
                        break
                # ---- backward: δ_L = ŷ - y; grads from the weights before update
                delta = exps
                delta /= total_exp
                delta[label] -= 1
                for layer in range(n_layers - 1, 0, -1):
                    if gathered[layer] is not None:  # only the active units' rows
                        active, inputs, block = gathered[layer]
                        delta_active = block[:-1] @ delta  # relu' = 1 on them
                        ger(-lr, delta, inputs, a=block.T, overwrite_a=1)
                        augmented[layer][active] = block
                        if len(active) == 1:  # no unit active, only the bias: δ = 0 below,
                            break  # so no weight below changes (W + 0 = W)
                        delta = np.zeros(len(activations[layer]), dtype)  # relu' = 0 elsewhere
                        delta[active[:-1]] = delta_active
                        continue
                    below = buffers[layer]  # [A_{l-1}, 1]
                    delta_below = weights_only[layer] @ delta  # δ_l W_lᵀ
                    ger(
                        -lr, delta, below, a=transposed[layer], overwrite_a=1
                    )  # [W; b] -= η [a, 1]ᵀ δ
                    a = activations[layer]
                    if sigmoid_hidden:  # ⊙ σ'(z) = a (1 - a)
                        delta_below *= a
                        delta_below *= 1 - a
                    elif relu_hidden:  # ⊙ relu'(z) = [a > 0]
                        delta_below *= a > 0
                    else:
                        delta_below *= act_grad(a)
                    delta = delta_below
                else:  # (skipped after a break: δ_1 = 0)
                    if sparse_first:  # [W_1; b_1]_p += x_p (-η δ_1) for x's nonzero pixels p
                        delta *= -lr
                        csc_matvecs(
                            n_first_rows,
                            1,
                            n_first_units,
                            image_span,
                            columns,
                            values,
                            delta,
                            first_flat,
                        )
                    else:
                        ger(-lr, delta, intensities, a=first_rows.T, overwrite_a=1)
                        first_matrix[pixels] = first_rows
                history.steps = step + 1
                if history.steps % record_every == 0:
                    bar.update(record_every)
    except KeyboardInterrupt:
        state = interrupted_state(
            "per-sample", history, epochs, schedule, record_every, fingerprint
        )
        raise interrupted(history.steps, checkpoint, model, state, history) from None
    return history
