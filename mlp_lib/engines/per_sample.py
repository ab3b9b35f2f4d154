r"""The fast per-sample engine: the report's SGD with batch size 1, compiled.

The algorithm is the one of ``mlp_lib.engines.reference.train_per_sample`` (read that
first: each of its lines is an equation, numbered (1)–(7)); this module is the
same computation as plain loops compiled by numba, and ``tests/test_reference.py``
proves the two equal to 1e-12 over thousands of steps. It is faster because it
moves fewer bytes and makes no calls:

* only the nonzero pixels touch layer 1: MNIST is about 81% zeros, and a weight
  row whose input is 0 neither adds to :math:`Z_1` nor changes (its gradient
  :math:`x_p \delta_1` is 0), so it is neither read nor written;
* likewise a ReLU unit whose output is 0 adds nothing to the next layer, its
  weight row there does not change and its :math:`\delta` is 0 (relu' = 0): only
  the rows of active units are touched. When no unit of a layer is active (the
  report's U[0,1) row kills every unit within a few steps), every :math:`\delta`
  below is exactly 0 and no weight there can change, so the step ends there;
* the backward pass and the update are one pass over each weight row: the row
  is read once for :math:`\delta_{l-1,k} = W_{l,k} \cdot \delta_l` (with the old
  weights, as the maths requires) and written once,
  :math:`W_{l,k} \mathrel{-}= \eta\, a_k\, \delta_l`; no gradient is stored.

Results are deterministic by construction: no BLAS call, no ``fastmath`` (the
compiler may not reorder a sum), no threads. Every sum runs in the order the
code gives, so the same row trains to the same bits on any CPU the compiler
targets (tested with ``NUMBA_CPU_NAME=generic`` against the host). The
kernels are compiled on first use and cached on disk (``cache=True``); a
read-only installation caches in numba's user folder instead.

Names follow ``mlp_lib.core.model``: ``z`` is a layer's pre-activation :math:`Z_l`,
``a`` its activation :math:`A_l`, ``delta`` :math:`\delta_l = \partial L/\partial Z_l`.
"""

from __future__ import annotations

from contextlib import contextmanager

import numba
import numpy as np
from numba import njit
from numba.typed import List

from ..core.functional import LEAKY_SLOPE
from ..core.model import MLP
from .lifecycle import Block, RunOptions, diverged, start_run

__all__ = ["train_per_sample", "nonzero_pixels"]

#: The hidden activations the kernel computes, by code (``functional.ACTIVATIONS``).
_ACTIVATION_CODES = {"relu": 0, "sigmoid": 1, "tanh": 2, "leaky_relu": 3}


@njit(cache=True, inline="always")
def _activate(code, v, one, zero, slope):
    """act(z): relu max(0, z), sigmoid 1 / (1 + e^{-z}), tanh, leaky relu (z or 0.01 z)."""
    if code == 0:
        return zero if v < zero else v
    if code == 1:
        return one / (one + np.exp(-v))
    if code == 2:
        return np.tanh(v)
    return v if v > zero else v * slope


@njit(cache=True, inline="always")
def _derivative(code, a, one, zero, slope):
    """act'(z) from the activation a = act(z): relu [a > 0], sigmoid a (1 - a),
    tanh 1 - a², leaky relu 1 or 0.01."""
    if code == 0:
        return one if a > zero else zero
    if code == 1:
        return a * (one - a)
    if code == 2:
        return one - a * a
    return one if a > zero else slope


@njit(cache=True, inline="always")
def _dot_and_step(row, delta, scale):
    """Σ_j row_j δ_j with the row as it was, then row_j += scale · δ_j: one pass.

    The sum keeps four partial sums, j = 0, 4, 8, ... in the first, 1, 5, 9, ...
    in the second, and so on, added up as (s0 + s1) + (s2 + s3) at the end: an
    order fixed by this code (so the compiler may run the four side by side in
    one vector register, and every CPU gets the same bits), not a sequential
    sum the processor would have to wait on at every element."""
    zero = row.dtype.type(0)
    s0 = s1 = s2 = s3 = zero
    n = row.size
    j = 0
    while j + 4 <= n:
        w0, w1, w2, w3 = row[j], row[j + 1], row[j + 2], row[j + 3]
        d0, d1, d2, d3 = delta[j], delta[j + 1], delta[j + 2], delta[j + 3]
        s0 += w0 * d0
        s1 += w1 * d1
        s2 += w2 * d2
        s3 += w3 * d3
        row[j] = w0 + scale * d0
        row[j + 1] = w1 + scale * d1
        row[j + 2] = w2 + scale * d2
        row[j + 3] = w3 + scale * d3
        j += 4
    while j < n:
        s0 += row[j] * delta[j]
        row[j] = row[j] + scale * delta[j]
        j += 1
    return (s0 + s1) + (s2 + s3)


