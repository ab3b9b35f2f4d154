"""The life of a training run, shared by every trainer: the options the fast
trainers take (``RunOptions``), the ``History`` a run records, input and
settings checks, resuming, divergence and the progress bar; ``Run.running`` is
the frame around each loop (Ctrl-C itself is ``interruption``'s). No maths
here: the trainers (``reference``, ``per_sample``, ``minibatch``) own their
loops and call these helpers around them.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from ..core.functional import ACTIVATIONS
from ..core.schedules import Constant, schedule_from_dict, schedule_to_dict
from ..io.checkpoint import TrainingState, data_fingerprint
from .interruption import interrupted, interrupted_state, sigint_flag

__all__ = [
    "History",
    "Block",
    "RunOptions",
    "DivergenceError",
    "progress_bar",
    "check_data",
    "check_positive_int",
    "check_divergence_mode",
    "block_means",
    "Run",
    "start_run",
    "diverged",
    "closing",
]


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


@dataclass(frozen=True)
class Block:
    r"""What a trainer tells its ``observer`` after each block of ``record_every``
    steps (and after a last, shorter block). An observer sees the run; it cannot
    change it: the block's steps are done, the next not begun. It may block (a
    pause) or raise to stop training (the exception propagates; the model keeps
    the steps done).

    Attributes
    ----------
    step : int
        Steps done so far, counting from the start of the run.
    loss : float
        Mean training loss of the block's steps (the block's ``loss_curve`` entry).
    rate : float
        Learning rate of the block's last step.
    grad_norm : tuple of float
        Per layer (1 first), the mean over the block's steps of the Frobenius
        norm of the weight gradient, :math:`\lVert \partial L / \partial W_l \rVert`.
    active : tuple of float
        Per hidden layer, the mean over the block's steps of the fraction of its
        units whose output is nonzero (a ReLU unit at 0 passes nothing on).
    """

    step: int
    loss: float
    rate: float
    grad_norm: tuple
    active: tuple

    def as_dict(self):
        return {
            "step": self.step,
            "loss": self.loss,
            "rate": self.rate,
            "grad_norm": list(self.grad_norm),
            "active": list(self.active),
        }


@dataclass(frozen=True)
class RunOptions:
    """The keyword options every fast trainer takes besides its maths
    (``train_per_sample(..., **run_options)``, ``train_minibatch(...,
    **run_options)``): how a run is recorded, shown, guarded, saved, resumed
    and watched. Written once, here, because they mean the same in each.

    Attributes
    ----------
    record_every : int, default 100
        Steps averaged into one entry of ``History.loss_curve`` (the report: 100).
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
        Continue a run from ``load_checkpoint``'s state (same data and
        settings; ``model`` the checkpoint's model). The result is
        bit-identical to a run that was never interrupted.
    observer : callable, optional
        ``observer(block)`` after each block of ``record_every`` steps with a
        ``Block`` (step, mean loss, rate, per-layer gradient norms and active
        fractions). The results are the same bits with or without one.
    """

    record_every: int | None = None
    progress: object = None
    on_divergence: str = "raise"
    checkpoint: object = None
    resume: object = None
    observer: object = None

    def __post_init__(self):
        check_divergence_mode(self.on_divergence)

    @classmethod
    def given(cls, trainer, keywords):
        """The options among a trainer's keyword arguments; an unknown name is a
        TypeError that names the trainer, as Python's own would."""
        known = tuple(cls.__dataclass_fields__)
        for name in keywords:
            if name not in known:
                raise TypeError(
                    f"{trainer}() got an unexpected keyword argument {name!r} "
                    f"(its run options: {', '.join(known)})"
                )
        return cls(**keywords)


class DivergenceError(FloatingPointError):
    """The training loss became NaN or infinite. ``history`` holds what was
    recorded up to there; the model keeps the weights it had before that step."""

    def __init__(self, message, step, lr, history):
        super().__init__(message)
        self.step, self.lr, self.history = step, lr, history


