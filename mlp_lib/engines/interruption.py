"""Ctrl-C during training: a flag the loops check between steps (so no step is
left half applied), the checkpoint an interrupted run saves, and the
``TrainingInterrupted`` that ends it. ``lifecycle.Run.running`` puts these
around every fast trainer's loop; ``load_checkpoint`` and ``resume=`` take the
run up again, bit-identical to one never interrupted.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

from ..core.schedules import schedule_to_dict
from ..io.checkpoint import TrainingState, save_checkpoint

__all__ = ["TrainingInterrupted", "sigint_flag", "interrupted", "interrupted_state"]


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training. The model holds the weights after the last
    complete step; ``checkpoint`` is the file saved for resuming (or None)."""

    def __init__(self, message, step, checkpoint, history):
        super().__init__(message)
        self.step, self.checkpoint, self.history = step, checkpoint, history


_ACTIVE = threading.local()


@contextmanager
def sigint_flag():
    """Turn Ctrl-C into a flag that the loop checks between steps, so that an
    interruption never leaves a step half applied. Yields a one-item list.

    Nested uses share the outer flag: a caller (the CLI) can open one before
    the trainer's set-up, and a Ctrl-C pressed during the set-up then stops
    the run at its first step, with a checkpoint, instead of being lost."""
    flag = getattr(_ACTIVE, "flag", None)
    if flag is not None:
        yield flag
        return
    flag = [False]
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        flag[0] = True

    previous = signal.signal(signal.SIGINT, handler)
    _ACTIVE.flag = flag
    try:
        yield flag
    finally:
        _ACTIVE.flag = None
        signal.signal(signal.SIGINT, previous)


def interrupted(step, checkpoint, model, state, history):
    """Save a checkpoint (if a path was given) and build the exception."""
    if checkpoint is not None:
        save_checkpoint(checkpoint, model, state)
        how = (
            f"checkpoint saved to {checkpoint}; resume with "
            f"load_checkpoint({str(checkpoint)!r}) and resume=state "
            f"(CLI: mlp-lib train --resume {checkpoint})"
        )
    else:
        how = "no checkpoint path was given, so nothing was saved"
    return TrainingInterrupted(
        f"training interrupted after step {step}: {how}", step, checkpoint, history
    )


def interrupted_state(
    trainer,
    history,
    epochs,
    schedule,
    record_every,
    fingerprint,
    batch_size=None,
    rng_state=None,
    extra=None,
    arrays=None,
):
    """The ``TrainingState`` that lets a run stopped after ``history.steps`` resume."""
    return TrainingState(
        trainer,
        history.steps,
        epochs,
        schedule_to_dict(schedule),
        record_every,
        fingerprint,
        history.losses,
        batch_size,
        rng_state,
        extra,
        arrays,
    )
