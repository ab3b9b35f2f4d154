"""Checkpoints: a model, and optionally the state of an unfinished training run,
in one ``.npz`` file that loads with ``allow_pickle=False``.

Layout: arrays ``weights_0``, ``biases_0``, ... and, for training, ``losses``;
a JSON string ``meta`` holds the format version, library version, layer sizes,
activation, init, dtype and the training state (step, epochs, schedule,
generator state, batch size, a fingerprint of the data).

A checkpoint may come from anywhere, so loading checks before it trusts: the
members' sizes from the zip headers, then the metadata against a schema (known
keys, types, ranges, a limit on parameters), and only then allocates the
model. Saving is atomic across a crash: the file is written beside the
target, flushed to disk, renamed over it, and the directory entry is flushed.
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

from ..core.model import MLP
from .project import VERSION

__all__ = [
    "CheckpointError",
    "TrainingState",
    "save_checkpoint",
    "load_checkpoint",
    "data_fingerprint",
]

FORMAT = 1

#: Limits checked from the file's headers before anything is read or allocated,
#: so that a crafted file cannot exhaust memory: parameters of the stated
#: architecture, bytes of any one member and of all members once decompressed.
MAX_PARAMETERS = 100_000_000
MAX_MEMBER_BYTES = 2 * 1024**3
MAX_TOTAL_BYTES = 4 * 1024**3
MAX_META_BYTES = 1024**2


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, truncated or does not match."""


@dataclass
class TrainingState:
    """Where a training run stands, enough to continue it bit for bit.

    ``step`` steps are done (images for per-sample SGD, batches for mini-batch);
    ``losses`` holds the loss of each of them. ``rng_state`` is the mini-batch
    generator's state at the start of the current epoch (its shuffle is drawn
    again on resume). ``fingerprint`` identifies the training data. Mini-batch
    runs also keep, in ``extra`` (JSON) and ``arrays`` (named arrays), what
    their options accumulate: the optimiser's state, the dropout and
    augmentation generators, the validation history and the best weights.
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
    extra: dict | None = None
    arrays: dict | None = field(default=None, repr=False)


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
    path = Path(path)
    meta = {
        "format": FORMAT,
        "library": "mlp_lib",
        "version": VERSION,
        "layer_sizes": model.layer_sizes,
        "activation": model.activation,
        "init": model.init,
        "dtype": model.dtype.name,
        "training": None,
    }
    arrays = {}
    for l, (w, b) in enumerate(zip(model.weights, model.biases)):
        arrays[f"weights_{l}"], arrays[f"biases_{l}"] = w, b
    if state is not None:
        training = asdict(state)
        arrays["losses"] = np.asarray(training.pop("losses"), dtype=np.float64)
        for name, array in (training.pop("arrays") or {}).items():
            arrays[f"state_{name}"] = array
        meta["training"] = training
    arrays["meta"] = np.array(json.dumps(meta))
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the rename
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; follow the umask
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    _fsync_directory(path.parent)  # and so is the rename
    return path


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_directory(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse
        pass
    finally:
        os.close(fd)


_META_KEYS = {
    "format",
    "library",
    "version",
    "layer_sizes",
    "activation",
    "init",
    "dtype",
    "training",
}
_TRAINING_TYPES = {
    "trainer": str,
    "step": int,
    "epochs": int,
    "schedule": dict,
    "record_every": int,
    "fingerprint": str,
    "batch_size": (int, type(None)),
    "rng_state": (dict, type(None)),
    "extra": (dict, type(None)),
}
_TRAINING_OPTIONAL = {"extra"}


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _check_meta(meta, path):
    """Refuse metadata of the wrong shape before anything is allocated from it."""
    from ..core.functional import ACTIVATIONS
    from ..core.init import INITS

    def bad(what):
        raise CheckpointError(f"{path}: metadata invalid: {what}")

    if not isinstance(meta, dict):
        bad(f"a JSON object expected, got {type(meta).__name__}")
    if meta.get("library") != "mlp_lib" or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an mlp_lib checkpoint of format {FORMAT}")
    unknown = set(meta) - _META_KEYS
    missing = _META_KEYS - set(meta)
    if unknown or missing:
        bad(f"unknown keys {sorted(unknown)}" if unknown else f"missing keys {sorted(missing)}")
    sizes = meta["layer_sizes"]
    if (
        not isinstance(sizes, list)
        or not 2 <= len(sizes) <= 64
        or not all(_is_int(n) and 1 <= n <= 10**6 for n in sizes)
    ):
        bad(f"layer_sizes must be 2 to 64 ints in 1..1000000, got {str(sizes)[:80]}")
    n_parameters = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    if n_parameters > MAX_PARAMETERS:
        bad(f"{n_parameters:,} parameters, more than the limit of {MAX_PARAMETERS:,}")
    if not isinstance(meta["activation"], str) or not isinstance(meta["init"], str):
        bad("activation and init must be names")
    if meta["activation"] not in ACTIVATIONS or meta["init"] not in INITS:
        bad(f"unknown activation {meta['activation']!r} or init {meta['init']!r}")
    if not isinstance(meta["dtype"], str) or meta["dtype"] not in ("float32", "float64"):
        bad(f"dtype must be float32 or float64, got {meta['dtype']!r}")
    training = meta["training"]
    if training is None:
        return
    if (
        not isinstance(training, dict)
        or not set(training) <= set(_TRAINING_TYPES)
        or not set(_TRAINING_TYPES) - _TRAINING_OPTIONAL <= set(training)
    ):
        bad(f"training state must have the keys {sorted(_TRAINING_TYPES)}")
    for key, kind in _TRAINING_TYPES.items():
        if key not in training:
            continue
        value = training[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            bad(f"training {key} has the wrong type ({type(value).__name__})")
    if training["trainer"] not in ("per-sample", "minibatch"):  # (a str: checked above)
        bad(f"unknown trainer {training['trainer']!r}")
    for key in ("epochs", "record_every"):
        if training[key] < 1:
            bad(f"training {key} must be at least 1, got {training[key]}")
    if training["step"] < 0 or (training["batch_size"] is not None and training["batch_size"] < 1):
        bad("training step must be >= 0 and batch_size >= 1")


def _check_sizes(archive, path):
    """The members' sizes, from the zip headers, within the limits."""
    total = 0
    for member in archive.infolist():
        limit = MAX_META_BYTES if member.filename == "meta.npy" else MAX_MEMBER_BYTES
        if member.file_size > limit:
            raise CheckpointError(
                f"{path}: member {member.filename} holds "
                f"{member.file_size:,} bytes, more than the limit of "
                f"{limit:,}"
            )
        total += member.file_size
    if total > MAX_TOTAL_BYTES:
        raise CheckpointError(
            f"{path}: {total:,} bytes in all, more than the limit of {MAX_TOTAL_BYTES:,}"
        )


_HEADERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def _read_npy(archive, name, path, shape=None, dtype=None, needed_by="the metadata"):
    """Member ``name``'s array. Its ``.npy`` header is read and checked first (a
    numeric dtype; ``shape`` and ``dtype`` if given; no more bytes than the member
    holds), so a crafted header allocates nothing; then exactly its bytes."""
    try:
        info = archive.getinfo(f"{name}.npy")
    except KeyError:
        raise CheckpointError(f"{path}: array {name} is missing") from None
    with archive.open(info) as member:
        header = _HEADERS.get(np.lib.format.read_magic(member))
        if header is None:
            raise CheckpointError(f"{path}: {name} is not a .npy array of version 1 or 2")
        got_shape, fortran, got_dtype = header(member)
        if got_dtype.kind not in "fiuU" or got_dtype.hasobject:
            raise CheckpointError(
                f"{path}: not a readable checkpoint: {name} holds {got_dtype} values (only "
                f"numbers and text are read; nothing is unpickled)"
            )
        if (shape is not None and got_shape != shape) or (dtype is not None and got_dtype != dtype):
            raise CheckpointError(
                f"{path}: {name} has shape {got_shape} dtype {got_dtype}, {needed_by} needs "
                f"{shape} {dtype}"
            )
        count = int(np.prod(got_shape, dtype=np.int64))
        size = count * got_dtype.itemsize
        if not 0 <= size <= info.file_size:
            raise CheckpointError(f"{path}: {name} claims {size:,} bytes; it holds fewer")
        data = member.read(size)
    if len(data) != size:
        raise CheckpointError(f"{path}: {name} is truncated")
    order = "F" if fortran else "C"
    return np.frombuffer(data, got_dtype, count).reshape(got_shape, order=order).copy()


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
        with zipfile.ZipFile(path) as archive:
            _check_sizes(archive, path)
            meta = _read_meta(archive, path)
            model = MLP(
                meta["layer_sizes"], meta["activation"], meta["init"], dtype=meta["dtype"], seed=0
            )
            for l in range(model.n_layers):
                for name, target in (
                    (f"weights_{l}", model.weights[l]),
                    (f"biases_{l}", model.biases[l]),
                ):
                    needed_by = f"the architecture {meta['layer_sizes']}"
                    target[...] = _read_npy(
                        archive, name, path, target.shape, target.dtype, needed_by
                    )
            state = _read_state(archive, path, meta["training"])
    except CheckpointError:
        raise
    except Exception as exc:  # zipfile, zlib, numpy's header parser: a damaged file, in any way
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or corrupt .npz: "
            f"{type(exc).__name__}: {exc})"
        ) from None
    return model, state


def _read_meta(archive, path):
    """The metadata, checked against the schema (``_check_meta``)."""
    if "meta.npy" not in archive.namelist():
        raise CheckpointError(f"{path}: metadata missing (no 'meta' array)")
    text = _read_npy(archive, "meta", path, shape=())
    if text.dtype.kind != "U":
        raise CheckpointError(f"{path}: metadata invalid: a JSON string expected")
    try:
        meta = json.loads(str(text))
    except ValueError as exc:
        raise CheckpointError(f"{path}: metadata invalid: not JSON ({exc})") from None
    _check_meta(meta, path)
    return meta


def _read_state(archive, path, training):
    """The training state of an unfinished run, or None for a finished model."""
    if training is None:
        return None
    losses = _read_npy(archive, "losses", path, (training["step"],), np.dtype(np.float64))
    extra_arrays = {
        name[len("state_") : -len(".npy")]: _read_npy(archive, name[: -len(".npy")], path)
        for name in archive.namelist()
        if name.startswith("state_") and name.endswith(".npy")
    }
    try:
        return TrainingState(losses=losses, arrays=extra_arrays or None, **training)
    except TypeError as exc:
        raise CheckpointError(f"{path}: training state invalid ({exc})") from None
