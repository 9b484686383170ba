"""Reading user images: any common format in, (H, W, 3) uint8 RGB out, or a clear refusal."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

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
        image.load()
    except InvalidImage:
        raise
    except Image.DecompressionBombError:  # over twice PIL's limit: refused by PIL before the header check
        raise InvalidImage(TOO_LARGE.format(size="its size")) from None
    except UnidentifiedImageError:
        raise InvalidImage("That file is not an image t2f can read; send a PNG, JPEG or WebP picture.") from None
    except (OSError, ValueError, SyntaxError):
        raise InvalidImage("The image file is damaged or truncated; send it again.") from None
    image = ImageOps.exif_transpose(image)
    if min(image.size) < MIN_SIDE:
        raise InvalidImage(
            f"The image is too small ({image.size[0]}x{image.size[1]} pixels); send at least {MIN_SIDE}x{MIN_SIDE}."
        )
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    image = image.convert("RGB")
    original = image.size
    scale = 1.0
    if max(original) > MAX_SIDE:
        scale = MAX_SIDE / max(original)
        size = (max(1, round(original[0] * scale)), max(1, round(original[1] * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return LoadedImage(pixels=np.asarray(image, dtype=np.uint8).copy(), original_size=original, scale=scale)