@njit(cache=True, inline="always")
def _add_rows(z, w, rows, scales, n):
    """z += Σ_t scales[t] · w[rows[t]] for t < n: four rows a pass, added to z as
    ((s_0 w_0 + s_1 w_1) + (s_2 w_2 + s_3 w_3)), so z is read and written once per
    four rows instead of once per row (the order is this code's, on every CPU)."""
    t = 0
    while t + 4 <= n:
        s0, s1, s2, s3 = scales[t], scales[t + 1], scales[t + 2], scales[t + 3]
        r0, r1, r2, r3 = w[rows[t]], w[rows[t + 1]], w[rows[t + 2]], w[rows[t + 3]]
        for j in range(z.size):
            z[j] += (s0 * r0[j] + s1 * r1[j]) + (s2 * r2[j] + s3 * r3[j])
        t += 4
    while t < n:
        s, r = scales[t], w[rows[t]]
        for j in range(z.size):
            z[j] += s * r[j]
        t += 1


@njit(cache=True, inline="always")
def _sum_squares(v, n):
    """Σ_{j<n} v_j², in float64 (for the observer's norms only)."""
    total = 0.0
    for j in range(n):
        total += float(v[j]) * float(v[j])
    return total


@njit(cache=True, inline="always")
def _cross_entropy(z, e, label):
    """(L, Σ_j e^{z_j - m}): L = -ln softmax(z)_y = ln Σ_j e^{z_j - m} + m - z_y with
    m = max_j z_j; ``e`` gets e^{z_j - m} (softmax(z) once divided by the sum)."""
    top = z.max()
    total = 0.0
    for j in range(z.size):
        e[j] = np.exp(z[j] - top)
        total += e[j]
    return np.log(total) + top - z[label], total


@njit(cache=True, inline="always")
def _first_layer_step(w1, b1, d1, pixels, intensities, lo, hi, lr):
    """(6)-(7) for layer 1: W_1[p] -= η x_p δ_1 for the image's nonzero pixels p
    (``pixels[lo:hi]``, values ``intensities[lo:hi]``); b_1 -= η δ_1."""
    for t in range(lo, hi):
        scale, row = -lr * intensities[t], w1[pixels[t]]
        for j in range(d1.size):
            row[j] += scale * d1[j]
    for j in range(b1.size):
        b1[j] -= lr * d1[j]


