r"""Training loops: the report's per-sample SGD, mini-batch SGD, and ``evaluate``.

Per-sample SGD (the report, §1.4.3): for each image in file order, forward,
backward (all gradients from the *current* weights), then for every layer

.. math::

    W_l \leftarrow W_l - \eta_s \, a_{l-1}^\top \delta_l, \qquad
    b_l \leftarrow b_l - \eta_s \, \delta_l,

with :math:`\eta_s` the schedule's rate at global step :math:`s`. The loss of
every step is kept, and its mean over each block of ``record_every`` steps
forms ``loss_curve`` (the report prints that mean every 100 steps).

The per-sample engine computes exactly these equations, but fast:

* the bias is the last row of each weight matrix, fed by a constant 1 kept at
  the end of a preallocated activation buffer (the report's bias trick without
  a ``concatenate`` per layer);
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
* every rank-1 update :math:`W \mathrel{-}= \eta\, a \delta^\top` is one in-place
  BLAS ``ger`` call, with no outer-product temporary.

It differs from the textbook loop only by floating-point rounding order
(about 1e-16 relative per operation); ``tests/test_train.py`` checks it against
a plain loop written from SPEC.md.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg.blas import get_blas_funcs
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from .functional import ACTIVATIONS, cross_entropy
from .checkpoint import TrainingState, data_fingerprint, save_checkpoint
from .model import MLP, _zeros_like, as_generator
from .optim import SGD
from .schedules import Constant, schedule_from_dict, schedule_to_dict

__all__ = ["History", "DivergenceError", "TrainingInterrupted", "train_per_sample",
           "train_minibatch", "evaluate"]


def _sparse_kernels():
    """SciPy's compiled ``csr_matvecs`` and ``csc_matvecs`` (the loops behind
    scipy.sparse's products; a private module), if present and behaving as the
    per-sample engine expects on a 2×2 example; else ``(None, None)``."""
    try:
        from scipy.sparse._sparsetools import csc_matvecs, csr_matvecs
        span, column, value = np.array([0, 1]), np.array([1]), np.array([2.0])
        matrix, row = np.array([[1.0, 1.0], [3.0, 4.0]]), np.zeros(2)
        csr_matvecs(1, 2, 2, span, column, value, matrix.reshape(-1), row)  # row = 2 m_1
        csc_matvecs(2, 1, 2, span, column, value, row, matrix.reshape(-1))  # m_1 += 2 row
    except Exception:   # pragma: no cover - missing or changed: gather rows instead
        return None, None
    if row.tolist() == [6.0, 8.0] and matrix.tolist() == [[1.0, 1.0], [15.0, 20.0]]:
        return csr_matvecs, csc_matvecs
    return None, None   # pragma: no cover


csr_matvecs, csc_matvecs = _sparse_kernels()


@dataclass
class History:
    """What a training run recorded.

    Attributes
    ----------
    loss_curve : ndarray
        Mean training loss of each complete block of ``record_every`` steps.
    losses : ndarray
        The loss of every step taken (including steps before a resume).
    record_every : int
        Steps per entry of ``loss_curve``.
    steps : int
        Steps done (per-sample: images; mini-batch: batches), counting from the
        start of the run, resumed or not.
    seconds : float
        Wall time of this call's loop.
    diverged_at : int or None
        The step whose loss was not finite, if training stopped there.
    epoch_loss : list of float
        Mini-batch only: mean batch loss of each epoch completed in this call.
    val_loss, val_accuracy : list of float
        Mini-batch with a validation set: figures after each epoch.
    best_epoch : int or None
        With a validation set: the epoch (0-based) whose weights were kept.
    """

    loss_curve: np.ndarray
    record_every: int
    losses: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    steps: int = 0
    seconds: float = 0.0
    diverged_at: int | None = None
    epoch_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_accuracy: list = field(default_factory=list)
    best_epoch: int | None = None


class DivergenceError(FloatingPointError):
    """The training loss became NaN or infinite. ``history`` holds what was
    recorded up to there; the model keeps the weights it had before that step."""

    def __init__(self, message, step, lr, history):
        super().__init__(message)
        self.step, self.lr, self.history = step, lr, history


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training. The model holds the weights after the last
    complete step; ``checkpoint`` is the file saved for resuming (or None)."""

    def __init__(self, message, step, checkpoint, history):
        super().__init__(message)
        self.step, self.checkpoint, self.history = step, checkpoint, history


