"""The data sets for an installed package: fetched once, verified, kept in a cache.

A source checkout reads its committed ``data/``. An installed package has none,
so, as torchvision, Keras and scikit-learn do, ``load_mnist`` and
``load_dataset`` fetch a missing file on first use:

* into the package's cache, ``data/`` of ``project.cache_dir()``
  (``$MLP_LIB_CACHE``, else the platform's cache folder: ``~/.cache/mlp_lib``
  on Linux), one folder per data set. A folder named by ``$MLP_LIB_DATA``,
  ``--data`` or ``root=`` is the user's own and is never fetched into: a file
  missing there is an error that says so;
* from the data set's mirrors, tried in order (``$MLP_LIB_MIRRORS``, base URLs
  separated by spaces, replaces them: a local mirror, or none);
* verified: the sha256 of the decompressed bytes must be the one the project
  records (``data.MNIST_FILES``); a truncated, corrupt or wrong file is
  refused and the next mirror tried;
* written atomically: downloaded beside the target under a temporary name and
  renamed only once verified, so a partial or corrupt download never becomes
  the cache;
* with a progress bar on a terminal, and a clear error offline that says where
  to put the files by hand.
"""

from __future__ import annotations

import gzip
import http.client
import hashlib
import os
import tempfile
import urllib.request
import zlib
from pathlib import Path

__all__ = ["MIRRORS", "mirrors", "fetch_missing"]

#: Where each data set's original ``.gz`` files are published (base URLs, in the order
#: tried): the mirrors torchvision and TensorFlow use for MNIST, and Fashion-MNIST's own.
MIRRORS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
}
TIMEOUT = 30  # seconds without a byte before a mirror is given up
LIMIT = 64 * 1024**2  # bytes: no data set file is near this; a larger answer is refused


def mirrors(dataset):
    """The base URLs tried for ``dataset``, in order (``$MLP_LIB_MIRRORS`` if set)."""
    if "MLP_LIB_MIRRORS" in os.environ:
        return tuple(url.rstrip("/") + "/" for url in os.environ["MLP_LIB_MIRRORS"].split())
    return MIRRORS[dataset]


def fetch_missing(dataset, root, files, error):
    """Fetch each of ``files`` ((name, sha256 of the decompressed bytes) pairs) that
    ``root`` lacks, as ``name.gz``. ``error`` is the data module's error class."""
    root = Path(root)
    for name, sha256 in files:
        if (root / f"{name}.gz").is_file() or (root / name).is_file():
            continue
        root.mkdir(parents=True, exist_ok=True)
        failures = []
        for base in mirrors(dataset):
            url = f"{base}{name}.gz"
            try:
                _download(url, root / f"{name}.gz", sha256)
                break
            except (OSError, ValueError, http.client.HTTPException) as exc:
                # unreachable, an HTTP error (an OSError), cut short on the wire, bad bytes
                failures.append(f"{url}: {exc}")
        else:
            tried = "; ".join(failures) or "no mirror given ($MLP_LIB_MIRRORS is empty)"
            raise error(
                f"{dataset}: {name}.gz is not in {root} and could not be fetched ({tried}). "
                f"Offline, copy the four IDX files of {dataset} (train-images-idx3-ubyte.gz, "
                f"train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
                f"t10k-labels-idx1-ubyte.gz) into {root}, or point mlp_lib at a folder "
                f"holding them: MLP_LIB_DATA=DIR, load_dataset(name, split, root=DIR) or "
                f"the CLI's --data DIR."
            )


def _download(url, target, sha256):
    """``url`` into ``target``, atomically, once its decompressed sha256 is right."""
    from tqdm import tqdm

    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT) as answer:
            size = int(answer.headers.get("Content-Length") or 0) or None
            if size is not None and size > LIMIT:
                raise ValueError(f"{size:,} bytes announced; no data set file is that large")
            bar = tqdm(total=size, unit="B", unit_scale=True, desc=target.name, disable=None)
            with bar:
                received = 0
                while chunk := answer.read(1 << 16):
                    received += len(chunk)
                    if received > LIMIT:
                        raise ValueError(f"more than {LIMIT:,} bytes; not a data set file")
                    out.write(chunk)
                    bar.update(len(chunk))
            if size is not None and received != size:
                raise ValueError(f"truncated: {received:,} of {size:,} bytes")
        _verify(Path(partial), sha256)
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def _verify(path, sha256):
    """Raise ValueError unless ``path`` is gzip whose content has ``sha256``."""
    try:
        content = gzip.decompress(path.read_bytes())
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ValueError(f"not a complete gzip file ({exc})") from None
    digest = hashlib.sha256(content).hexdigest()
    if digest != sha256:
        raise ValueError(f"sha256 of the content is {digest[:12]}…, not {sha256[:12]}…")
