"""An installed package fetches its data sets on first use (``mlp_lib.io.fetch``): from a
real HTTP server on this machine serving good, truncated, corrupt and missing files. No
test reaches the internet."""

import functools
import gzip
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from mlp_lib.io import data
from mlp_lib.io.data import DataError, load_mnist

ROOT = Path(__file__).resolve().parents[1]
TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """A local HTTP server with four mirrors: good/, truncated/, corrupt/ (right size,
    wrong bytes), wrong/ (a valid gzip of other data) and empty/ (404s); (base URL,
    the paths it was asked for)."""
    site = tmp_path_factory.mktemp("mirror")
    for name in ("good", "truncated", "corrupt", "wrong", "empty"):
        (site / name).mkdir()
    for file in TEST_FILES:
        original = (ROOT / "data" / "mnist" / file).read_bytes()
        (site / "good" / file).write_bytes(original)
        (site / "truncated" / file).write_bytes(original[: len(original) // 2])
        flipped = bytearray(original)
        flipped[len(flipped) // 2] ^= 0xFF
        (site / "corrupt" / file).write_bytes(bytes(flipped))
        (site / "wrong" / file).write_bytes(gzip.compress(b"\0" * 1000))
    asked = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            asked.append(self.path)
            if not self.path.startswith("/liar/"):
                return super().do_GET()
            whole = (site / "good" / self.path.split("/")[-1]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(whole)))
            self.end_headers()
            self.wfile.write(whole[: len(whole) // 2])
            self.close_connection = True

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(site))
    )
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", asked
    server.shutdown()
    server.server_close()


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """This package as if installed: no checkout data, an empty cache; the cache folder."""
    monkeypatch.setattr(data, "DATA_DIR", tmp_path / "no-checkout-data")
    monkeypatch.setenv("MLP_LIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLP_LIB_DATA", raising=False)
    data._cache.clear()
    yield tmp_path / "cache" / "data" / "mnist"
    data._cache.clear()


def _mirrors(monkeypatch, base, *names):
    monkeypatch.setenv("MLP_LIB_MIRRORS", " ".join(f"{base}/{name}" for name in names))


def test_a_missing_data_set_is_fetched_verified_and_kept(installed, mirror, monkeypatch):
    base, asked = mirror
    _mirrors(monkeypatch, base, "good")
    asked.clear()
    images, labels = load_mnist("test")
    data._cache.clear()
    committed = load_mnist("test", root=ROOT / "data" / "mnist")
    assert np.array_equal(images, committed[0]) and np.array_equal(labels, committed[1])
    assert sorted(p.name for p in installed.iterdir()) == sorted(TEST_FILES)
    assert sorted(asked) == sorted(f"/good/{file}" for file in TEST_FILES)
    data._cache.clear()
    load_mnist("test")  # the second time, from the cache
    assert len(asked) == 2


def test_mirrors_are_tried_in_order_past_missing_truncated_and_corrupt_files(
    installed, mirror, monkeypatch
):
    base, asked = mirror
    _mirrors(monkeypatch, base, "empty", "truncated", "corrupt", "wrong", "good")
    asked.clear()
    images, _ = load_mnist("test")
    assert images.shape == (10000, 784)
    tried = [path.split("/")[1] for path in asked if path.endswith(TEST_FILES[0])]
    assert tried == ["empty", "truncated", "corrupt", "wrong", "good"]
    assert sorted(p.name for p in installed.iterdir()) == sorted(TEST_FILES)  # no partial file


def test_when_every_mirror_fails_nothing_is_kept_and_the_error_says_what_to_do(
    installed, mirror, monkeypatch
):
    base, _ = mirror
    _mirrors(monkeypatch, base, "empty", "truncated", "wrong")
    with pytest.raises(DataError) as caught:
        load_mnist("test")
    message = str(caught.value)
    assert f"{base}/empty/t10k-images-idx3-ubyte.gz: HTTP Error 404" in message
    assert "not a complete gzip file" in message  # the truncated one
    assert "sha256 of the content is" in message  # the wrong one
    for hint in (
        "Offline, copy the four IDX files",
        str(installed),
        "MLP_LIB_DATA=DIR",
        "--data DIR",
    ):
        assert hint in message
    assert not installed.exists() or not any(installed.iterdir())


def test_offline_the_error_comes_at_once(installed, monkeypatch):
    monkeypatch.setenv("MLP_LIB_MIRRORS", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(DataError, match="could not be fetched.*127.0.0.1:9.*Offline"):
        load_mnist("test")
    monkeypatch.setenv("MLP_LIB_MIRRORS", "")
    with pytest.raises(DataError, match=r"no mirror given \(\$MLP_LIB_MIRRORS is empty\)"):
        load_mnist("test")


def test_a_users_own_folder_is_never_fetched_into(tmp_path, mirror, monkeypatch):
    base, asked = mirror
    _mirrors(monkeypatch, base, "good")
    monkeypatch.setenv("MLP_LIB_DATA", str(tmp_path))
    asked.clear()
    with pytest.raises(FileNotFoundError, match="file not found"):
        load_mnist("test")
    with pytest.raises(FileNotFoundError, match="file not found"):
        load_mnist("test", root=tmp_path)
    assert asked == [] and not any(tmp_path.iterdir())


def test_a_checkout_reads_its_committed_data(mirror, monkeypatch):
    base, asked = mirror
    _mirrors(monkeypatch, base, "good")
    monkeypatch.delenv("MLP_LIB_DATA", raising=False)
    asked.clear()
    assert data.default_root("mnist") == ROOT / "data" / "mnist"
    load_mnist("test")
    assert asked == []


def test_a_file_cut_short_on_the_wire_is_refused(installed, mirror, monkeypatch):
    """The liar/ mirror announces each file's full Content-Length, sends half, and hangs up."""
    base, asked = mirror
    _mirrors(monkeypatch, base, "liar", "good")
    asked.clear()
    load_mnist("test")
    assert [path.split("/")[1] for path in asked] == ["liar", "good", "liar", "good"]
    assert all((installed / file).read_bytes()[:2] == b"\x1f\x8b" for file in TEST_FILES)
