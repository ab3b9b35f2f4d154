"""A playground run's worker process: trains as ``reproduce`` does, watched.

``work`` trains the settings through ``study.jobs.train`` (one BLAS thread, the
same computation as ``reproduce`` and ``sweep``) with a ``Watcher`` as the
observer between blocks of 100 steps, which

* sends the block's figures to the server, a few batches a second;
* every ``eval_every`` steps tests the model on the first 1,000 test images and
  sends the first-layer weights of a few units;
* obeys commands: pause (it waits between two blocks, so a paused and resumed
  run is the same computation as one never paused), step (one block, then
  pause), resume, cancel, and predict (with the weights as they are now).

Nothing here touches the maths: the watcher reads the model, never writes it.
"""

from __future__ import annotations

import base64
import math
import os
import time

import numpy as np

from .predictions import describe_prediction
from .run_settings import row_of, rungs

__all__ = ["work", "Watcher", "BLOCK", "EVAL_IMAGES"]

BLOCK = 100  # steps per block event (the report's 100-step mean loss)
EVAL_IMAGES = 1000  # the fixed test subset of the live accuracy
WEIGHT_UNITS = 8  # first-layer units drawn as 28x28 images
FLUSH_SECONDS = 0.1  # how often a worker sends its blocks to the server


class _Cancelled(Exception):
    """Raised inside the observer to stop training (cancel, or the server is gone)."""


def _weight_images(model):
    """The first ``WEIGHT_UNITS`` first-layer units' weights as 784 bytes each
    (128 is 0, 0 and 255 the unit's largest magnitude), base64."""
    w = np.asarray(model.weights[0][:, :WEIGHT_UNITS], dtype=np.float64).T
    top = np.abs(w).max(axis=1, keepdims=True)
    top[~(top > 0) | ~np.isfinite(top)] = 1
    scaled = np.nan_to_num(128 + 127 * w / top, nan=128).clip(0, 255).astype(np.uint8)
    return [base64.b64encode(row.tobytes()).decode() for row in scaled]


class Watcher:
    """The observer a worker trains with (see the module docstring)."""

    def __init__(self, conn, settings, test_images, test_labels):
        self.conn, self.settings = conn, settings
        self.test = (test_images, test_labels)
        self.model = None
        self.pending, self.sent_at = [], time.perf_counter()
        self.paused, self.steps_left = False, None
        steps = settings["steps"]
        self.eval_every = max(10 * BLOCK, steps // 30 // BLOCK * BLOCK)

    def start(self, model):
        """The model about to be trained: evaluated once at step 0."""
        self.model = model
        self._evaluate(0)
        self.started = time.perf_counter()

    def __call__(self, block):
        record = block.as_dict()
        record["seconds"] = round(time.perf_counter() - self.started, 4)  # since training began
        self.pending.append(record)
        now = time.perf_counter()
        if now - self.sent_at >= FLUSH_SECONDS:
            self.flush(now)
        if block.step % self.eval_every < BLOCK and block.step >= self.eval_every:
            self.flush(now)
            self._evaluate(block.step)
        self._obey(block.step)

    def flush(self, now=None):
        if self.pending:
            self.conn.send(("blocks", self.pending))
            self.pending = []
        self.sent_at = now or time.perf_counter()

    def _evaluate(self, step):
        from ..core.model import evaluate

        with np.errstate(all="ignore"):
            loss, accuracy = evaluate(self.model, *self.test)
        self.conn.send(
            (
                "eval",
                {
                    "step": step,
                    "loss": loss if math.isfinite(loss) else None,
                    "accuracy": accuracy,
                    "images": len(self.test[1]),
                    "weights": _weight_images(self.model),
                },
            )
        )

    def _obey(self, step):
        """Handle the commands waiting; while paused, wait for the next one."""
        if self.steps_left is not None:  # a "step" command: one block, then pause again
            self.steps_left -= 1
            if self.steps_left <= 0:
                self.steps_left, self.paused = None, True
                self.flush()
                self.conn.send(("state", "paused", step))
        while self.paused or self.conn.poll():
            try:
                command, *args = self.conn.recv()
            except (EOFError, OSError):  # the server is gone: stop
                raise _Cancelled from None
            if command == "cancel":
                raise _Cancelled
            if command == "pause" and not self.paused:
                self.paused = True
                self.flush()
                self.conn.send(("state", "paused", step))
            elif command == "resume" and self.paused:
                self.paused = False
                self.conn.send(("state", "running", step))
            elif command == "step" and self.paused:
                self.paused, self.steps_left = False, 1
                self.conn.send(("state", "running", step))
                return
            elif command == "predict":
                self._predict(*args)

    def _predict(self, token, pixels, name):
        if self.model is None:
            self.conn.send(("prediction", token, {"error": f"run {name} is still starting"}))
            return
        try:
            self.conn.send(("prediction", token, describe_prediction(name, self.model, pixels)))
        except Exception as exc:  # an answer, whatever happens: the server waits on it
            self.conn.send(("prediction", token, {"error": str(exc)}))


def work(conn, settings, run_id):
    """A worker process: train ``settings`` as ``reproduce`` does, watched."""
    from threadpoolctl import threadpool_limits

    from ..io.data import default_root, load_dataset
    from ..study.jobs import Job, train

    # out of the terminal's process group: Ctrl-C stops the server, which stops us
    if hasattr(os, "setpgrp"):
        os.setpgrp()
    with threadpool_limits(1):  # one BLAS thread per worker (the cores are the workers')
        try:
            images, labels = load_dataset(
                settings["dataset"], "test", default_root(settings["dataset"])
            )
            watcher = Watcher(conn, settings, images[:EVAL_IMAGES], labels[:EVAL_IMAGES])
            conn.send(("state", "running", 0))
            row = settings["kind"] == "row"
            job = Job(
                settings["kind"],
                settings["preset"] or "custom",
                settings["seed"],
                settings["dataset"],
                settings["epochs"],
                None if not row or settings["n_train"] == 60_000 else settings["n_train"],
            )
            result = train(
                job,
                row=row_of(settings) if row else None,
                rung=None if row else rungs()[settings["preset"]],
                keep_model=True,
                observer=watcher,
                on_start=watcher.start,
            )
            diverged_at = result.diverged_at if row else None
            watcher.flush()
            with np.errstate(all="ignore"):
                finite = math.isfinite(result.test_loss)
            outcome = {
                "test_loss": result.test_loss if finite else None,
                "test_accuracy": result.test_accuracy,
                "seconds": round(result.seconds, 3),
                "diverged_at": diverged_at,
                "test_images": 10_000,
            }
            conn.send(("done", outcome, result.model))
        except _Cancelled:
            try:
                watcher.flush()
                conn.send(("state", "cancelled", None))
            except OSError:  # the server is gone: nobody to tell
                pass
        except Exception as exc:  # told to the page, not lost in a log
            try:
                conn.send(("state", "failed", f"{type(exc).__name__}: {exc}"))
            except OSError:
                pass
        finally:
            conn.close()
