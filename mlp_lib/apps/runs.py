"""The playground's training runs: a process per run, watched live.

A run is one training of a preset (a report row, a notebook-05 rung) or of
custom settings, made by ``settings_from`` out of a request. ``Runs`` (the
manager ``serve`` owns) keeps every run and its events, starts at most one
worker process per core and queues the rest. A worker (``_work``) trains
exactly as ``reproduce`` does (``experiments.run`` / ``beyond.run_rung``), with
an observer between blocks of 100 steps that

* sends the block's figures to the server, a few batches a second;
* every ``eval_every`` steps tests the model on the first 1,000 test images and
  sends the first-layer weights of a few units;
* obeys commands: pause (it waits between two blocks, so a paused and resumed
  run is the same computation as one never paused), step (one block, then
  pause), resume, cancel, and predict (with the weights as they are now).

Nothing here touches the maths: the observer reads the model, never writes it.
The server's threads only read the runs' events (``Run.events_after``), so a
viewer, however slow, never slows the worker.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import multiprocessing
import os
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..core.schedules import schedule_from_dict, schedule_to_dict
from ..io.project import RESULTS_DIR

__all__ = [
    "LIMITS",
    "Runs",
    "Run",
    "SettingsError",
    "settings_from",
    "presets",
    "reference_for",
]

#: What one run may ask for (a 400 names the setting that is out of bounds).
LIMITS = {
    "hidden_layers": (1, 6),  # custom networks: hidden layers
    "width": (1, 1024),  # units per hidden layer
    "parameters": 2_000_000,  # weights and biases of a custom network
    "epochs": (1, 10),  # per-sample runs
    "rung_epochs": (1, 70),  # mini-batch rungs (the ladder's longest is 70)
    "n_train": (100, 60_000),  # training images, the first N in file order
    "steps": 360_000,  # per-sample steps (epochs x images): 6 epochs of 60,000
    "seed": (0, 2**31 - 1),
    "lr": (1e-6, 1.0),
    "decay_steps": (1, 360_000),
    "queued": 8,  # runs waiting for a worker; one more gets 429
    "kept": 40,  # runs remembered; the oldest finished ones are forgotten first
}
BLOCK = 100  # steps per block event (the report's 100-step mean loss)
EVAL_IMAGES = 1000  # the fixed test subset of the live accuracy
WEIGHT_UNITS = 8  # first-layer units drawn as 28x28 images
FLUSH_SECONDS = 0.1  # how often a worker sends its blocks to the server
STATES = ("queued", "running", "paused", "done", "cancelled", "failed")
FINAL = ("done", "cancelled", "failed")
_ACTIVATIONS = ("relu", "sigmoid", "tanh", "leaky_relu")
_INITS = ("he", "xavier", "normal", "uniform")
_DATASETS = ("mnist", "fashion-mnist")


class SettingsError(ValueError):
    """A request's settings are invalid; ``field`` names the one at fault."""

    def __init__(self, field, message):
        super().__init__(f"{field}: {message}")
        self.field = field


# ---------------------------------------------------------------- settings


def _rungs():
    from ..study.beyond import LADDER, SPRINT

    return {r.name: r for r in [*LADDER, SPRINT]}


def presets():
    """Every preset the page offers: the report's rows, then notebook 05's rungs."""
    from ..study.experiments import ROWS

    listed = [
        {
            "kind": "row",
            "name": row.id,
            "description": row.describe(),
            "notebook": row.notebook,
            "epochs": row.epochs,
            "reference": reference_for(row.id, "mnist"),
        }
        for row in ROWS.values()
    ]
    listed += [
        {
            "kind": "rung",
            "name": r.name,
            "description": r.change,
            "notebook": "05",
            "epochs": r.epochs,
        }
        for r in _rungs().values()
    ]
    return listed


def _int(request, field, bounds, default):
    value = request.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingsError(field, f"must be an integer, got {json.dumps(value)}")
    lo, hi = bounds
    if not lo <= value <= hi:
        raise SettingsError(field, f"must be in {lo:,}..{hi:,}, got {value:,}")
    return value


