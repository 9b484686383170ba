"""A real PRNet mesh for export and render tests, rebuilt from ../shared/prnet/reference-outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io as sio
from skimage.io import imread

from t2f.faces import FaceMesh
from t2f.stages.prnet.postprocess import build_face_mesh
from t2f.stages.prnet.uv import UVData


def reference_mesh(shared_dir: Path, name: str = "image00050") -> tuple[np.ndarray, FaceMesh]:
    """(image, mesh) for one AFLW2000 sample, from PRNet's saved output for it."""
    uv = UVData.load(shared_dir / "prnet" / "uv-data")
    saved = sio.loadmat(str(shared_dir / "prnet" / "reference-outputs" / f"{name}_mesh.mat"))
    pos = np.zeros((256 * 256, 3))
    pos[uv.face_ind] = saved["vertices"]
    image = imread(shared_dir / "prnet" / "aflw2000-samples" / f"{name}.jpg")
    return image, build_face_mesh(image, pos.reshape(256, 256, 3), uv)
