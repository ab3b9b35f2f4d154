"""Checkpoints: a model, and optionally the state of an unfinished training run,
in one ``.npz`` file that loads with ``allow_pickle=False``.

Layout: arrays ``weights_0``, ``biases_0``, ... and, for training, ``losses``;
a JSON string ``meta`` holds the format version, library version, layer sizes,
activation, init, dtype and the training state (step, epochs, schedule,
generator state, batch size, a fingerprint of the data).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .model import MLP

__all__ = ["CheckpointError", "TrainingState", "save_checkpoint", "load_checkpoint",
           "data_fingerprint"]

FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, truncated or does not match."""


@dataclass
class TrainingState:
    """Where a training run stands, enough to continue it bit for bit.

    ``step`` steps are done (images for per-sample SGD, batches for mini-batch);
    ``losses`` holds the loss of each of them. ``rng_state`` is the mini-batch
    generator's state at the start of the current epoch (its shuffle is drawn
    again on resume). ``fingerprint`` identifies the training data.
    """

    trainer: str
    step: int
    epochs: int
    schedule: dict
    record_every: int
    fingerprint: str
    losses: np.ndarray = field(repr=False)
    batch_size: int | None = None
    rng_state: dict | None = None


def data_fingerprint(images, labels):
    """A short hash of the training data (shape, labels and a sample of pixels),
    to refuse resuming on other data."""
    digest = hashlib.sha256()
    digest.update(repr(images.shape).encode())
    digest.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(images[:: max(1, len(images) // 64)]).tobytes())
    return digest.hexdigest()[:16]


def save_checkpoint(path, model: MLP, state: TrainingState | None = None):
    """Write ``model`` (and ``state``) to ``path`` (.npz), atomically: the file is
    written beside the target and renamed, so an interrupted save never leaves
    a half-written checkpoint in its place."""
    from . import __version__
    path = Path(path)
    meta = {"format": FORMAT, "library": "mlp_lib", "version": __version__,
            "layer_sizes": model.layer_sizes, "activation": model.activation,
            "init": model.init, "dtype": model.dtype.name, "training": None}
    arrays = {}
    for l, (w, b) in enumerate(zip(model.weights, model.biases)):
        arrays[f"weights_{l}"], arrays[f"biases_{l}"] = w, b
    if state is not None:
        training = asdict(state)
        arrays["losses"] = np.asarray(training.pop("losses"), dtype=np.float64)
        meta["training"] = training
    arrays["meta"] = np.array(json.dumps(meta))
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def load_checkpoint(path):
    """Read a checkpoint written by ``save_checkpoint``.

    Returns
    -------
    model : MLP
    state : TrainingState or None

    Raises
    ------
    FileNotFoundError, CheckpointError
        With the file named and what is wrong (not a checkpoint, truncated,
        corrupt, arrays that do not match the stated architecture).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        with np.load(path, allow_pickle=False) as archive:
            contents = {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt "
                              f".npz: {exc})") from None
    try:
        meta = json.loads(str(contents.pop("meta")))
        if meta.get("library") != "mlp_lib" or meta.get("format") != FORMAT:
            raise CheckpointError(f"{path}: not an mlp_lib checkpoint of format {FORMAT}")
        model = MLP(meta["layer_sizes"], meta["activation"], meta["init"],
                    dtype=meta["dtype"], seed=0)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: metadata missing or invalid ({exc})") from None
    for l in range(model.n_layers):
        for name, target in ((f"weights_{l}", model.weights[l]),
                             (f"biases_{l}", model.biases[l])):
            array = contents.get(name)
            if array is None:
                raise CheckpointError(f"{path}: array {name} is missing")
            if array.shape != target.shape or array.dtype != target.dtype:
                raise CheckpointError(f"{path}: {name} has shape {array.shape} dtype "
                                      f"{array.dtype}, the architecture "
                                      f"{meta['layer_sizes']} needs {target.shape} "
                                      f"{target.dtype}")
            target[...] = array
    state = None
    if meta.get("training") is not None:
        training = meta["training"]
        losses = contents.get("losses")
        if losses is None or len(losses) != training.get("step"):
            raise CheckpointError(f"{path}: training losses missing or not one per step")
        try:
            state = TrainingState(losses=losses, **training)
        except TypeError as exc:
            raise CheckpointError(f"{path}: training state invalid ({exc})") from None
    return model, state