def _progress(progress, total, desc, initial=0):
    """A tqdm bar; ``progress=None`` shows it only when stderr is a terminal."""
    if progress is None:
        progress = sys.stderr.isatty()
    return tqdm(total=total, initial=initial, desc=desc, unit="step", unit_scale=True,
                disable=not progress, mininterval=0.5, leave=False)


def _check_data(model, images, labels):
    images = model._as_batch(images)
    labels = model._check_labels(labels, len(images))
    if len(images) == 0:
        raise ValueError("no training images")
    return np.ascontiguousarray(images), labels


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _settings(trainer, images, labels, resume, epochs, schedule, record_every,
              default_epochs, default_lr, batch_size=None):
    """Validated (epochs, schedule, record_every, start_step, past_losses).

    On resume the state's settings are used; any that the caller also gave
    must agree with them."""
    fingerprint = data_fingerprint(images, labels)
    if resume is None:
        epochs = _check_positive_int("epochs", default_epochs if epochs is None else epochs)
        schedule = Constant(default_lr) if schedule is None else schedule
        if not callable(schedule) or not hasattr(schedule, "values"):
            raise ValueError(f"schedule must be a schedule from mlp_lib.schedules, "
                             f"got {schedule!r}")
        record_every = _check_positive_int("record_every",
                                           100 if record_every is None else record_every)
        return epochs, schedule, record_every, 0, np.empty(0), fingerprint
    if not isinstance(resume, TrainingState):
        raise ValueError(f"resume must be a TrainingState from load_checkpoint, got "
                         f"{type(resume).__name__}")
    saved = {"trainer": resume.trainer, "epochs": resume.epochs,
             "record_every": resume.record_every, "data": resume.fingerprint,
             "batch_size": resume.batch_size}
    given = {"trainer": trainer, "epochs": epochs if epochs is not None else resume.epochs,
             "record_every": record_every if record_every is not None else resume.record_every,
             "data": fingerprint, "batch_size": batch_size}
    if schedule is not None and schedule_to_dict(schedule) != resume.schedule:
        raise ValueError(f"resume: schedule {schedule!r} differs from the checkpoint's "
                         f"{resume.schedule}")
    for key in saved:
        if saved[key] != given[key]:
            raise ValueError(f"resume: {key} {given[key]!r} differs from the checkpoint's "
                             f"{saved[key]!r} (resume with the same data and settings)")
    return (resume.epochs, schedule_from_dict(resume.schedule), resume.record_every,
            resume.step, np.asarray(resume.losses, dtype=np.float64), fingerprint)


def _bad_layer(params, sample, activation):
    """The first layer (1-based) whose weights or output on ``sample`` are not finite."""
    act = ACTIVATIONS[activation][0]
    hidden = sample
    with np.errstate(all="ignore"):
        for layer, (weights, bias) in enumerate(params, start=1):
            if not (np.isfinite(weights).all() and np.isfinite(bias).all()):
                return layer, "weights"
            hidden = hidden @ weights + bias
            if not np.isfinite(hidden).all():
                return layer, "output"
            hidden = act(hidden) if layer < len(params) else hidden
    return len(params), "loss"


def _diverged(history, step, lr, on_divergence, model, sample, params):
    """Record a non-finite loss at ``step``; raise unless asked to go on.
    ``params`` are the (weights, bias) pairs in use, ``sample`` the input rows."""
    history.diverged_at = step
    if on_divergence == "raise":
        layer, what = _bad_layer(params, sample, model.activation)
        raise DivergenceError(
            f"training diverged at step {step} (learning rate {lr:g}): the loss is not "
            f"finite; the first non-finite {what} is in layer {layer}. The model keeps "
            f"its weights from before step {step}. Lower the learning rate, or pass "
            f"on_divergence='stop' or 'continue'.", step, lr, history)