@njit(cache=True)
def _steps(
    weights,
    biases,
    z,
    a,
    delta,
    picked_rows,
    picked_values,
    code,
    ptr,
    pixels,
    intensities,
    labels,
    rates,
    losses,
    start,
    stop,
    stop_on_nonfinite,
    stats,
):
    """Per-sample SGD steps ``start`` .. ``stop - 1`` on the model's own arrays, in
    place. ``z[l]``, ``a[l]``, ``delta[l]`` are layer l's buffers (0-based: layer 1
    is index 0); image i's nonzero pixels are ``pixels[ptr[i]:ptr[i + 1]]`` with
    values ``intensities[...]``. Returns the step it stopped at: ``stop``, or the
    step whose loss was not finite (its weights untouched) if ``stop_on_nonfinite``.

    ``stats`` (float64, shape (2, layers), or size 0 for nothing) gains, per step,
    ``stats[0, l] += ‖∂L/∂W_l‖`` and, for a hidden layer, ``stats[1, l] +=`` the
    fraction of its units that are nonzero: what an observer is told. They are
    read from the step's own buffers and change nothing the step computes."""
    n_layers = len(weights)
    n_samples = labels.size
    one, zero = rates.dtype.type(1), rates.dtype.type(0)
    slope = rates.dtype.type(LEAKY_SLOPE)
    relu = code == 0  # a ReLU unit at 0 is skipped: it adds nothing and learns nothing
    picked = np.zeros(n_layers, np.int64)  # how many units of each layer are nonzero
    observe = stats.size > 0
    for step in range(start, stop):
        i = step % n_samples  # the images in file order, every epoch
        lr = rates[step]
        lo, hi = ptr[i], ptr[i + 1]

        # (1) Z_1 = x W_1 + b_1 = b_1 + Σ_p x_p W_1[p], over the image's nonzero pixels p
        z1, w1 = z[0], weights[0]
        z1[:] = biases[0]
        _add_rows(z1, w1, pixels[lo:hi], intensities[lo:hi], hi - lo)
        for layer in range(1, n_layers):
            z_in, a_in, z_out, w = z[layer - 1], a[layer - 1], z[layer], weights[layer]
            rows, values = picked_rows[layer - 1], picked_values[layer - 1]
            # (2) A_l = act(Z_l), and the units k with A_l[k] != 0 (a unit at 0 adds 0)
            n = 0
            for k in range(a_in.size):
                a_k = _activate(code, z_in[k], one, zero, slope)
                a_in[k] = a_k
                if a_k != 0:
                    rows[n], values[n] = k, a_k
                    n += 1
            picked[layer - 1] = n
            if observe:
                stats[1, layer - 1] += n / a_in.size
            # (1) Z_{l+1} = A_l W_{l+1} + b_{l+1} = b + Σ_k A_l[k] W_{l+1}[k]
            z_out[:] = biases[layer]
            _add_rows(z_out, w, rows, values, n)

        # (3) L = -ln softmax(Z_L)_y
        z_last, d_last, label = z[n_layers - 1], delta[n_layers - 1], labels[i]
        loss, total = _cross_entropy(z_last, d_last, label)
        losses[step] = loss
        if stop_on_nonfinite and not np.isfinite(loss):
            return step

        # (4) δ_L = ∂L/∂Z_L = ŷ - y
        for j in range(d_last.size):
            d_last[j] /= total
        d_last[label] -= 1

        # (5)-(7), fused: for each input unit k of layer l, with the weights before
        # this step, δ_{l-1}[k] = (W_l[k] · δ_l) act'(a_k), then W_l[k] -= η a_k δ_l;
        # b_l -= η δ_l. An inactive ReLU unit: δ = 0, and its row stays (η 0 δ = 0).
        reaches_first = True
        for layer in range(n_layers - 1, 0, -1):
            w, d, a_in, d_in = weights[layer], delta[layer], a[layer - 1], delta[layer - 1]
            if observe:  # ∂L/∂W_l = A_{l-1}ᵀ δ_l, an outer product: ‖·‖ = ‖A_{l-1}‖ ‖δ_l‖
                values, n = picked_values[layer - 1], picked[layer - 1]
                stats[0, layer] += np.sqrt(_sum_squares(values, n) * _sum_squares(d, d.size))
            if relu:  # the active units only (relu' = 1 there); δ = 0 at the others
                rows, values, n = (
                    picked_rows[layer - 1],
                    picked_values[layer - 1],
                    picked[layer - 1],
                )
                d_in[:] = 0
                for t in range(n):
                    k = rows[t]
                    d_in[k] = _dot_and_step(w[k], d, -lr * values[t])  # δ_l W_lᵀ at unit k
            else:
                n = a_in.size
                for k in range(n):
                    a_k = a_in[k]
                    back = _dot_and_step(w[k], d, -lr * a_k)  # δ_l W_lᵀ at unit k
                    d_in[k] = back * _derivative(code, a_k, one, zero, slope)  # ⊙ act'(z)
            b = biases[layer]
            for j in range(b.size):
                b[j] -= lr * d[j]
            if n == 0:  # no active unit: δ = 0 below, so no weight there changes (W - η·0 = W)
                reaches_first = False
                break
        if reaches_first:
            d1 = delta[0]
            if observe:  # ‖∂L/∂W_1‖ = ‖x‖ ‖δ_1‖ (no step reaching here: 0, nothing added)
                x_sq = _sum_squares(intensities[lo:hi], hi - lo)
                stats[0, 0] += np.sqrt(x_sq * _sum_squares(d1, d1.size))
            _first_layer_step(w1, biases[0], d1, pixels, intensities, lo, hi, lr)
    return stop


@contextmanager
def _lanes_in_vector_registers():
    """Compile with LLVM's SLP vectorizer on (numba leaves it off by default): it packs
    ``_dot_and_step``'s four lanes into one vector register. Vectorizing this way
    reorders nothing, so the bits stay those of the code's order. Only the first
    call per dtype compiles (or loads the on-disk cache) under this setting."""
    before = numba.config.SLP_VECTORIZE
    numba.config.SLP_VECTORIZE = 1
    try:
        yield
    finally:
        numba.config.SLP_VECTORIZE = before


def nonzero_pixels(images):
    """The images as sparse rows: image i's nonzero pixels are
    ``pixels[ptr[i]:ptr[i+1]]`` (in increasing order) with the values
    ``intensities[...]``."""
    nonzero = images != 0
    ptr = np.zeros(len(images) + 1, dtype=np.int64)
    np.cumsum(nonzero.sum(axis=1), out=ptr[1:])
    rows, pixels = np.nonzero(nonzero)
    return ptr, pixels.astype(np.int64), np.ascontiguousarray(images[rows, pixels])


