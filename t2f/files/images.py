"""Reading user images: any common format in, (H, W, 3) uint8 RGB out, or a clear refusal."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from t2f.errors import InvalidImage

MAX_SIDE = 2048  # larger images are downscaled: PRNet sees 256 px and detection gains nothing
MAX_PIXELS = 100_000_000  # refuse before decoding anything larger (decompression bombs)
TOO_LARGE = "The image is too large ({size} is over 100 megapixels); send a smaller one."
MIN_SIDE = 32


@dataclass(frozen=True)
class LoadedImage:
    """An image ready for the pipeline.

    Attributes
    ----------
    pixels : (H, W, 3) uint8 RGB, at most ``MAX_SIDE`` a side.
    original_size : (width, height) of the file before any downscale.
    scale : pixels / original (1.0 when not downscaled).
    """

    pixels: np.ndarray
    original_size: tuple[int, int]
    scale: float


def load_image(source: bytes | Path) -> LoadedImage:
    """Decode ``source`` (file path or bytes) to RGB.

    Grayscale and palette images are expanded, alpha is dropped (composited on white so
    transparent areas do not turn black), CMYK is converted, EXIF orientation is applied, and
    images over 2048 px a side are downscaled.

    Raises
    ------
    InvalidImage
        For non-image bytes, truncated or empty files, images too small or too large.
    """
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
    except OSError as exc:
        raise InvalidImage(f"Could not read the image file ({exc.strerror or type(exc).__name__}).") from None
    if not data:
        raise InvalidImage("The image file is empty.")
    try:
        # PIL warns from 89.5 MP (its MAX_IMAGE_PIXELS) and refuses from twice that; t2f's own limit is
        # MAX_PIXELS, checked below on the header alone. So the warning is silenced for this call only
        # (PIL's global limit is left as it is) and the limit and the message agree.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise InvalidImage(TOO_LARGE.format(size=f"{width}x{height} pixels"))
        # A JPEG decodes at 1/2, 1/4 or 1/8 scale while that still covers the size kept: an 8000x6000 photo
        # at 4000x3000, 94 MiB instead of 369 (bench/results/images-cpu.md).
        image.draft(image.mode, _fitted((width, height)))
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
        image.load()
    except InvalidImage:
        raise
    except Image.DecompressionBombError:  # over twice PIL's limit: refused by PIL before the header check
        raise InvalidImage(TOO_LARGE.format(size="its size")) from None
    except UnidentifiedImageError:
        raise InvalidImage("That file is not an image t2f can read; send a PNG, JPEG or WebP picture.") from None
    except (OSError, ValueError, SyntaxError):
        raise InvalidImage("The image file is damaged or truncated; send it again.") from None
    ImageOps.exif_transpose(image, in_place=True)  # a copy otherwise: twice the memory of a large picture
    original = (height, width) if orientation in (5, 6, 7, 8) else (width, height)  # turned as shown
    if min(original) < MIN_SIDE:
        raise InvalidImage(
            f"The image is too small ({original[0]}x{original[1]} pixels); send at least {MIN_SIDE}x{MIN_SIDE}."
        )
    if image.mode.startswith("I;16") or image.mode == "I":
        image = _eight_bit_grey(image)
    transparent = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if (factor := max(image.size) // MAX_SIDE) > 1:  # converted and composited at about MAX_SIDE, not full size
        image = _reduced(image, factor, transparent)
    if transparent:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    image = image.convert("RGB")
    if (size := _fitted(original)) != image.size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    scale = MAX_SIDE / max(original) if max(original) > MAX_SIDE else 1.0
    return LoadedImage(pixels=np.asarray(image, dtype=np.uint8).copy(), original_size=original, scale=scale)


def _reduced(image: Image.Image, factor: int, transparent: bool) -> Image.Image:
    """``image`` averaged over ``factor`` x ``factor`` blocks, colours weighted by alpha where it has one.

    Before any conversion at full size: a 100-MP RGBA PNG took 1.5 GB converted and composited whole. A
    picture that must be converted first (premultiplied alpha, a palette) is, a band of rows at a time.
    """
    modes = ("RGBA", "RGBa") if transparent else ("RGB",) if image.mode in ("P", "1") else ()
    if not modes:
        return image.reduce(factor)
    width, height = image.size
    reduced = Image.new(modes[-1], (-(-width // factor), -(-height // factor)))
    rows = factor * 64  # a whole number of blocks: the bands average as the whole picture would
    for top in range(0, height, rows):
        band = image.crop((0, top, width, min(height, top + rows)))
        for mode in modes:  # P and LA reach premultiplied RGBa only through RGBA
            band = band.convert(mode)
        reduced.paste(band.reduce(factor), (0, top // factor))
    return reduced


def _fitted(size: tuple[int, int]) -> tuple[int, int]:
    """``size`` (width, height) shrunk to at most ``MAX_SIDE`` a side, aspect kept; as it is if it fits."""
    if max(size) <= MAX_SIDE:
        return size
    scale = MAX_SIDE / max(size)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _eight_bit_grey(image: Image.Image) -> Image.Image:
    """A 16-bit grey image ("I;16", or "I" with values over 255) as 8-bit "L", by its top byte: Pillow's own
    conversion clips every level over 255, which turns a 16-bit photo white."""
    levels = np.asarray(image)
    if image.mode.startswith("I;16") or levels.max(initial=0) > 255:
        return Image.fromarray((np.clip(levels, 0, 65535) >> 8).astype(np.uint8), "L")
    return Image.fromarray(np.clip(levels, 0, 255).astype(np.uint8), "L")