@contextmanager
def _closing(bar, history, losses, start_time):
    """Close the bar and complete ``history`` however the loop ends (including
    an error or Ctrl-C): time, losses and the block means of the steps taken."""
    try:
        yield
    finally:
        bar.close()
        history.seconds = time.perf_counter() - start_time
        history.losses = losses[:history.steps].copy()
        n_blocks = history.steps // history.record_every
        history.loss_curve = losses[:n_blocks * history.record_every].reshape(
            n_blocks, history.record_every).mean(axis=1)


@contextmanager
def _sigint_flag():
    """Turn Ctrl-C into a flag that the loop checks between steps, so that an
    interruption never leaves a step half applied. Yields a one-item list."""
    flag = [False]
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        flag[0] = True
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupted(step, checkpoint, model, state, history):
    """Save a checkpoint (if a path was given) and build the exception."""
    if checkpoint is not None:
        save_checkpoint(checkpoint, model, state)
        how = (f"checkpoint saved to {checkpoint}; resume with "
               f"load_checkpoint({str(checkpoint)!r}) and resume=state "
               f"(CLI: python -m mlp_lib train --resume {checkpoint})")
    else:
        how = "no checkpoint path was given, so nothing was saved"
    return TrainingInterrupted(f"training interrupted after step {step}: {how}",
                               step, checkpoint, history)


#: Layer 1 of the per-sample engine reads and updates the rows of the nonzero
#: pixels in place with SciPy's sparse kernels (measured: 46 µs per step
#: against 73 µs for gathering those rows, a gemv and a ger on the copy, and
#: writing it back). False, or a SciPy without the kernels: the gather path.
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
    flat = np.flatnonzero(nonzero)                   # row-major: rows in order
    extra = 0 if bias_column is None else 1
    ptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(nonzero.sum(axis=1) + extra, out=ptr[1:])
    pixel_slots = np.ones(ptr[-1], dtype=bool)
    if extra:
        pixel_slots[ptr[1:] - 1] = False             # each row's last slot: the bias
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


def _check_divergence_mode(on_divergence):
    if on_divergence not in ("raise", "stop", "continue"):
        raise ValueError(f"on_divergence must be 'raise', 'stop' or 'continue', "
                         f"got {on_divergence!r}")


