"""MNIST and Fashion-MNIST from the original IDX files: reader, checksums,
``load_dataset`` and ``load_mnist``.

The IDX format (LeCun et al.) is a 4-byte magic number ``00 00 TT DD``
(``TT`` = element type, ``0x08`` for unsigned bytes; ``DD`` = number of
dimensions), then ``DD`` big-endian 32-bit sizes, then the data in C order.

The files may be gzip-compressed or raw. The sha256 checked is that of the
*decompressed* bytes, so it does not depend on how the files were gzipped.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from pathlib import Path

import numpy as np

from .fetch import fetch_missing
from .project import DATA_DIR, cache_dir

__all__ = [
    "DataError",
    "read_idx",
    "load_mnist",
    "load_dataset",
    "DATASETS",
    "MNIST_FILES",
    "FASHION_MNIST_FILES",
    "default_root",
    "read_image",
    "image_to_mnist",
]

# sha256 of the decompressed IDX bytes (docs/experiments.md, "Data").
MNIST_FILES = {
    "train": {
        "images": (
            "train-images-idx3-ubyte",
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        ),
        "labels": (
            "train-labels-idx1-ubyte",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        ),
        "count": 60000,
    },
    "test": {
        "images": (
            "t10k-images-idx3-ubyte",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        ),
        "labels": (
            "t10k-labels-idx1-ubyte",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
        "count": 10000,
    },
}

# Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017): the same format and sizes; sha256 of the
# decompressed bytes, as its SHA256SUMS lists them.
FASHION_MNIST_FILES = {
    "train": {
        "images": (
            "train-images-idx3-ubyte",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        ),
        "labels": (
            "train-labels-idx1-ubyte",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        ),
        "count": 60000,
    },
    "test": {
        "images": (
            "t10k-images-idx3-ubyte",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        ),
        "labels": (
            "t10k-labels-idx1-ubyte",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
        "count": 10000,
    },
}

#: The datasets ``load_dataset`` knows: name -> the checksums of its files.
DATASETS = {"mnist": MNIST_FILES, "fashion-mnist": FASHION_MNIST_FILES}

_GZIP_MAGIC = b"\x1f\x8b"
_UBYTE = 0x08
_FIX = "Restore it from the repository (git checkout -- data/) or copy the original file there."


class DataError(ValueError):
    """A data file is unreadable or not what it should be; the message names the
    file, the problem and the fix."""


def default_root(dataset="mnist") -> Path:
    """Where ``load_dataset(dataset, ...)`` looks.

    With ``$MLP_LIB_DATA``: its subfolder named after the dataset if there is
    one, else (MNIST) the folder itself, else (other datasets) a sibling
    folder of that name. Without it: ``data/<dataset>`` of the source checkout
    this package lives in, or, for an installed package, ``data/<dataset>`` of
    its cache, where missing files are fetched on first use (``fetch``).
    """
    return _default_location(dataset)[0]


def _default_location(dataset):
    """(``default_root(dataset)``, whether it is the package's own cache: the one
    folder fetched into, never a user's)."""
    _check_dataset(dataset)
    env = os.environ.get("MLP_LIB_DATA")
    if env:
        env = Path(env)
        if (env / dataset).is_dir():
            return env / dataset, False
        return (env if dataset == "mnist" else env.parent / dataset), False
    if (DATA_DIR / dataset).is_dir():
        return DATA_DIR / dataset, False
    return cache_dir() / "data" / dataset, True


def _check_dataset(name):
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")


def _read_bytes(path: Path) -> bytes:
    """The file's content, decompressed if it is gzip."""
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise DataError(
                f"{path}: the gzip stream is truncated or corrupt ({exc}). " + _FIX
            ) from None
    if path.suffix == ".gz":
        raise DataError(
            f"{path}: the name ends in .gz but the file is not gzip "
            f"(first bytes {raw[:4].hex(' ')}). " + _FIX
        )
    return raw


def read_idx(path, expected_shape=None, sha256=None) -> np.ndarray:
    """Read one IDX file of unsigned bytes, gzipped or raw.

    Parameters
    ----------
    path : str or Path
        The file.
    expected_shape : tuple of int or None
        If given, the dimensions the header must state (checked before the data).
    sha256 : str or None
        If given, the hex sha256 the decompressed bytes must have.

    Returns
    -------
    numpy.ndarray of uint8, with the shape the header states (read-only view of
    the file's bytes).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    DataError
        Not gzip though named .gz, truncated, wrong magic number, wrong
        dimensions, wrong length, or checksum mismatch.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found. " + _FIX)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path}: only {len(data)} bytes, too short for an IDX header. " + _FIX)
    if data[0] != 0 or data[1] != 0 or data[2] != _UBYTE or data[3] == 0:
        raise DataError(
            f"{path}: wrong magic number {data[:4].hex(' ')}; an IDX file of "
            f"unsigned bytes starts with 00 00 08 and its number of "
            f"dimensions. " + _FIX
        )
    ndim = data[3]
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(
            f"{path}: truncated header ({len(data)} bytes, {header_len} needed). " + _FIX
        )
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, 4))
    if expected_shape is not None and shape != tuple(expected_shape):
        raise DataError(
            f"{path}: wrong dimensions {shape}, expected {tuple(expected_shape)}. " + _FIX
        )
    expected_len = header_len + int(np.prod(shape))
    if len(data) != expected_len:
        problem = "truncated" if len(data) < expected_len else "has trailing bytes"
        raise DataError(
            f"{path}: {problem}: {len(data)} bytes, the header of shape "
            f"{shape} needs {expected_len}. " + _FIX
        )
    if sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256:
            raise DataError(
                f"{path}: checksum mismatch: sha256 of the decompressed "
                f"bytes is {digest}, expected {sha256}. " + _FIX
            )
    return np.frombuffer(data, np.uint8, offset=header_len).reshape(shape)


def _find(root: Path, name: str) -> Path:
    """``name.gz`` if present, else the raw ``name``; error lists both."""
    for candidate in (root / (name + ".gz"), root / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{root / (name + '.gz')}: file not found (nor the raw {name}). Point mlp_lib at a "
        f"folder holding the four IDX files (or a folder with mnist/ and fashion-mnist/ in "
        f"it): MLP_LIB_DATA=DIR, load_dataset(name, split, root=DIR) or the CLI's --data DIR; "
        f"in a source checkout, git checkout -- data/ restores them."
    )


_cache: dict = {}


def load_raw(dataset: str, split: str, root=None):
    """The verified uint8 arrays ``(images (N, 28, 28), labels (N,))`` of a
    dataset's split, cached per process (read-only: callers must copy before
    changing them)."""
    _check_dataset(dataset)
    files = DATASETS[dataset]
    if split not in files:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    spec = files[split]
    if root is None:
        root, cache = _default_location(dataset)
        if cache:  # an installed package: fetch what is missing, once
            fetch_missing(dataset, root, [spec["images"], spec["labels"]], DataError)
    root = Path(root)
    paths = [_find(root, spec[kind][0]) for kind in ("images", "labels")]
    key = tuple((str(p.resolve()), p.stat().st_mtime_ns, p.stat().st_size) for p in paths)
    cached = _cache.get((dataset, split))
    if cached is None or cached[0] != key:
        n = spec["count"]
        images = read_idx(paths[0], (n, 28, 28), spec["images"][1])
        labels = read_idx(paths[1], (n,), spec["labels"][1])
        if labels.max() > 9:
            raise DataError(f"{paths[1]}: label {labels.max()} outside 0..9. " + _FIX)
        _cache[(dataset, split)] = (key, (images, labels))
    return _cache[(dataset, split)][1]


def load_raw_mnist(split: str, root=None):
    """``load_raw("mnist", split, root)``."""
    return load_raw("mnist", split, root)


def load_dataset(name: str, split: str, root=None, dtype=np.float64):
    """Load a split of ``"mnist"`` or ``"fashion-mnist"``, verified against the
    sha256 of its decompressed files.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
    split : {"train", "test"}
        60,000 training or 10,000 test images.
    root : str or Path, optional
        Folder holding the four IDX files (``.gz`` or raw). Default:
        ``default_root(name)`` (the repository's ``data/<name>``, or as
        ``$MLP_LIB_DATA`` says).
    dtype : numpy dtype, default float64
        Float type of the images.

    Returns
    -------
    images : ndarray, shape (N, 784), values ``x / 255`` in [0, 1]
    labels : ndarray of int64, shape (N,), values 0..9

    The images are in file order, which is the training order of the report.
    """
    images, labels = load_raw(name, split, root)
    flat = images.reshape(len(images), 784).astype(dtype)
    flat /= 255
    return flat, labels.astype(np.int64)


def load_mnist(split: str, root=None, dtype=np.float64):
    """``load_dataset("mnist", split, root, dtype)``: MNIST, verified against the
    checksums in docs/experiments.md."""
    return load_dataset("mnist", split, root, dtype)


#: Largest image ``read_image`` decodes (pixels), checked from the file's header.
MAX_IMAGE_PIXELS = 25_000_000

# The full range of each Pillow mode's values, to scale them to [0, 1].
_MODE_RANGE = {
    "1": 1,
    "L": 255,
    "LA": 255,
    "RGB": 255,
    "RGBA": 255,
    "I;16": 65535,
    "I;16L": 65535,
    "I;16B": 65535,
    "I;16N": 65535,
}


def _image_name(source, name):
    """What messages call an image: ``name``, else its path, else "the image"."""
    if name is not None:
        return name
    return "the image" if isinstance(source, (bytes, bytearray, memoryview)) else Path(source)


def read_image(source, name=None):
    """An image as floats in [0, 1]: (H, W) gray, or (H, W, 3) colour with
    the alpha channel composited on white. Each mode is scaled by its own range
    (8-bit by 255, 16-bit by 65535); the size is checked from the header before
    anything is decoded.

    ``source`` is a file path or the file's bytes (e.g. an upload); ``name``
    is what error messages call it (default: the path, or "the image").

    Raises
    ------
    FileNotFoundError, DataError
    """
    import io
    import warnings

    from PIL import Image

    path = _image_name(source, name)
    if isinstance(source, (bytes, bytearray, memoryview)):
        opened = io.BytesIO(source)
    else:
        opened = Path(source)
        if not opened.is_file():
            raise FileNotFoundError(f"{path}: image not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(opened) as image:  # reads the header only
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise DataError(
                        f"{path}: {width}×{height} = {width * height:,} pixels, "
                        f"more than the limit of {MAX_IMAGE_PIXELS:,}"
                    )
                mode = image.mode
                if mode not in _MODE_RANGE and mode not in ("I", "F"):
                    image = image.convert("RGBA")  # palette, CMYK, YCbCr, ...
                    mode = "RGBA"
                values = np.asarray(image)
    except DataError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own, larger limit: say ours
        import re

        count = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(count.group(1)):,} pixels" if count else "its size"
        raise DataError(f"{path}: {size}, more than the limit of {MAX_IMAGE_PIXELS:,}") from None
    except Exception as exc:  # Pillow raises many kinds for bad files
        raise DataError(f"{path}: not a readable image ({exc})") from None
    if mode == "I":  # 32-bit ints: Pillow's mode for 16-bit PNG and TIFF files
        top = 65535 if values.max(initial=0) <= 65535 else 2**31 - 1
    elif mode == "F":  # floats: [0, 1] if they fit, else [0, 255]
        top = 1.0 if values.max(initial=0) <= 1 else 255.0
    else:
        top = _MODE_RANGE[mode]
    pixels = values.astype(np.float64) / top
    if not np.isfinite(pixels).all():
        raise DataError(f"{path}: the image holds NaN or infinite values")
    if mode in ("LA", "RGBA"):  # composite on white
        alpha = pixels[..., -1:]
        pixels = pixels[..., :-1] * alpha + (1 - alpha)
        pixels = pixels[..., 0] if mode == "LA" else pixels
    if pixels.ndim == 3:
        pixels = pixels @ np.array([0.299, 0.587, 0.114])
    return np.clip(pixels, 0, 1)


def image_to_mnist(source, name=None):
    """A photo or drawing of one digit, as a 784-vector prepared like MNIST.

    Steps (as LeCun et al. prepared MNIST): grayscale (alpha composited on
    white); inverted if the background is light, so the digit is bright on
    dark; contrast stretched to [0, 1]; cropped to the digit; scaled so its
    longer side is 20 pixels; placed in a 28×28 frame with its centre of mass
    at the centre. ``source`` and ``name`` are as ``read_image`` takes them:
    the CLI's ``predict`` passes paths, ``serve`` the bytes of an upload.

    Raises
    ------
    FileNotFoundError, DataError
        Missing, unreadable or blank image.
    """
    from scipy import ndimage

    pixels = read_image(source, name)
    path = _image_name(source, name)
    if pixels.ndim != 2:
        raise DataError(f"{path}: expected a 2-D image, got shape {pixels.shape}")
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    if np.median(border) > 0.5:  # dark digit on light paper
        pixels = 1 - pixels
    low, high = np.median(border if np.median(border) <= 0.5 else 1 - border), pixels.max()
    if high - low < 0.1:
        raise DataError(f"{path}: the image is blank (no digit found)")
    pixels = np.clip((pixels - low) / (high - low), 0, 1)
    rows, cols = np.nonzero(pixels > 0.2)
    digit = pixels[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scale = 20 / max(digit.shape)
    digit = np.clip(ndimage.zoom(digit, scale, order=1, grid_mode=True, mode="grid-constant"), 0, 1)
    frame = np.zeros((28, 28))
    top, left = (28 - digit.shape[0]) // 2, (28 - digit.shape[1]) // 2
    frame[top : top + digit.shape[0], left : left + digit.shape[1]] = digit[:28, :28]
    centre = np.array(ndimage.center_of_mass(frame))
    frame = ndimage.shift(frame, np.array([13.5, 13.5]) - centre, order=1, mode="constant")
    return np.clip(frame, 0, 1).reshape(784)
