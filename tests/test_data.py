import gzip
import hashlib

import numpy as np
import pytest

from mlp_lib import DataError, load_mnist
from mlp_lib.io.data import MNIST_FILES, default_root, read_idx


def test_shapes_dtypes_and_range(mnist_train, mnist_test):
    for (images, labels), n in ((mnist_train, 60000), (mnist_test, 10000)):
        assert images.shape == (n, 784) and images.dtype == np.float64
        assert labels.shape == (n,) and labels.dtype == np.int64
        assert images.min() == 0.0 and images.max() == 1.0
        assert set(np.unique(labels)) == set(range(10))


def test_sanity_facts_from_spec(mnist_train):
    images, labels = mnist_train
    assert labels[0] == 5
    assert np.bincount(labels).tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]
    assert round(float(images.mean() * 255), 3) == 33.318


def test_committed_files_match_spec_checksums():
    for split in MNIST_FILES.values():
        for kind in ("images", "labels"):
            name, digest = split[kind]
            raw = gzip.decompress((default_root() / (name + ".gz")).read_bytes())
            assert hashlib.sha256(raw).hexdigest() == digest


def test_float32_and_copies_are_independent():
    images, _ = load_mnist("test", dtype=np.float32)
    assert images.dtype == np.float32
    images[:] = 7
    assert load_mnist("test")[0].max() == 1.0


def test_bad_split():
    with pytest.raises(ValueError, match="'train' or 'test'"):
        load_mnist("validation")


# ---------------------------------------------------------------- bad files
def _idx(array):
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


@pytest.fixture
def good_idx():
    return _idx(np.arange(2 * 3 * 4).reshape(2, 3, 4))


def test_reads_raw_and_gzip(tmp_path, good_idx):
    (tmp_path / "a").write_bytes(good_idx)
    (tmp_path / "a.gz").write_bytes(gzip.compress(good_idx))
    expected = np.arange(24).reshape(2, 3, 4)
    assert np.array_equal(read_idx(tmp_path / "a"), expected)
    assert np.array_equal(read_idx(tmp_path / "a.gz", (2, 3, 4)), expected)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found.*git checkout"):
        read_idx(tmp_path / "nope.gz")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz: file not found"):
        load_mnist("train", root=tmp_path)


def test_truncated_gzip(tmp_path, good_idx):
    path = tmp_path / "a.gz"
    path.write_bytes(gzip.compress(good_idx)[:-12])
    with pytest.raises(DataError, match="a.gz: the gzip stream is truncated"):
        read_idx(path)


def test_truncated_data(tmp_path, good_idx):
    path = tmp_path / "a"
    path.write_bytes(good_idx[:-5])
    with pytest.raises(DataError, match="truncated: 35 bytes.*needs 40"):
        read_idx(path)


def test_not_gzip(tmp_path, good_idx):
    path = tmp_path / "a.gz"
    path.write_bytes(good_idx)
    with pytest.raises(DataError, match="a.gz: the name ends in .gz but the file is not gzip"):
        read_idx(path)


def test_wrong_magic(tmp_path, good_idx):
    path = tmp_path / "a"
    path.write_bytes(b"\x00\x00\x0d\x03" + good_idx[4:])  # float type, not ubyte
    with pytest.raises(DataError, match="wrong magic number 00 00 0d 03"):
        read_idx(path)


def test_wrong_dimensions(tmp_path, good_idx):
    path = tmp_path / "a"
    path.write_bytes(good_idx)
    with pytest.raises(DataError, match=r"wrong dimensions \(2, 3, 4\), expected \(2, 12\)"):
        read_idx(path, (2, 12))


def test_checksum_mismatch(tmp_path, good_idx):
    path = tmp_path / "a"
    path.write_bytes(good_idx)
    with pytest.raises(DataError, match="checksum mismatch"):
        read_idx(path, sha256="0" * 64)


def test_load_mnist_rejects_a_corrupted_copy(tmp_path):
    """One changed pixel in a real file: only the checksum can tell."""
    for split in MNIST_FILES.values():
        for kind in ("images", "labels"):
            name = split[kind][0] + ".gz"
            (tmp_path / name).write_bytes((default_root() / name).read_bytes())
    name = "t10k-images-idx3-ubyte.gz"
    raw = bytearray(gzip.decompress((tmp_path / name).read_bytes()))
    raw[5000] ^= 1
    (tmp_path / name).write_bytes(gzip.compress(bytes(raw), compresslevel=1))
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: checksum mismatch"):
        load_mnist("test", root=tmp_path)
    assert load_mnist("train", root=tmp_path)[0].shape == (60000, 784)


def test_fashion_mnist_loads_verified_with_ten_balanced_classes():
    from mlp_lib.io.data import load_dataset

    for split, n in (("train", 60000), ("test", 10000)):
        images, labels = load_dataset("fashion-mnist", split, dtype=np.float32)
        assert images.shape == (n, 784) and images.dtype == np.float32
        assert 0 <= images.min() and images.max() <= 1
        assert np.array_equal(np.bincount(labels), np.full(10, n // 10))
    mnist = load_dataset("mnist", "test")[0]
    assert not np.array_equal(mnist, load_dataset("fashion-mnist", "test")[0].astype(np.float64))


def test_unknown_dataset_is_refused_by_name():
    from mlp_lib.io.data import load_dataset

    with pytest.raises(ValueError, match="unknown dataset 'cifar'.*mnist, fashion-mnist"):
        load_dataset("cifar", "train")


def test_mlp_lib_data_may_hold_both_datasets(tmp_path, monkeypatch):
    from mlp_lib.io.data import default_root

    (tmp_path / "fashion-mnist").mkdir()
    monkeypatch.setenv("MLP_LIB_DATA", str(tmp_path))
    assert default_root("fashion-mnist") == tmp_path / "fashion-mnist"
    assert default_root("mnist") == tmp_path  # as before: the MNIST folder
    monkeypatch.setenv("MLP_LIB_DATA", str(tmp_path / "mnist"))
    assert default_root("fashion-mnist") == tmp_path / "fashion-mnist"