def train_per_sample(model: MLP, images, labels, epochs=None, schedule=None,
                     record_every=None, progress=None, on_divergence="raise",
                     checkpoint=None, resume=None):
    """The report's training: SGD with batch size 1 in the given order.

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
    progress : bool or None
        Progress bar; ``None`` shows it when stderr is a terminal.
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
    images, labels = _check_data(model, images, labels)
    _check_divergence_mode(on_divergence)
    epochs, schedule, record_every, start, past, fingerprint = _settings(
        "per-sample", images, labels, resume, epochs, schedule, record_every, 3, 0.01)
    n_samples = len(images)
    total = epochs * n_samples
    rate_list = np.asarray(schedule.values(total), dtype=np.float64).tolist()
    label_list = labels.tolist()          # Python ints and floats: cheaper in the loop

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
    zeros = [None] + [_zeros_like(a) for a in activations[1:]]    # for ReLU's maximum
    weights_only = [matrix[:-1] for matrix in augmented]
    transposed = [matrix.T for matrix in augmented]
    sigmoid_hidden = model.activation == "sigmoid"
    relu_hidden = model.activation == "relu"
    act, act_grad = ACTIVATIONS[model.activation]   # other activations: the generic path
    # ReLU zeroes units exactly, and a unit with A = 0 adds nothing to the next
    # layer's Z = A W + b, leaves its weight row unchanged (η · 0 · δ) and gets
    # δ = 0 (relu' = 0): like layer 1's blank pixels, its row need not be
    # touched. After a few thousand steps about 75% of layer 1's units are 0,
    # so a big layer whose input is at most half active works on a gathered
    # block of the active rows: fewer bytes moved, which is what a step costs.
    gather_layer = [relu_hidden and layer > 0 and matrix.size >= GATHER_MIN_SIZE
                    for layer, matrix in enumerate(augmented)]
    gathered = [None] * len(augmented)
    n_layers, dtype = model.n_layers, model.dtype

    losses = np.empty(total)
    losses[:start] = past
    history = History(loss_curve=np.empty(0), record_every=record_every, steps=start)
    bar = _progress(progress, total, "per-sample SGD", initial=start)
    try:
        # one BLAS thread: each call is far too small to gain from more, and
        # thread hand-offs cost more than the work (measured: ~2x slower with two)
        with _sigint_flag() as interrupt, threadpool_limits(1), \
                _closing(bar, history, losses, time.perf_counter()), \
                _write_back(augmented, model):
            for step in range(start, total):
                if interrupt[0]:
                    raise KeyboardInterrupt
                lr = rate_list[step]
                i = step % n_samples
                # ---- forward: Z_l = A_{l-1} W_l + b_l, A_l = act(Z_l)
                image_span = ptr[i:i + 2]                # where image i's pixels are listed
                if sparse_first:      # Z_1 = Σ_p x_p [W_1; b_1]_p over x's nonzero pixels p
                    hidden = np.zeros(n_first_units, dtype)
                    csr_matvecs(1, n_first_rows, n_first_units, image_span, columns, values,
                                first_flat, hidden)
                else:                 # the same on a copy of those rows
                    lo, hi = image_span.tolist()
                    pixels, intensities = columns[lo:hi], values[lo:hi]
                    first_rows = first_matrix[pixels]
                    hidden = intensities @ first_rows
                for layer in range(1, n_layers):
                    activation = activations[layer]      # [A_l, 1]: write A_l in place
                    if sigmoid_hidden:                   # σ(z) = 1 / (1 + e^{-z})
                        np.negative(hidden, out=activation)
                        with np.errstate(over="ignore"):     # e^{-z} = inf gives σ = 0
                            np.exp(activation, out=activation)
                        activation += 1
                        np.reciprocal(activation, out=activation)
                    elif relu_hidden:                    # max(0, z)
                        np.maximum(hidden, zeros[layer], out=activation)
                    else:
                        activation[...] = act(hidden)
                    buffer = buffers[layer]
                    if gather_layer[layer]:
                        active = np.flatnonzero(buffer)          # active units, and the bias's 1
                        if 2 * len(active) <= len(buffer):
                            inputs, block = buffer[active], augmented[layer][active]
                            gathered[layer] = (active, inputs, block)
                            hidden = inputs @ block              # the zero rows add nothing
                            continue
                        gathered[layer] = None
                    hidden = buffer @ augmented[layer]
                # ---- loss: -ln softmax(z)_y = ln Σ e^{z_j - m} + m - z_y
                label = label_list[i]
                top = hidden.max()
                exps = np.exp(hidden - top)
                total_exp = exps.sum()
                loss = math.log(total_exp) + top - hidden[label]
                losses[step] = loss
                if not math.isfinite(loss):
                    _diverged(history, step, lr, on_divergence, model, images[i],
                              [(m[:-1], m[-1]) for m in augmented])
                    if on_divergence == "stop":
                        break
                # ---- backward: δ_L = ŷ - y; grads from the weights before update
                grad = exps
                grad /= total_exp
                grad[label] -= 1
                for layer in range(n_layers - 1, 0, -1):
                    if gathered[layer] is not None:      # only the active units' rows
                        active, inputs, block = gathered[layer]
                        grad_active = block[:-1] @ grad                   # relu' = 1 on them
                        ger(-lr, grad, inputs, a=block.T, overwrite_a=1)
                        augmented[layer][active] = block
                        grad = np.zeros(len(activations[layer]), dtype)   # relu' = 0 elsewhere
                        grad[active[:-1]] = grad_active
                        continue
                    below = buffers[layer]                                # [A_{l-1}, 1]
                    grad_below = weights_only[layer] @ grad               # δ_l W_lᵀ
                    ger(-lr, grad, below, a=transposed[layer], overwrite_a=1)  # [W; b] -= η [a, 1]ᵀ δ
                    activation = activations[layer]
                    if sigmoid_hidden:                                    # ⊙ σ'(z) = a (1 - a)
                        grad_below *= activation
                        grad_below *= 1 - activation
                    elif relu_hidden:                                     # ⊙ relu'(z) = [a > 0]
                        grad_below *= activation > 0
                    else:
                        grad_below *= act_grad(activation)
                    grad = grad_below
                if sparse_first:      # [W_1; b_1]_p += x_p (-η δ_1) for x's nonzero pixels p
                    grad *= -lr
                    csc_matvecs(n_first_rows, 1, n_first_units, image_span, columns, values,
                                grad, first_flat)
                else:
                    ger(-lr, grad, intensities, a=first_rows.T, overwrite_a=1)
                    first_matrix[pixels] = first_rows
                history.steps = step + 1
                if history.steps % record_every == 0:
                    bar.update(record_every)
    except KeyboardInterrupt:
        state = TrainingState("per-sample", history.steps, epochs, schedule_to_dict(schedule),
                              record_every, fingerprint, history.losses)
        raise _interrupted(history.steps, checkpoint, model, state, history) from None
    return history


def _max_norm(weights, limit):
    """Rescale each unit's incoming weights (a column of ``W``) to norm <= limit."""
    for w in weights:
        norms = np.sqrt(np.einsum("ij,ij->j", w, w))
        w *= np.minimum(1, limit / np.maximum(norms, 1e-12)).astype(w.dtype)