def _choice(request, field, choices, default):
    value = request.get(field, default)
    if value not in choices:
        listed = ", ".join(json.dumps(c, ensure_ascii=False) for c in choices)
        raise SettingsError(field, f"must be one of {listed}; got {json.dumps(value)}")
    return value


def _rate(request, field, default):
    value = request.get(field, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SettingsError(field, f"must be a number, got {json.dumps(value)}")
    lo, hi = LIMITS["lr"]
    if not lo <= value <= hi:
        raise SettingsError(field, f"must be in {lo:g}..{hi:g}, got {value:g}")
    return float(value)


_COMMON = {"seed", "epochs", "n_train", "dataset"}
_CUSTOM = _COMMON | {"layers", "activation", "init", "schedule", "lr", "decay_steps"}


def settings_from(request):
    """A run's complete settings from a request body (a dict): a report row
    (``{"row": "relu-he-const", "seed": 1}``, optionally ``epochs``,
    ``n_train``, ``dataset``), a rung (``{"rung": "60-second sprint"}``,
    optionally ``seed``, ``epochs``, ``dataset``) or custom per-sample settings
    (``layers`` (hidden widths), ``activation``, ``init``, ``schedule``
    ("constant" or "decay": the report's linear decay over ``decay_steps``), ``lr``,
    and the common ones). Raises ``SettingsError`` naming the field at fault."""
    from ..study.experiments import ROWS

    if not isinstance(request, dict):
        raise SettingsError("body", "must be a JSON object")
    if "row" in request and "rung" in request:
        raise SettingsError("row", 'give "row" or "rung", not both')
    allowed = _COMMON | {"row"} if "row" in request else _CUSTOM
    if "rung" in request:
        allowed = {"rung", "seed", "epochs", "dataset"}
    unknown = sorted(set(request) - allowed)
    if unknown:
        raise SettingsError(
            unknown[0], f"unknown or not allowed here (allowed: {', '.join(sorted(allowed))})"
        )
    seed = _int(request, "seed", LIMITS["seed"], 0)
    dataset = _choice(request, "dataset", _DATASETS, "mnist")
    if "rung" in request:
        rungs = _rungs()
        rung = _choice(request, "rung", list(rungs), None)
        epochs = _int(request, "epochs", LIMITS["rung_epochs"], rungs[rung].epochs)
        per_epoch = -(-50_000 // rungs[rung].batch_size)
        return {
            "kind": "rung",
            "preset": rung,
            "seed": seed,
            "dataset": dataset,
            "epochs": epochs,
            "n_train": 50_000,
            "steps": epochs * per_epoch,
            "layer_sizes": list(rungs[rung].layer_sizes),
            "activation": "relu",
            "init": "he",
            "schedule": f"mini-batch {rungs[rung].batch_size}, {rungs[rung].optimizer}, lr {rungs[rung].lr:g}"
            + (", cosine" if rungs[rung].cosine else ""),
        }
    if "row" in request:
        row = ROWS.get(request["row"]) if isinstance(request["row"], str) else None
        if row is None:
            raise SettingsError(
                "row", f"must be one of {', '.join(ROWS)}; got {json.dumps(request['row'])}"
            )
        layers, activation, init = list(row.layer_sizes[1:-1]), row.activation, row.init
        schedule, default_epochs, preset = row.schedule, row.epochs, row.id
    else:
        layers = request.get("layers", [512, 256, 64])
        if not isinstance(layers, list) or not all(
            isinstance(w, int) and not isinstance(w, bool) for w in layers
        ):
            raise SettingsError("layers", "must be a list of hidden-layer widths (integers)")
        lo, hi = LIMITS["hidden_layers"]
        if not lo <= len(layers) <= hi:
            raise SettingsError("layers", f"must have {lo}..{hi} hidden layers, got {len(layers)}")
        lo, hi = LIMITS["width"]
        if not all(lo <= w <= hi for w in layers):
            raise SettingsError("layers", f"widths must be in {lo}..{hi}, got {layers}")
        sizes = [784, *layers, 10]
        parameters = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
        if parameters > LIMITS["parameters"]:
            raise SettingsError(
                "layers",
                f"{parameters:,} weights and biases; the limit is {LIMITS['parameters']:,}",
            )
        activation = _choice(request, "activation", _ACTIVATIONS, "relu")
        init = _choice(request, "init", _INITS, "he")
        kind = _choice(request, "schedule", ("constant", "decay"), "constant")
        lr = _rate(request, "lr", 0.01)
        schedule = _schedule(kind, lr, _int(request, "decay_steps", LIMITS["decay_steps"], 15000))
        default_epochs, preset = 3, None
    epochs = _int(request, "epochs", LIMITS["epochs"], default_epochs)
    n_train = _int(request, "n_train", LIMITS["n_train"], 60_000)
    if epochs * n_train > LIMITS["steps"]:
        raise SettingsError(
            "epochs",
            f"{epochs} epochs of {n_train:,} images is {epochs * n_train:,} steps; "
            f"the limit is {LIMITS['steps']:,}",
        )
    return {
        "kind": "row",
        "preset": preset,
        "seed": seed,
        "dataset": dataset,
        "epochs": epochs,
        "n_train": n_train,
        "steps": epochs * n_train,
        "layer_sizes": [784, *layers, 10],
        "activation": activation,
        "init": init,
        "schedule": repr(schedule),
        "schedule_spec": schedule_to_dict(schedule),
    }


def _schedule(kind, lr, decay_steps):
    from ..core.schedules import Constant, LinearDecay

    if kind == "constant":
        return Constant(lr)
    return LinearDecay(lr, lr / 1000, decay_steps)  # the report's: 0.01 -> 1e-5


def _row(settings):
    """The ``experiments.Row`` a row run trains (a report row, or custom settings)."""
    from ..study.experiments import ROWS, Row

    if settings["preset"] is not None:
        return ROWS[settings["preset"]]
    return Row(
        "custom",
        tuple(settings["layer_sizes"]),
        settings["activation"],
        settings["init"],
        schedule_from_dict(settings["schedule_spec"]),
        None,
        None,
        "",
        settings["epochs"],
    )


def label(settings):
    """A short name for a run: its preset and seed, or its custom network."""
    extra = []
    if settings["dataset"] != "mnist":
        extra.append(settings["dataset"])
    if settings["kind"] == "row" and settings["n_train"] != 60_000:
        extra.append(f"{settings['n_train']:,} images")
    if settings["preset"] is None:
        hidden = "-".join(map(str, settings["layer_sizes"][1:-1]))
        name = f"{hidden} {settings['activation']} {settings['init']} {settings['schedule']}"
    else:
        name = settings["preset"]
    extra.append(f"{settings['epochs']} ep")
    return f"{name} · seed {settings['seed']} ({', '.join(extra)})"


def reference_for(row_id, dataset):
    """The report's figures for a row and our committed five-seed results
    (``results/ROW.json`` of a source checkout), or None for other runs."""
    from ..study.experiments import ROWS

    row = ROWS.get(row_id)
    if row is None or dataset != "mnist":
        return None
    reference = {"report_loss": row.report_loss, "report_accuracy": row.report_accuracy}
    path = RESULTS_DIR / f"{row_id}.json"
    try:
        runs = json.loads(path.read_text())["runs"]
    except (OSError, ValueError, KeyError, TypeError):
        return reference
    accs = np.array([r["test_accuracy"] for r in runs], dtype=float)
    losses = np.array([r["test_loss"] for r in runs], dtype=float)
    ddof = 1 if len(runs) > 1 else 0
    with np.errstate(all="ignore"):
        reference.update(
            seeds=[r["seed"] for r in runs],
            acc_mean=float(np.nanmean(accs)),
            acc_std=float(np.nanstd(accs, ddof=ddof)),
            loss_mean=float(np.nanmean(losses)),
            loss_std=float(np.nanstd(losses, ddof=ddof)),
            by_seed={
                str(r["seed"]): {"test_loss": r["test_loss"], "test_accuracy": r["test_accuracy"]}
                for r in runs
            },
        )
    return json.loads(json.dumps(reference).replace("NaN", "null"))


# ---------------------------------------------------------------- the worker


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


class _Watcher:
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
            self._flush(now)
        if block.step % self.eval_every < BLOCK and block.step >= self.eval_every:
            self._flush(now)
            self._evaluate(block.step)
        self._obey(block.step)

    def _flush(self, now=None):
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
                self._flush()
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
                self._flush()
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
        from .serve import describe_prediction

        if self.model is None:
            self.conn.send(("prediction", token, {"error": f"run {name} is still starting"}))
            return
        try:
            self.conn.send(("prediction", token, describe_prediction(name, self.model, pixels)))
        except Exception as exc:  # an answer, whatever happens: the server waits on it
            self.conn.send(("prediction", token, {"error": str(exc)}))


def _work(conn, settings, run_id):
    """A worker process: train ``settings`` as ``reproduce`` does, watched."""
    from threadpoolctl import threadpool_limits

    from ..io.data import default_root, load_dataset

    if hasattr(
        os, "setpgrp"
    ):  # out of the terminal's group: Ctrl-C stops the server, which stops us
        os.setpgrp()
    with threadpool_limits(1):  # one BLAS thread per worker (the cores are the workers')
        try:
            images, labels = load_dataset(
                settings["dataset"], "test", default_root(settings["dataset"])
            )
            watcher = _Watcher(conn, settings, images[:EVAL_IMAGES], labels[:EVAL_IMAGES])
            conn.send(("state", "running", 0))
            if settings["kind"] == "row":
                from ..study.experiments import run

                result = run(
                    _row(settings),
                    seed=settings["seed"],
                    progress=False,
                    epochs=settings["epochs"],
                    n_train=None if settings["n_train"] == 60_000 else settings["n_train"],
                    dataset=settings["dataset"],
                    observer=watcher,
                    on_start=watcher.start,
                )
                diverged_at = result.diverged_at
            else:
                from ..study.beyond import run_rung

                result = run_rung(
                    _rungs()[settings["preset"]],
                    seed=settings["seed"],
                    keep_model=True,
                    epochs=settings["epochs"],
                    progress=False,
                    dataset=settings["dataset"],
                    observer=watcher,
                    on_start=watcher.start,
                )
                diverged_at = None
            watcher._flush()
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
                watcher._flush()
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


# ---------------------------------------------------------------- the server side


@dataclass
class _Event:
    id: int
    type: str
    data: dict


class Run:
    """One run as the server sees it: its state and every event so far."""

    def __init__(self, run_id, settings):
        self.id, self.settings = run_id, settings
        self.label = label(settings)
        self.state, self.step, self.result, self.error = "queued", 0, None, None
        self.model = None  # the trained model, once done (predictions)
        self.created = time.time()
        self.started = self.finished = None
        self.events = []
        self.changed = threading.Condition()
        self.process = self.conn = self.ended_process = None
        self.send_lock = threading.Lock()
        self.cancelling = False
        self.reference = (
            reference_for(settings["preset"], settings["dataset"])
            if settings["kind"] == "row"
            else None
        )

    def add(self, type, data):
        self.add_many(type, [data])

    def add_many(self, type, items):
        with self.changed:
            for data in items:
                self.events.append(_Event(len(self.events), type, data))
            self.changed.notify_all()

    def events_after(self, last, timeout):
        """Events with id > ``last`` (waiting up to ``timeout`` s for one), and
        whether the run has ended and all its events are out."""
        with self.changed:
            if len(self.events) <= last + 1 and self.state not in FINAL:
                self.changed.wait(timeout)
            new = self.events[last + 1 :]
            return new, self.state in FINAL and self.finished is not None

    def as_dict(self, position=None):
        steps_per_second = None
        if self.started and self.step:
            end = self.finished or time.time()
            steps_per_second = round(self.step / max(end - self.started, 1e-9), 1)
        return {
            "id": self.id,
            "label": self.label,
            "state": self.state,
            "step": self.step,
            "steps": self.settings["steps"],
            "settings": self.settings,
            "result": self.result,
            "error": self.error,
            "queue_position": position,
            "steps_per_second": steps_per_second,
            "reference": self.reference,
        }


class RunError(Exception):
    """An answer other than 200 for a run request (``status``, message)."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class Runs:
    """Every run of a server: at most ``workers`` train at once (default: one
    per core), the others wait in a queue of at most ``LIMITS["queued"]``."""

    def __init__(self, workers=None):
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._lock = threading.Lock()
        self._runs = {}
        self._queue = deque()
        self._ids = itertools.count(1)
        self._tokens = itertools.count(1)
        self._answers = {}  # predict token -> [Event, answer]
        self._context = multiprocessing.get_context("spawn")
        self._closed = False

    # -- requests
    def create(self, request):
        settings = settings_from(request)
        with self._lock:
            if self._closed:
                raise RunError(503, "the server is stopping")
            if len(self._queue) >= LIMITS["queued"]:
                raise RunError(
                    429,
                    f"the queue is full ({len(self._queue)} of {LIMITS['queued']} places "
                    f"taken); cancel a run or wait",
                )
            self._forget_old()
            if len(self._runs) >= LIMITS["kept"]:
                raise RunError(429, f"{len(self._runs)} runs are alive; cancel one first")
            run = Run(f"r{next(self._ids)}", settings)
            self._runs[run.id] = run
            self._queue.append(run)
            run.add("state", {"state": "queued", "step": 0})
            self._start_waiting()
            return run.as_dict(self._position(run))

    def listing(self):
        with self._lock:
            return [run.as_dict(self._position(run)) for run in self._runs.values()]

    def get(self, run_id):
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                raise RunError(404, f"no run {run_id!r}; GET /api/runs lists them")
            return run

    def describe(self, run_id):
        run = self.get(run_id)
        with self._lock:
            return run.as_dict(self._position(run))

    def command(self, run_id, command):
        """``pause``, ``resume``, ``step`` or ``cancel``; 409 if the run's state
        does not allow it."""
        run = self.get(run_id)
        with self._lock:
            state = run.state
            if command == "cancel" and state == "queued":
                self._queue.remove(run)
                self._finish(run, "cancelled")
                return run.as_dict()
            allowed = {
                "pause": ("running",),
                "resume": ("paused",),
                "step": ("paused",),
                "cancel": ("running", "paused"),
            }[command]
            if state not in allowed:
                raise RunError(
                    409, f"run {run.id} is {state}; {command} needs it {' or '.join(allowed)}"
                )
        if command == "cancel":
            run.cancelling = True
        self._send(run, (command,))
        if command == "cancel":  # a worker mid-evaluation answers within a block
            threading.Thread(target=self._reap, args=(run, 5.0), daemon=True).start()
        return run.as_dict()

    def predict(self, run_id, pixels, timeout=10.0):
        """``serve.describe_prediction`` with the run's weights as they are now."""
        from .serve import describe_prediction

        run = self.get(run_id)
        if run.state == "done":
            return describe_prediction(run.id, run.model, pixels)
        if run.state not in ("running", "paused"):
            raise RunError(409, f"run {run.id} is {run.state}: it has no weights to predict with")
        token = next(self._tokens)
        waiting = self._answers[token] = [threading.Event(), None]
        try:
            self._send(run, ("predict", token, pixels, run.id))
            if not waiting[0].wait(timeout):
                if run.state == "done":
                    return describe_prediction(run.id, run.model, pixels)
                raise RunError(503, f"run {run.id} did not answer within {timeout:g} s")
        finally:
            self._answers.pop(token, None)
        answer = waiting[1]
        if "error" in answer:
            raise RunError(503, answer["error"])
        return answer

    def close(self):
        """Stop every run (the server is stopping): cancel, then terminate."""
        with self._lock:
            self._closed = True
            alive = [r for r in self._runs.values() if r.process is not None]
            for run in list(self._queue):
                self._finish(run, "cancelled")
            self._queue.clear()
        for run in alive:
            try:
                self._send(run, ("cancel",))
            except RunError:
                pass
        for run in alive:
            self._reap(run, 2.0)

    # -- internals
    def _position(self, run):
        try:
            return self._queue.index(run) + 1
        except ValueError:
            return None

    def _forget_old(self):
        finished = [r for r in self._runs.values() if r.state in FINAL]
        while len(self._runs) >= LIMITS["kept"] and finished:
            del self._runs[finished.pop(0).id]

    def _send(self, run, message):
        with run.send_lock:
            try:
                run.conn.send(message)
            except (OSError, AttributeError, ValueError):
                raise RunError(409, f"run {run.id} is {run.state}") from None

    def _start_waiting(self):
        """Start queued runs while a worker is free (the lock is held)."""
        busy = sum(r.process is not None for r in self._runs.values())
        while self._queue and busy < self.workers and not self._closed:
            run = self._queue.popleft()
            mine, theirs = self._context.Pipe()
            run.conn = mine
            run.process = self._context.Process(
                target=_work,
                args=(theirs, run.settings, run.id),
                daemon=True,
                name=f"mlp_lib run {run.id}",
            )
            run.process.start()
            theirs.close()
            run.state, run.started = "running", time.time()
            threading.Thread(target=self._listen, args=(run,), daemon=True).start()
            busy += 1
        for place, run in enumerate(self._queue, 1):
            run.add("queue", {"position": place})

    def _listen(self, run):
        """Read a worker's messages until it ends (one thread per live run)."""
        final = None
        try:
            while True:
                kind, *args = run.conn.recv()
                if kind == "blocks":
                    run.step = args[0][-1]["step"]
                    run.add_many("block", args[0])
                elif kind == "eval":
                    run.add("eval", args[0])
                elif kind == "prediction":
                    waiting = self._answers.get(args[0])
                    if waiting is not None:
                        waiting[1] = args[1]
                        waiting[0].set()
                elif kind == "state":
                    state, detail = args
                    if state in FINAL:
                        final = (state, detail)
                        break
                    run.state = state
                    run.add("state", {"state": state, "step": run.step})
                elif kind == "done":
                    run.result, run.model = args[0], args[1]
                    run.step = run.settings["steps"] if args[0]["diverged_at"] is None else run.step
                    final = ("done", None)
                    break
        except (EOFError, OSError):
            pass
        with self._lock:
            if final is None:
                code = run.process.exitcode if run.process else None
                final = ("failed", f"the worker process ended without a result (exit {code})")
                if self._closed or run.cancelling:
                    final = ("cancelled", None)
            self._finish(run, *final)
            self._start_waiting()
        self._reap(run, 2.0)

    def _finish(self, run, state, detail=None):
        """Record the end of ``run`` (the lock is held); the state and the last
        event change together, so a viewer that sees the end has its event."""
        if run.state in FINAL:
            return
        with run.changed:
            run.state, run.finished = state, time.time()
            if state == "failed":
                run.error = detail
            if state == "done":
                run.add("done", {"step": run.step, "result": run.result})
            else:
                run.add("state", {"state": state, "step": run.step, "error": run.error})
        run.ended_process, run.process = run.process, None

    def _reap(self, run, timeout):
        """Wait for the run's process to exit; terminate it if it will not."""
        process = run.process or run.ended_process
        if process is None:
            return
        process.join(timeout)
        if process.is_alive():
            process.terminate()
            process.join(2.0)
            if process.is_alive():
                process.kill()
                process.join(1.0)
