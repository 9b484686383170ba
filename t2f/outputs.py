"""Writing result files: the one place that puts a job's bytes on disk.

Writers elsewhere return ``str``/``bytes``; this module writes them atomically (a temporary
file renamed into place) so a crash or a full disk never leaves a half-written result behind.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def png_bytes(image: np.ndarray, *, compress_level: int = 3) -> bytes:
    """Encode an (H, W, 3) or (H, W, 4) uint8 image as PNG.

    zlib level 3 is about twice as fast as Pillow's default 6 for files about 10% larger.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3|4) uint8 image, got {image.shape} {image.dtype}")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def json_bytes(data: Mapping[str, Any]) -> bytes:
    """Pretty, UTF-8 JSON with a trailing newline."""
    return (json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8")


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_files(folder: Path, files: Mapping[str, bytes]) -> list[Path]:
    """Write every ``name -> bytes`` pair into ``folder``; returns the paths in order."""
    paths = []
    for name, data in files.items():
        path = folder / name
        write_atomic(path, data)
        paths.append(path)
    return paths
