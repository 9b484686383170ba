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


def test_a_large_transparent_picture_is_reduced_in_bands_as_it_would_be_whole() -> None:
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (700, 4500, 4), dtype=np.uint8)  # over 2 x 2048 wide: averaged 2 x 2 first
    rgba[:, :1000, 3] = 0  # a transparent part, whose colours must not bleed into the rest
    loaded = load_image(encode(Image.fromarray(rgba, "RGBA")))
    whole = Image.fromarray(rgba, "RGBA").convert("RGBa").reduce(2).convert("RGBA")  # the whole picture at once
    expected = Image.alpha_composite(Image.new("RGBA", whole.size, (255, 255, 255, 255)), whole).convert("RGB")
    expected = expected.resize((MAX_SIDE, 319), Image.Resampling.LANCZOS)
    np.testing.assert_array_equal(loaded.pixels, np.asarray(expected))
    assert (loaded.pixels[:, :450] == 255).all()  # the transparent part is white
    assert loaded.original_size == (4500, 700) and loaded.scale == MAX_SIDE / 4500


@pytest.mark.parametrize("mode", ["P", "LA", "1"])
def test_large_pictures_of_every_mode_load(mode: str) -> None:
    rgba = np.zeros((300, 4200, 4), np.uint8)  # over 2 x 2048 wide: averaged down before converting
    rgba[:, 2100:] = (200, 40, 40, 255)  # the right half an opaque colour, the left half transparent
    picture = Image.fromarray(rgba, "RGBA")
    source = picture.convert(mode)
    if mode == "P":
        source.info["transparency"] = source.getpixel((0, 0))  # the left half's palette entry
    loaded = load_image(encode(source))
    assert loaded.pixels.shape == (146, MAX_SIDE, 3) and loaded.original_size == (4200, 300)
    if mode != "1":  # transparent left (a white background), the colour's own grey or hue right
        assert (loaded.pixels[:, :900] == 255).all() and (loaded.pixels[:, -900:] < 255).any()


def test_sixteen_bit_grey_keeps_its_levels() -> None:
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (64, 1))  # Pillow's own convert: all white
    loaded = load_image(encode(Image.fromarray(ramp)))  # mode "I;16"
    np.testing.assert_array_equal(loaded.pixels[..., 0], (ramp >> 8).astype(np.uint8))
    assert (loaded.pixels == loaded.pixels[..., :1]).all()  # grey


def test_a_large_jpeg_is_decoded_small_and_turned_as_shown() -> None:
    photo = Image.fromarray(astronaut()).resize((8000, 6000), Image.Resampling.BILINEAR)
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned a quarter clockwise: 6000 wide, 8000 high
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=90, exif=exif)
    loaded = load_image(buffer.getvalue())  # decoded at 4000x3000 (JPEG's 1/2 scale), then turned and fitted
    assert loaded.original_size == (6000, 8000) and loaded.pixels.shape == (MAX_SIDE, 1536, 3)
    assert loaded.scale == MAX_SIDE / 8000
    reference = np.asarray(Image.fromarray(astronaut()).rotate(-90, expand=True).resize((1536, MAX_SIDE)))
    assert np.abs(loaded.pixels.astype(int) - reference).mean() < 6  # the same picture, turned


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