def train_minibatch(model: MLP, images, labels, epochs=None, batch_size=128,
                    schedule=None, seed=None, record_every=None, progress=None,
                    on_divergence="raise", checkpoint=None, resume=None, optimizer=None,
                    weight_decay=0.0, dropout=0.0, input_dropout=0.0, max_norm=None,
                    augment=None, validation=None, patience=None):
    """Mini-batch training on the mean cross-entropy, shuffled each epoch.

    Each epoch draws a permutation from ``numpy.random.default_rng(seed)`` (or the
    Generator passed as ``seed``); the last batch may be smaller. Per batch:
    forward (with dropout if asked), ``MLP.backward`` (with weight decay), then
    ``optimizer.step`` and the max-norm constraint. With plain SGD (no momentum)
    the backward pass and the update are one fused step, ``MLP.backward_sgd``.

    Parameters
    ----------
    epochs : int, default 1
    batch_size : int, default 128
    schedule : schedule, default ``Constant(0.1)``
        Learning rate by batch step.
    seed : None, int or Generator
        Shuffling; dropout and augmentation draw from two generators spawned
        from it, so each is reproducible on its own.
    optimizer : ``mlp_lib.optim`` optimiser, default plain ``SGD()``
    weight_decay : float
        L2 penalty :math:`\\tfrac{\\lambda}{2}\\sum\\lVert W\\rVert^2` (biases excluded).
    dropout, input_dropout : float
        Inverted-dropout rates for hidden units and for input pixels.
    max_norm : float, optional
        After each step, each unit's incoming weight vector is rescaled to norm
        at most this (Srivastava et al. 2014).
    augment : callable, optional
        ``augment(batch_images, rng) -> batch_images`` (e.g. ``mlp_lib.augment.distort``).
    validation : (images, labels), optional
        Evaluated after every epoch (``history.val_loss``, ``val_accuracy``); at
        the end the model gets back the weights of the epoch with the lowest
        validation loss (``history.best_epoch``).
    patience : int, optional
        Early stopping: stop when the validation loss has not improved for
        this many epochs.
    checkpoint, resume
        As in ``train_per_sample`` (plain SGD without dropout or augmentation).

    Returns
    -------
    History
        ``loss_curve`` averages ``record_every`` batches; ``epoch_loss`` holds the
        mean batch loss of each epoch, ``val_loss`` / ``val_accuracy`` the
        validation figures, ``best_epoch`` the epoch whose weights were kept.
    """
    images, labels = _check_data(model, images, labels)
    _check_divergence_mode(on_divergence)
    batch_size = _check_positive_int("batch_size", batch_size)
    optimizer = SGD() if optimizer is None else optimizer
    if not hasattr(optimizer, "step"):
        raise ValueError(f"optimizer must be one of mlp_lib.optim, got {optimizer!r}")
    stateful = (not isinstance(optimizer, SGD) or optimizer.momentum or dropout
                or input_dropout or augment is not None)
    if stateful and (checkpoint is not None or resume is not None):
        raise ValueError("checkpoint/resume support plain SGD without dropout or "
                         "augmentation only")
    if weight_decay < 0 or (max_norm is not None and max_norm <= 0):
        raise ValueError(f"weight_decay must be >= 0 and max_norm > 0, got "
                         f"{weight_decay!r} and {max_norm!r}")
    if patience is not None:
        patience = _check_positive_int("patience", patience)
        if validation is None:
            raise ValueError("early stopping (patience) needs a validation set")
    if validation is not None:
        val_images, val_labels = _check_data(model, *validation)
    epochs, schedule, record_every, start, past, fingerprint = _settings(
        "minibatch", images, labels, resume, epochs, schedule, record_every, 1, 0.1,
        batch_size)
    rng = as_generator(seed)
    if resume is not None:
        rng.bit_generator.state = resume.rng_state
    dropout_rng, augment_rng = rng.spawn(2) if (dropout or input_dropout or augment) else (None, None)
    n_batches = -(-len(images) // batch_size)
    total = epochs * n_batches
    rates = np.asarray(schedule.values(total), dtype=np.float64)
    losses = np.empty(total)
    losses[:start] = past
    history = History(loss_curve=np.empty(0), record_every=record_every, steps=start)
    best = (np.inf, None, None)          # (validation loss, epoch, parameters)
    bar = _progress(progress, total, "mini-batch SGD", initial=start)
    epoch_rng_state = rng.bit_generator.state
    params = model.weights + model.biases
    # plain SGD: gradients go straight into the update (MLP.backward_sgd)
    fused = type(optimizer) is SGD and not optimizer.momentum
    try:
        with _sigint_flag() as interrupt, _closing(bar, history, losses, time.perf_counter()):
            for step in range(start, total):
                if interrupt[0]:
                    raise KeyboardInterrupt
                position = step % n_batches
                if step == start or position == 0:
                    epoch_rng_state = rng.bit_generator.state
                    order = rng.permutation(len(images))
                rows = order[position * batch_size:(position + 1) * batch_size]
                batch, batch_labels = images[rows], labels[rows]
                if augment is not None:
                    batch = augment(batch, augment_rng)
                probs, cache = model.forward_cache(batch, dropout, input_dropout, dropout_rng,
                                                   batch_labels)
                loss = cache["loss"]
                losses[step] = loss
                if not math.isfinite(loss):
                    _diverged(history, step, rates[step], on_divergence, model, batch,
                              list(zip(model.weights, model.biases)))
                    if on_divergence == "stop":
                        break
                if fused:
                    model.backward_sgd(probs, cache, batch_labels, rates[step], weight_decay)
                else:
                    weight_grads, bias_grads = model.backward(probs, cache, batch_labels,
                                                              weight_decay)
                    optimizer.step(params, weight_grads + bias_grads,
                                   model.dtype.type(rates[step]))
                if max_norm is not None:
                    _max_norm(model.weights[:-1], max_norm)
                history.steps = step + 1
                bar.update(1)
                if position < n_batches - 1:
                    continue
                # ---- end of an epoch
                history.epoch_loss.append(float(losses[step + 1 - n_batches:step + 1].mean()))
                if validation is None:
                    continue
                val_loss, val_accuracy = evaluate(model, val_images, val_labels)
                history.val_loss.append(val_loss)
                history.val_accuracy.append(val_accuracy)
                epoch = len(history.val_loss) - 1
                if val_loss < best[0]:
                    best = (val_loss, epoch, [p.copy() for p in params])
                elif patience is not None and epoch - best[1] >= patience:
                    break
            if best[2] is not None:
                for p, kept in zip(params, best[2]):
                    p[...] = kept
                history.best_epoch = best[1]
    except KeyboardInterrupt:
        if history.steps % n_batches == 0:   # between epochs: next shuffle not drawn yet
            epoch_rng_state = rng.bit_generator.state
        state = TrainingState("minibatch", history.steps, epochs, schedule_to_dict(schedule),
                              record_every, fingerprint, history.losses, batch_size,
                              epoch_rng_state)
        raise _interrupted(history.steps, checkpoint, model, state, history) from None
    return history


def evaluate(model: MLP, images, labels):
    """Mean cross-entropy and accuracy of ``model`` on a labelled set.

    Returns
    -------
    (mean_loss, accuracy) : tuple of float
    """
    logits = model.logits(images)
    labels = model._check_labels(labels, len(logits))
    mean_loss = cross_entropy(logits, labels)
    accuracy = np.mean(np.argmax(logits, axis=1) == labels)
    return float(mean_loss), float(accuracy)
