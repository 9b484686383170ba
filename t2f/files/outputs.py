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

IMAGE_FILE = "image.png"  # the painted picture, lossless
# The preview strip is shown once in a chat. JPEG at quality 92 without chroma subsampling looks the
# same there, encodes in 1 ms instead of PNG's 10 ms and is a quarter of the size (bench/reconstruction.py).
PREVIEW_FILE = "preview.jpg"
# The head swinging from side to side, which Discord plays inline (t2f/export/turntable.py says why GIF).
TURNTABLE_FILE = "turntable.gif"


def process_umask() -> int:
    """The process's file-mode creation mask, read without changing it.

    Linux reports it in ``/proc/self/status`` (``Umask:``, since 4.7). Elsewhere the only portable
    way is ``os.umask`` set-and-restore, which briefly changes a process-wide value, so it is done
    once, at import, before any thread of ours writes files.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp creates files 0600 whatever the umask; result files get the mode any file the user writes
# gets (0666 less the umask: 0644 for the usual 022), so a web server running as another user can
# read them. Read once at import: see process_umask for why not on every write.
FILE_MODE = 0o666 & ~process_umask()


def _check_rgb(image: np.ndarray, channels: tuple[int, ...]) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in channels:
        allowed = "|".join(map(str, channels))
        raise ValueError(f"expected an (H, W, {allowed}) uint8 image, got {image.shape} {image.dtype}")


def png_bytes(image: np.ndarray, *, compress_level: int = 3) -> bytes:
    """Encode an (H, W, 3) or (H, W, 4) uint8 image as PNG.

    zlib level 3 is about twice as fast as Pillow's default 6 for files about 10% larger.
    """
    _check_rgb(image, (3, 4))
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def jpeg_bytes(image: np.ndarray, *, quality: int = 92) -> bytes:
    """Encode an (H, W, 3) uint8 image as baseline JPEG with full-resolution colour (4:4:4)."""
    _check_rgb(image, (3,))
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality, subsampling=0)
    return buffer.getvalue()


def json_bytes(data: Mapping[str, Any]) -> bytes:
    """Pretty, UTF-8 JSON with a trailing newline."""
    return (json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8")


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    The file ends with mode ``FILE_MODE`` (0644 under the usual umask 022); missing folders are
    made with the default mode (0755 under umask 022).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        os.fchmod(fd, FILE_MODE)  # before the rename, so the file never appears with another mode
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
