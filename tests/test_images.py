"""Images from users: every mode scaled by its own range, big files refused
from their header, integer batches refused by ``distort``."""

import numpy as np
import pytest
from PIL import Image

from mlp_lib.io import data
from mlp_lib.core.augment import distort
from mlp_lib.io.data import DataError, image_to_mnist, read_image


def _seven():
    """A dark '7' on light paper, 60×44, values in [0, 1]."""
    page = np.ones((60, 44))
    page[8:14, 6:38] = 0.05
    for row in range(14, 54):
        col = 34 - (row - 14) // 2
        page[row, col - 3 : col + 3] = 0.05
    return page


def _save(tmp_path, page, mode):
    if mode == "L":
        image = Image.fromarray((page * 255).astype(np.uint8))
    elif mode == "LA":
        image = Image.fromarray((page * 255).astype(np.uint8)).convert("LA")
    elif mode == "RGB":
        image = Image.fromarray((page * 255).astype(np.uint8)).convert("RGB")
    elif mode == "RGBA":
        rgba = np.zeros(page.shape + (4,), np.uint8)  # transparent paper, opaque ink
        rgba[..., 3] = ((1 - page) * 255).astype(np.uint8)
        image = Image.fromarray(rgba)
    elif mode == "P":
        image = Image.fromarray((page * 255).astype(np.uint8)).convert("P")
    elif mode in ("I;16 png", "I;16 tiff"):
        image = Image.fromarray((page * 65535).astype(np.uint16))
    elif mode == "I":
        image = Image.fromarray((page * 65535).astype(np.int32))
    elif mode == "F":
        image = Image.fromarray(page.astype(np.float32))
    suffix = ".tif" if mode in ("I;16 tiff", "I", "F") else ".png"
    path = tmp_path / f"digit-{mode.replace(' ', '-').replace(';', '')}{suffix}"
    image.save(path)
    return path


@pytest.mark.parametrize("mode", ["LA", "RGB", "RGBA", "P", "I;16 png", "I;16 tiff", "I", "F"])
def test_every_mode_is_scaled_by_its_own_range(tmp_path, mode):
    expected = image_to_mnist(_save(tmp_path, _seven(), "L"))
    path = _save(tmp_path, _seven(), mode)
    pixels = read_image(path)
    assert pixels.ndim == 2 and 0 <= pixels.min() and pixels.max() <= 1
    assert abs(np.median(pixels) - 1.0) < 0.01  # the paper reads as white
    assert np.abs(image_to_mnist(path) - expected).max() < 0.05


def test_sixteen_bit_images_are_not_divided_by_255(tmp_path):
    """A faint 16-bit digit (ink at 60% grey) keeps its scale: divided by 255 it
    would clip to white everywhere and look blank."""
    page = np.where(_seven() < 0.5, 0.6, 1.0)
    pixels = read_image(_save(tmp_path, page, "I;16 png"))
    assert abs(pixels.min() - 0.6) < 1e-3 and abs(pixels.max() - 1.0) < 1e-3
    assert image_to_mnist(_save(tmp_path, page, "I;16 png")).max() > 0.9


def test_images_over_the_pixel_limit_are_refused_from_their_header(tmp_path, monkeypatch):
    path = _save(tmp_path, _seven(), "L")
    monkeypatch.setattr(data, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(DataError, match=r"44×60 = 2,640 pixels, more than the limit of 1,000"):
        read_image(path)
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("decoded"))
    with pytest.raises(DataError, match="more than the limit"):
        image_to_mnist(path)


def test_unreadable_and_blank_images(tmp_path):
    (tmp_path / "x.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="not a readable image"):
        read_image(tmp_path / "x.png")
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "missing.png")
    blank = _save(tmp_path, np.ones((30, 30)), "I;16 png")
    with pytest.raises(DataError, match="blank"):
        image_to_mnist(blank)


def test_distort_refuses_integer_images():
    rng = np.random.default_rng(0)
    with pytest.raises(TypeError, match="float images"):
        distort(np.zeros((2, 784), np.uint8), rng)
    out = distort(np.zeros((2, 784), np.float32), rng)
    assert out.dtype == np.float32
