"""PRNet's UV-space data: which position-map pixels are face vertices, their triangles, landmarks.

The files come from the upstream repository (``Data/uv-data``). ``face_ind.txt`` and
``triangles.txt`` both follow from ``uv_face_mask.png`` by fixed rules, implemented here so the
files can be checked (and the rules tested) rather than trusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from t2f.errors import ModelUnavailable
from t2f.faces import UV_SIZE, grid_triangles

# sha256 of the upstream files at YadiraF/PRNet commit fc12fe5e1f1462bdea52409b213d0cf1c8cf6c5b.
UV_FILES = {
    "face_ind.txt": "86a7ce5131d3c827c368fd3c1236ded6b5d80802f1abd5cf98940ba0595ab231",
    "triangles.txt": "8b220a97756a4f7265d22f7ad2b3aa3812588671b7821ab075a563d900b47074",
    "uv_kpt_ind.txt": "158f329a0e5518b7553195cf2373f91b9ada697b6071cdafb52b573d488a1c60",
    "canonical_vertices.npy": "724ceae7e9be10a86670159f3cdc4a4abd5bd8d3c29a475c17115b6ada55112c",
    "uv_face_mask.png": "66e0c5e555619d708202639058adbeece545b67fef52a22eabd46cc71494a6c6",
}


def face_indices_from_mask(mask: np.ndarray) -> np.ndarray:
    """Row-major flat indices of the mask's non-zero pixels.

    Parameters
    ----------
    mask : (256, 256) array, non-zero on the face.

    Returns
    -------
    face_ind : (V,) int64, ascending (index = row * 256 + col).
    """
    return np.flatnonzero(np.asarray(mask).reshape(-1)).astype(np.int64)


def triangles_from_mask(mask: np.ndarray) -> np.ndarray:
    """PRNet's triangulation of the UV face mask (../shared/docs/prnet.md §7), vectorised.

    As upstream, where id 0 doubled as "no vertex", no triangle uses vertex 0 (one is lost).

    Returns
    -------
    triangles : (F, 3) int32, 0-based vertex ids in face_ind order.
    """
    flat = np.asarray(mask).reshape(-1) != 0
    ids = np.full(flat.shape, -1, dtype=np.int64)
    ids[flat] = np.arange(int(flat.sum()))
    return grid_triangles(ids.reshape(np.asarray(mask).shape), skip_vertex_zero=True)


@dataclass(frozen=True)
class UVData:
    """UV-space constants.

    Attributes
    ----------
    face_ind : (V,) int64 flat indices of the V = 43,867 face pixels of the 256x256 map.
    triangles : (F, 3) int32, F = 86,906, 0-based into the V vertices; counter-clockwise in
        pixel coordinates with y down.
    kpt_ind : (2, 68) int64 pixel of each iBUG-68 landmark: row 0 column u, row 1 row v.
    canonical_vertices : (V, 3) float64, the mean face used for pose estimation.
    """

    face_ind: np.ndarray
    triangles: np.ndarray
    kpt_ind: np.ndarray
    canonical_vertices: np.ndarray

    @classmethod
    def load(cls, folder: Path) -> UVData:
        """Read the upstream files from ``folder`` and check they agree with each other."""
        missing = [name for name in UV_FILES if not (folder / name).is_file()]
        if missing:
            raise ModelUnavailable(
                f"PRNet's UV data is incomplete in '{folder}': missing {', '.join(missing)}. "
                "Fetch it with: t2f download"
            )
        face_ind = np.loadtxt(folder / "face_ind.txt").astype(np.int64)
        triangles = np.loadtxt(folder / "triangles.txt").astype(np.int32)
        kpt_ind = np.loadtxt(folder / "uv_kpt_ind.txt").astype(np.int64)
        canonical = np.load(folder / "canonical_vertices.npy")
        if kpt_ind.shape != (2, 68) or canonical.shape != (face_ind.size, 3) or triangles.max() >= face_ind.size:
            raise ModelUnavailable(f"PRNet's UV data in '{folder}' is inconsistent. Fetch it again with: t2f download")
        return cls(face_ind=face_ind, triangles=triangles, kpt_ind=kpt_ind, canonical_vertices=canonical)

    @property
    def uv_coords(self) -> np.ndarray:
        """(V, 2) float32 texture coordinates (u right, v down) in [0, 1): pixel / 256."""
        rows, cols = np.divmod(self.face_ind, UV_SIZE)
        return (np.stack([cols, rows], axis=1) / UV_SIZE).astype(np.float32)


def load_mask(path: Path) -> np.ndarray:
    """(256, 256) bool face mask from ``uv_face_mask.png``."""
    mask = np.asarray(Image.open(path))
    return (mask[..., 0] if mask.ndim == 3 else mask) > 0