def progress_bar(progress, total, desc, initial=0, unit="step"):
    """A tqdm bar; ``progress=None`` shows it only when stderr is a terminal. A
    callable ``progress(done, total)`` is told the count as the bar moves (the bar
    itself then shows only on a terminal): how a server follows a training run."""
    report = progress if callable(progress) else None
    if report is not None or progress is None:
        progress = sys.stderr.isatty()
    bar = _ReportingBar(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        unit_scale=unit == "step",
        disable=not progress,
        mininterval=0.5,
        leave=False,
    )
    bar.report, bar.done = report, initial
    if report is not None:
        report(initial, total)
    return bar


class _ReportingBar(tqdm):
    """tqdm that also tells ``report(done, total)`` (tqdm keeps no count when disabled)."""

    def update(self, n=1):
        self.done += n
        if self.report is not None:
            self.report(self.done, self.total)
        return super().update(n)


def check_data(model, images, labels):
    images = model.as_batch(images)
    labels = model.check_labels(labels, len(images))
    if len(images) == 0:
        raise ValueError("no training images")
    return np.ascontiguousarray(images), labels


def check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _settle(trainer, images, labels, resume, epochs, schedule, record_every, defaults, batch_size):
    """Validated (epochs, schedule, record_every, start_step, past_losses, fingerprint).

    On resume the state's settings are used; any that the caller also gave
    must agree with them. ``defaults`` is (epochs, learning rate)."""
    default_epochs, default_lr = defaults
    fingerprint = data_fingerprint(images, labels)
    if resume is None:
        epochs = check_positive_int("epochs", default_epochs if epochs is None else epochs)
        schedule = Constant(default_lr) if schedule is None else schedule
        if not callable(schedule) or not hasattr(schedule, "values"):
            raise ValueError(
                f"schedule must be a schedule from mlp_lib.core.schedules, got {schedule!r}"
            )
        record_every = check_positive_int(
            "record_every", 100 if record_every is None else record_every
        )
        return epochs, schedule, record_every, 0, np.empty(0), fingerprint
    if not isinstance(resume, TrainingState):
        raise ValueError(
            f"resume must be a TrainingState from load_checkpoint, got {type(resume).__name__}"
        )
    saved = {
        "trainer": resume.trainer,
        "epochs": resume.epochs,
        "record_every": resume.record_every,
        "data": resume.fingerprint,
        "batch_size": resume.batch_size,
    }
    given = {
        "trainer": trainer,
        "epochs": epochs if epochs is not None else resume.epochs,
        "record_every": record_every if record_every is not None else resume.record_every,
        "data": fingerprint,
        "batch_size": batch_size,
    }
    if schedule is not None and schedule_to_dict(schedule) != resume.schedule:
        raise ValueError(
            f"resume: schedule {schedule!r} differs from the checkpoint's {resume.schedule}"
        )
    for key in saved:
        if saved[key] != given[key]:
            raise ValueError(
                f"resume: {key} {given[key]!r} differs from the checkpoint's "
                f"{saved[key]!r} (resume with the same data and settings)"
            )
    return (
        resume.epochs,
        schedule_from_dict(resume.schedule),
        resume.record_every,
        resume.step,
        np.asarray(resume.losses, dtype=np.float64),
        fingerprint,
    )


