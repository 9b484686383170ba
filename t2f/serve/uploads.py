"""Making result files fit an upload budget: zip first, then a lighter mesh, never a failed upload.

The budget comes from whoever delivers the files (the Discord cog knows Discord's limits; nothing
here does).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable

from t2f.files.outputs import IMAGE_FILE, PREVIEW_FILE, TURNTABLE_FILE
from t2f.serve.jobs import UploadBudget

# Attached as they are (the pictures); mesh files may be zipped or simplified.
ALWAYS_SHOWN = (TURNTABLE_FILE, PREVIEW_FILE, IMAGE_FILE)
ZIPPED = "The mesh files were zipped to fit the upload limit."
SIMPLIFIED = "The mesh was simplified to about a quarter of its vertices to fit the upload limit."
DROPPED = "The mesh was too large to upload here even simplified; only the pictures are attached."


def zip_bytes(files: dict[str, bytes]) -> bytes:
    """A deflate-compressed zip of ``files`` (names kept, so relative MTL/texture paths still resolve)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def fits(files: dict[str, bytes], budget: UploadBudget) -> bool:
    sizes = [len(data) for data in files.values()]
    return all(size <= budget.per_file for size in sizes) and sum(sizes) <= budget.total


def fit_for_upload(
    files: dict[str, bytes],
    *,
    budget: UploadBudget,
    lighter: Callable[[], dict[str, bytes]] | None = None,
) -> tuple[dict[str, bytes], str | None]:
    """Return files that fit ``budget``, and a note saying what was changed (or None).

    Tried in order: as they are; the mesh files zipped into ``face.zip``; ``lighter()`` (a
    simplified mesh's files, made only now), as they are then zipped; the pictures alone.
    """
    if fits(files, budget):
        return files, None
    shown = {name: data for name, data in files.items() if name in ALWAYS_SHOWN}
    rest = {name: data for name, data in files.items() if name not in ALWAYS_SHOWN}
    candidates = [({**shown, "face.zip": zip_bytes(rest)}, ZIPPED)]
    if lighter is not None:
        light = {name: data for name, data in lighter().items() if name not in ALWAYS_SHOWN}
        candidates += [({**shown, **light}, SIMPLIFIED), ({**shown, "face.zip": zip_bytes(light)}, SIMPLIFIED)]
    for candidate, note in candidates:
        if fits(candidate, budget):
            return candidate, note
    return shown, DROPPED
