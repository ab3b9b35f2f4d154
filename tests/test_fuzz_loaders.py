"""Files from anywhere: hypothesis feeds the loaders damaged and crafted files. Each gets
the project's own error (CheckpointError, DataError), quickly, and never another
exception, a hang or a large allocation."""

import io
import json
import struct
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mlp_lib import MLP
from mlp_lib.io.checkpoint import CheckpointError, TrainingState, load_checkpoint, save_checkpoint
from mlp_lib.io.data import DataError, read_image

FUZZ = settings(
    max_examples=60,
    deadline=2000,  # ms a file: a loader that hangs or crawls fails here
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # the same files every run: a failure is a failure, not a flake
)
LARGE = 64 * 1024**2  # bytes: no file here may make the loader allocate more


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small checkpoint of an interrupted run: (its bytes, its members by name)."""
    path = tmp_path_factory.mktemp("fuzz") / "good.npz"
    state = TrainingState(
        "minibatch", 4, 2, {"name": "constant", "lr": 0.1}, 2, "abcd", np.arange(4.0), 32,
        {"bit_generator": "PCG64"}, {"info": None}, {"optimizer_v0": np.ones((3, 5))},
    )  # fmt: skip
    save_checkpoint(path, MLP([6, 5, 4], seed=0), state)
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    return path.read_bytes(), members


def _loads_or_refuses(data, tmp_path):
    """Load ``data`` as a checkpoint: the project's error or a model, nothing else, and
    no more than LARGE bytes allocated on the way."""
    path = tmp_path / "fuzzed.npz"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        load_checkpoint(path)
    except CheckpointError as exc:
        assert str(path) in str(exc)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < LARGE, f"{peak:,} bytes allocated"


def _zip(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _npy_header(shape, descr="<f8", extra=b""):
    """A .npy file whose header claims ``shape`` of ``descr``, followed by ``extra``."""
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (-(10 + len(header) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + extra


@FUZZ
@given(data=st.data())
def test_damaged_bytes_are_refused(checkpoint, tmp_path, data):
    good, _ = checkpoint
    damaged = bytearray(good)
    how = data.draw(st.sampled_from(["flip", "truncate", "splice"]))
    if how == "flip":
        for at in data.draw(st.lists(st.integers(0, len(good) - 1), min_size=1, max_size=16)):
            damaged[at] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "truncate":
        damaged = damaged[: data.draw(st.integers(0, len(good) - 1))]
    else:
        at = data.draw(st.integers(0, len(good) - 1))
        damaged[at : at + 8] = data.draw(st.binary(min_size=1, max_size=64))
    _loads_or_refuses(bytes(damaged), tmp_path)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip


@FUZZ
@given(data=st.data())
def test_well_formed_archives_with_wrong_contents_are_refused(checkpoint, tmp_path, data):
    _, members = checkpoint
    members = dict(members)
    meta = json.loads(str(np.load(io.BytesIO(members["meta.npy"]))))
    what = data.draw(
        st.sampled_from(["meta value", "training value", "meta itself", "array", "header", "drop"])
    )
    if what == "meta value":
        meta[data.draw(st.sampled_from(sorted(meta)))] = data.draw(JSON)
        members["meta.npy"] = _npy(np.array(json.dumps(meta)))
    elif what == "training value":
        meta["training"][data.draw(st.sampled_from(sorted(meta["training"])))] = data.draw(JSON)
        members["meta.npy"] = _npy(np.array(json.dumps(meta)))
    elif what == "meta itself":
        members["meta.npy"] = data.draw(
            st.sampled_from([_npy(np.array("{not json")), _npy(np.array(3)), _npy(np.zeros(2)),
                             _npy(np.array([{"a": 1}], dtype=object)), b"not an npy file"])
        )  # fmt: skip
    elif what == "array":
        name = data.draw(st.sampled_from(sorted(n for n in members if n != "meta.npy")))
        dtype = data.draw(st.sampled_from(["<f8", "<f4", "<i8", "|u1", "<c16", "|b1", "<U3"]))
        shape = tuple(data.draw(st.lists(st.integers(0, 6), max_size=3)))
        members[name] = _npy(np.zeros(shape, dtype))
    elif what == "header":  # a header that claims far more than the file holds
        name = data.draw(st.sampled_from(sorted(members)))
        shape = tuple(data.draw(st.lists(st.integers(1, 10**7), min_size=1, max_size=3)))
        members[name] = _npy_header(shape, extra=b"\0" * data.draw(st.integers(0, 64)))
    else:
        del members[data.draw(st.sampled_from(sorted(members)))]
    _loads_or_refuses(_zip(members), tmp_path)


def test_a_member_that_claims_gigabytes_is_refused_from_its_header(checkpoint, tmp_path):
    """A tiny member whose .npy header states 10^9 rows: refused before its data is read,
    with nothing allocated for it."""
    _, members = checkpoint
    cases = [
        ("weights_0.npy", (10**9, 5), r"weights_0 has shape \(1000000000, 5\)"),
        ("state_optimizer_v0.npy", (10**9,), "state_optimizer_v0 claims 8,000,000,000 bytes"),
    ]
    for name, shape, message in cases:
        path = tmp_path / "crafted.npz"
        path.write_bytes(_zip(dict(members, **{name: _npy_header(shape, extra=b"\0" * 40)})))
        tracemalloc.start()
        try:
            with pytest.raises(CheckpointError, match=message):
                load_checkpoint(path)
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert peak < LARGE, f"{name}: {peak:,} bytes allocated"


def _png(width, height, mode_byte=0, depth=8, body=b""):
    """A PNG whose header says ``width`` × ``height`` (its data may say otherwise)."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, depth, mode_byte, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(body)) + chunk(b"IEND", b"")  # fmt: skip


def _image(mode, size):
    from PIL import Image

    buffer = io.BytesIO()
    image = Image.new(mode, size)
    image.save(buffer, format="TIFF" if mode in ("F", "I", "I;16", "CMYK") else "PNG")
    return buffer.getvalue()


IMAGES = st.one_of(
    st.binary(max_size=256),
    st.builds(_png, st.integers(0, 2**31 - 1), st.integers(0, 2**31 - 1),
              st.sampled_from([0, 2, 3, 4, 6, 7]), st.sampled_from([1, 2, 4, 8, 16, 3]),
              st.binary(max_size=64)),
    st.builds(_image, st.sampled_from(["1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16", "F", "CMYK"]),
              st.tuples(st.integers(1, 40), st.integers(1, 40))),
)  # fmt: skip


@FUZZ
@given(data=IMAGES, cut=st.integers(0, 400), flips=st.lists(st.integers(0, 10**6), max_size=4))
def test_odd_images_are_read_or_refused(data, cut, flips):
    damaged = bytearray(data)
    if damaged and cut:
        damaged = damaged[: max(1, len(damaged) - cut)] if cut % 2 else damaged
        for at in flips:
            damaged[at % len(damaged)] ^= 0x5A
    tracemalloc.start()
    try:
        pixels = read_image(bytes(damaged), name="upload")
    except DataError as exc:
        assert "upload" in str(exc)
    else:
        assume(pixels is not None)
        assert pixels.ndim == 2 and np.isfinite(pixels).all()
        assert pixels.min() >= 0 and pixels.max() <= 1
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < LARGE, f"{peak:,} bytes allocated"