@dataclass
class Run:
    """A run's plan, settled once from the trainer's common arguments (or from the
    state it resumes), and the record it fills in: both trainers' loops are this
    frame around their own steps.

    ``losses`` holds every step's loss (the resumed run's first ``start`` already
    there); ``total`` is the run's number of steps, ``epochs`` × steps per epoch.
    """

    trainer: str  # "per-sample" or "minibatch", as a checkpoint names it
    epochs: int
    schedule: object
    record_every: int
    fingerprint: str  # of the training data, so a resume uses the same
    start: int
    total: int
    losses: np.ndarray
    history: History
    options: RunOptions
    batch_size: int | None = None  # mini-batch runs only

    @contextmanager
    def running(self, model, desc, saved=None):
        """The loop's frame; yields (the Ctrl-C flag, the progress bar).

        Ctrl-C becomes a flag the loop checks between steps; the bar moves; the
        history is completed however the loop ends. An interrupted run is saved
        to ``options.checkpoint`` with the trainer's own state (``saved()``: the
        keyword arguments of ``interrupted_state`` beyond the plan's) and ends in
        ``TrainingInterrupted``."""
        bar = progress_bar(self.options.progress, self.total, desc, initial=self.start)
        try:
            with (
                sigint_flag() as interrupt,
                closing(bar, self.history, self.losses, time.perf_counter()),
            ):
                yield interrupt, bar
        except KeyboardInterrupt:
            state = interrupted_state(
                self.trainer,
                self.history,
                self.epochs,
                self.schedule,
                self.record_every,
                self.fingerprint,
                self.batch_size,
                **(saved() if saved is not None else {}),
            )
            checkpoint = self.options.checkpoint
            raise interrupted(self.history.steps, checkpoint, model, state, self.history) from None


def start_run(trainer, model, images, labels, epochs, schedule, options, defaults, batch_size=None):
    """Check what every trainer takes and settle its plan: (images, labels, ``Run``).

    ``epochs``, ``schedule`` and ``options`` (a ``RunOptions``) are the
    trainer's as given; ``defaults`` is its (epochs, learning rate);
    ``batch_size`` is None for per-sample SGD (one step a sample)."""
    images, labels = check_data(model, images, labels)
    epochs, schedule, record_every, start, past, fingerprint = _settle(
        trainer,
        images,
        labels,
        options.resume,
        epochs,
        schedule,
        options.record_every,
        defaults,
        batch_size,
    )
    total = epochs * -(-len(images) // (batch_size or 1))
    losses = np.empty(total)
    losses[:start] = past
    history = History(loss_curve=np.empty(0), record_every=record_every, steps=start)
    plan = Run(
        trainer,
        epochs,
        schedule,
        record_every,
        fingerprint,
        start,
        total,
        losses,
        history,
        options,
        batch_size,
    )
    return images, labels, plan


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


def diverged(history, step, lr, on_divergence, model, sample, params):
    """Record a non-finite loss at ``step``; raise unless asked to go on.
    ``params`` are the (weights, bias) pairs in use, ``sample`` the input rows."""
    history.diverged_at = step
    if on_divergence == "raise":
        layer, what = _bad_layer(params, sample, model.activation)
        raise DivergenceError(
            f"training diverged at step {step} (learning rate {lr:g}): the loss is not "
            f"finite; the first non-finite {what} is in layer {layer}. The model keeps "
            f"its weights from before step {step}. Lower the learning rate, or pass "
            f"on_divergence='stop' or 'continue'.",
            step,
            lr,
            history,
        )


def block_means(losses, record_every):
    """The mean of each complete block of ``record_every`` losses (``loss_curve``)."""
    n_blocks = len(losses) // record_every
    return losses[: n_blocks * record_every].reshape(n_blocks, record_every).mean(axis=1)


@contextmanager
def closing(bar, history, losses, start_time):
    """Close the bar and complete ``history`` however the loop ends (including
    an error or Ctrl-C): time, losses and the block means of the steps taken."""
    try:
        yield
    finally:
        bar.close()
        history.seconds = time.perf_counter() - start_time
        history.losses = losses[: history.steps].copy()
        history.loss_curve = block_means(losses[: history.steps], history.record_every)


def check_divergence_mode(on_divergence):
    if on_divergence not in ("raise", "stop", "continue"):
        raise ValueError(
            f"on_divergence must be 'raise', 'stop' or 'continue', got {on_divergence!r}"
        )
