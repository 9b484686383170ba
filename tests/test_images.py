from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.data import astronaut

from t2f.errors import InvalidImage
from t2f.files.images import MAX_SIDE, load_image


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def test_rgb_png_and_jpeg_decode_to_uint8_rgb() -> None:
    photo = Image.fromarray(astronaut())
    for fmt in ("PNG", "JPEG"):
        loaded = load_image(encode(photo, fmt))
        assert loaded.pixels.shape == (512, 512, 3) and loaded.pixels.dtype == np.uint8
        assert loaded.scale == 1.0 and loaded.original_size == (512, 512)
    np.testing.assert_array_equal(load_image(encode(photo)).pixels, astronaut())


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P", "I;16"])
def test_other_modes_become_rgb(mode: str) -> None:
    source = Image.fromarray(astronaut()).convert(mode) if mode != "I;16" else Image.new("I;16", (64, 64), 300)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    loaded = load_image(encode(source, fmt))
    assert loaded.pixels.ndim == 3 and loaded.pixels.shape[2] == 3


def test_transparent_areas_become_white_not_black() -> None:
    rgba = np.zeros((64, 64, 4), np.uint8)
    loaded = load_image(encode(Image.fromarray(rgba, "RGBA")))
    assert (loaded.pixels == 255).all()


def test_huge_images_are_downscaled() -> None:
    big = Image.new("RGB", (4096, 1024), (10, 20, 30))
    loaded = load_image(encode(big))
    assert loaded.pixels.shape == (512, MAX_SIDE, 3)
    assert loaded.original_size == (4096, 1024) and loaded.scale == 0.5


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The image file is empty."),
        (b"%PDF-1.7 definitely not a picture", "That file is not an image t2f can read"),
        (encode(Image.fromarray(astronaut()), "PNG")[:5000], "The image file is damaged or truncated"),
        (encode(Image.new("RGB", (10, 10))), "The image is too small (10x10 pixels)"),
    ],
)
def test_bad_files_are_refused_clearly(data: bytes, message: str) -> None:
    with pytest.raises(InvalidImage) as caught:
        load_image(data)
    assert caught.value.user_message.startswith(message)


def test_decompression_bombs_are_refused_before_decoding() -> None:
    # A tiny PNG that claims 20000 x 20000 pixels.
    bomb = encode(Image.new("1", (20000, 20000)))
    assert len(bomb) < 200_000
    with pytest.raises(InvalidImage, match="too large"):
        load_image(bomb)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidImage, match="Could not read the image file"):
        load_image(tmp_path / "nope.png")


def test_limit_and_message_agree_at_100_megapixels() -> None:
    """PIL warns from 89.5 MP; a 99-MP image must pass t2f's own 100-MP gate (and fail only as truncated here)."""
    import warnings

    filters, limit = list(warnings.filters), Image.MAX_IMAGE_PIXELS
    under = encode(Image.new("1", (9950, 9950)))  # 99.0 MP; cut short so nothing large is decoded
    with pytest.raises(InvalidImage) as caught:
        load_image(under[: len(under) // 2])
    assert caught.value.user_message == "The image file is damaged or truncated; send it again."
    over = encode(Image.new("1", (10050, 10000)))  # 100.5 MP: under PIL's hard limit, over t2f's
    with pytest.raises(InvalidImage) as caught:
        load_image(over)
    assert caught.value.user_message == (
        "The image is too large (10050x10000 pixels is over 100 megapixels); send a smaller one."
    )
    assert warnings.filters == filters and limit == Image.MAX_IMAGE_PIXELS  # nothing of PIL's state leaked
