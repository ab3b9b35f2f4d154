"""The models the server answers with: a thread-safe store, and the defaults.

Without checkpoints, ``serve`` offers ``DEFAULT_MODELS``: trained once, one
after another in a child process (``study.jobs.train``, the computation
``reproduce`` and ``sweep`` run), into a cache folder, then loaded from it.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
from dataclasses import dataclass

import numpy as np

from ..io.checkpoint import load_checkpoint, save_checkpoint
from ..io.data import DataError

__all__ = ["DEFAULT_MODELS", "ApiError", "ModelStore", "dead_units", "load_defaults"]

#: The models ``serve`` trains on first use when given no checkpoint:
#: name -> (description, what trains it: ("row" or "rung", its name, options)).
DEFAULT_MODELS = {
    "relu-he-const": (
        "the report's best row: 784-512-256-64-10 ReLU, He init, per-sample SGD at 0.01, 3 epochs",
        ("row", "relu-he-const", {}),
    ),
    "sigmoid-normal": (
        "the report's first row: 784-512-256-64-10 sigmoid, N(0, 0.1) init, linear decay, 3 epochs",
        ("row", "sigmoid-normal", {}),
    ),
    "sprint": (
        "notebook 05's 60-second sprint: 784-1024-10 ReLU, Nesterov, cosine rate, "
        "shifted images, 15 epochs",
        ("rung", "60-second sprint", {}),
    ),
}


class ApiError(Exception):
    """An answer other than 200: ``status`` and a message for ``{"error": ...}``."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def dead_units(model, images):
    """Per hidden layer, the ReLU units that are zero on every image (``None``
    for sigmoid nets: a sigmoid unit is never exactly zero)."""
    if model.activation != "relu":
        return None
    _, cache = model.forward_cache(images.astype(model.dtype))
    return [np.flatnonzero(~(a > 0).any(axis=0)).tolist() for a in cache["A"][1:]]


@dataclass
class _Entry:
    """One model of the store; ``progress`` is a shared value while it trains."""

    model: object = None
    description: str = ""
    state: str = "queued"  # queued, training, ready or failed
    dead: list | None = None
    test_accuracy: float | None = None
    error: str | None = None
    progress: object = None


class ModelStore:
    """The models the server answers with, by name; thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries = {}  # name -> _Entry
        self._probe = None

    def _test_images(self):
        """MNIST's test set, or False when mlp_lib is installed without its data."""
        if self._probe is None:
            try:
                from ..io.data import load_mnist

                self._probe = load_mnist("test")
            except (OSError, DataError):
                self._probe = False
        return self._probe

    def expect(self, name, description):
        """Announce a model that will be trained (queued until ``training``)."""
        with self._lock:
            self._entries.setdefault(name, _Entry(description=description))

    def training(self, name, progress):
        """``name`` is training; ``progress`` is a shared value holding the fraction done."""
        with self._lock:
            self._entries[name].state, self._entries[name].progress = "training", progress

    def add(self, name, model, description="", test_accuracy=None):
        """Offer ``model``; without ``test_accuracy`` it is measured on the test set."""
        from ..core.model import evaluate

        test = self._test_images()
        dead = dead_units(model, test[0][:2000]) if test is not False else None
        if test_accuracy is None and test is not False and model.layer_sizes[0] == 784:
            test_accuracy = evaluate(model, *test)[1]
        with self._lock:
            self._entries[name] = _Entry(model, description, "ready", dead, test_accuracy)

    def fail(self, name, message):
        with self._lock:
            entry = self._entries[name]
            entry.state, entry.error, entry.progress = "failed", message, None

    def names(self):
        with self._lock:
            return list(self._entries)

    def listing(self):
        with self._lock:
            entries = list(self._entries.items())
        listed = []
        for name, e in entries:
            progress = None if e.progress is None else round(float(e.progress.value), 4)
            listed.append(
                {
                    "name": name,
                    "description": e.description,
                    "state": e.state,
                    "ready": e.state == "ready",
                    "error": e.error,
                    "dead": e.dead,
                    "progress": progress,
                    "test_accuracy": e.test_accuracy,
                    "layer_sizes": e.model.layer_sizes if e.model else None,
                    "activation": e.model.activation if e.model else None,
                }
            )
        return listed

    def get(self, name):
        with self._lock:
            if not self._entries:
                raise ApiError(503, "no model is loaded yet")
            name = next(iter(self._entries)) if name is None else name
            entry = self._entries.get(name)
        if entry is None:
            raise ApiError(400, f"unknown model {name!r}; GET /api/models lists them")
        if entry.error:
            raise ApiError(503, f"model {name!r} failed to train: {entry.error}")
        if entry.state != "ready":
            raise ApiError(503, f"model {name!r} is still training; try again soon")
        return name, entry.model


def _train_default(name, spec, path, progress):
    """Train default model ``name`` as ``spec`` says and save it to ``path`` (runs in
    a child process, one BLAS thread, with its own progress bar in the terminal;
    ``progress``, a shared value, follows the fraction done for the page)."""
    from ..study.jobs import Job, train
    from ..study.provenance import provenance

    kind, key, options = spec

    def report(done, total):
        progress.value = done / total

    if hasattr(os, "nice"):  # the playground's runs come first
        os.nice(10)
    result = train(Job(kind, key, 0, **options), progress=report, keep_model=True)
    save_checkpoint(path, result.model)
    record = {
        "model": name,
        "description": DEFAULT_MODELS[name][0] if name in DEFAULT_MODELS else "",
        "seed": 0,
        "test_accuracy": result.test_accuracy,
        "provenance": provenance(f"mlp-lib serve (default model {name})"),
    }
    path.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")


def _cached_accuracy(path):
    """The test accuracy in a default model's cache record, or None."""
    try:
        value = json.loads(path.with_suffix(".json").read_text()).get("test_accuracy")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, (int, float)) else None


def load_defaults(store, cache, announce=print):
    """Load the default models from ``cache``, training those missing one after
    another in a child process. Returns when all are loaded (or failed)."""
    cache.mkdir(parents=True, exist_ok=True)
    for name, (description, _) in DEFAULT_MODELS.items():
        store.expect(name, description)
    missing = [name for name in DEFAULT_MODELS if not (cache / f"{name}.npz").is_file()]
    context = multiprocessing.get_context("spawn")
    for name, (description, spec) in DEFAULT_MODELS.items():
        path = cache / f"{name}.npz"
        if name in missing:
            announce(
                f"training default model {name} ({missing.index(name) + 1} of "
                f"{len(missing)}; once, then kept in {cache})"
            )
            started = time.perf_counter()
            progress = context.Value("d", 0.0, lock=False)
            store.training(name, progress)
            child = context.Process(
                target=_train_default, args=(name, spec, path, progress), daemon=True
            )
            child.start()
            child.join()
            if child.exitcode != 0 or not path.is_file():
                store.fail(name, f"training exited with status {child.exitcode}")
                announce(f"default model {name}: training failed (exit {child.exitcode})")
                continue
            announce(f"default model {name} ready in {time.perf_counter() - started:.0f} s")
        try:
            store.add(name, load_checkpoint(path)[0], description, _cached_accuracy(path))
        except (OSError, ValueError) as exc:
            store.fail(name, str(exc))
            announce(f"default model {name}: {exc}")