def _tell(observer, stats, losses, rates, start, stop):
    """Give ``observer`` the block of steps ``start`` .. ``stop - 1`` (the kernel
    summed its norms and fractions into ``stats``), then clear ``stats``."""
    n = stop - start
    grad_norm = tuple(float(g) / n for g in stats[0])
    active = tuple(float(f) / n for f in stats[1, :-1])
    stats[:] = 0
    loss = float(losses[start:stop].mean())
    observer(Block(stop, loss, float(rates[stop - 1]), grad_norm, active))


@contextmanager
def _contiguous(model):
    """The model's weights and biases as C-ordered arrays the kernel can update in
    place: the model's own arrays when they are (nearly always), else copies that are
    written back however the loop ends."""
    arrays = [np.ascontiguousarray(p) for p in model.weights + model.biases]
    try:
        yield arrays[: model.n_layers], arrays[model.n_layers :]
    finally:
        for mine, theirs in zip(arrays, model.weights + model.biases):
            if mine is not theirs:
                theirs[...] = mine


def train_per_sample(
    model: MLP,
    images,
    labels,
    epochs=None,
    schedule=None,
    **run_options,
):
    """The report's training, fast: SGD with batch size 1 in the given order.

    Same results as ``mlp_lib.engines.reference.train_per_sample`` (up to rounding; the
    same bits on any CPU), compiled (numba).

    Parameters
    ----------
    model : MLP
        Trained in place (float32 or float64; any activation of
        ``functional.ACTIVATIONS``).
    images : array (N, n_input); labels : int array (N,)
        Training data, used in this order every epoch (no shuffling).
    epochs : int, default 3
        Passes over the data; the report uses 3 (180,000 steps on MNIST).
    schedule : schedule, default ``Constant(0.01)``
        Learning rate by global step (``mlp_lib.core.schedules``).
    **run_options
        ``record_every``, ``progress``, ``on_divergence``, ``checkpoint``,
        ``resume``, ``observer``: how the run is recorded, shown, guarded,
        saved, resumed and watched, the same for every trainer (see
        ``mlp_lib.engines.lifecycle.RunOptions``).

    Returns
    -------
    History
    """
    options = RunOptions.given("train_per_sample", run_options)
    images, labels, run = start_run(
        "per-sample", model, images, labels, epochs, schedule, options, (3, 0.01)
    )
    if model.activation not in _ACTIVATION_CODES:
        raise ValueError(f"the per-sample engine has no kernel for {model.activation!r}")
    n_samples, dtype, history = len(images), model.dtype, run.history
    rates = np.asarray(run.schedule.values(run.total), dtype=dtype)
    ptr, pixels, intensities = nonzero_pixels(images)
    sizes = model.layer_sizes[1:]
    z = List([np.zeros(n, dtype) for n in sizes])  # Z_l, A_l, δ_l of each layer
    a = List([np.zeros(n, dtype) for n in sizes[:-1]])
    picked_rows = List([np.zeros(n, np.int64) for n in sizes[:-1]])  # a layer's nonzero units
    picked_values = List([np.zeros(n, dtype) for n in sizes[:-1]])
    delta = List([np.zeros(n, dtype) for n in sizes])
    data = (ptr, pixels, intensities, labels.astype(np.int64), rates, run.losses)
    on_divergence, observer = options.on_divergence, options.observer
    stop_on_nonfinite = on_divergence != "continue"
    stats = np.zeros((2, model.n_layers) if observer is not None else (0, 0))
    with (
        run.running(model, "per-sample SGD") as (interrupt, bar),
        _contiguous(model) as (weights, biases),
    ):
        weights, biases = List(weights), List(biases)
        net = (weights, biases, z, a, delta, picked_rows, picked_values)
        code = _ACTIVATION_CODES[model.activation]
        with _lanes_in_vector_registers():  # no step: compiles, or loads the cache
            _steps(*net, code, *data, run.start, run.start, stop_on_nonfinite, stats)
        step, record_every = run.start, run.record_every
        while step < run.total:  # blocks of record_every steps; Ctrl-C is seen between them
            if interrupt[0]:
                raise KeyboardInterrupt
            block_end = min(run.total, (step // record_every + 1) * record_every)
            reached = _steps(*net, code, *data, step, block_end, stop_on_nonfinite, stats)
            history.steps = reached
            if reached < block_end:  # a loss that is not finite, before its update
                sample = images[reached % n_samples]
                pairs = list(zip(weights, biases))
                diverged(
                    history, reached, float(rates[reached]), on_divergence, model, sample, pairs
                )
                break
            if not stop_on_nonfinite:
                bad = ~np.isfinite(run.losses[step:reached])
                if bad.any():
                    history.diverged_at = step + int(np.flatnonzero(bad)[-1])
            if reached % record_every == 0:
                bar.update(record_every)
            if observer is not None:
                _tell(observer, stats, run.losses, rates, step, reached)
            step = reached
    return history
