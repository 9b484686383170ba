"""Real PRNet meshes for export and render tests, rebuilt from ../shared/prnet/reference-outputs.

``turned_mesh`` rotates one as a head turned in a photo would be, and re-estimates its pose.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import scipy.io as sio
from skimage.io import imread

from t2f.faces import FaceMesh
from t2f.stages.prnet.postprocess import build_face_mesh, head_pose
from t2f.stages.prnet.uv import UVData

REFERENCE_MESHES = ("image00050", "image02283")  # the AFLW2000 samples whose whole mesh PRNet's output saved


def reference_mesh(shared_dir: Path, name: str = "image00050") -> tuple[np.ndarray, FaceMesh]:
    """(image, mesh) for one AFLW2000 sample, from PRNet's saved output for it."""
    uv = UVData.load(shared_dir / "prnet" / "uv-data")
    saved = sio.loadmat(str(shared_dir / "prnet" / "reference-outputs" / f"{name}_mesh.mat"))
    pos = np.zeros((256 * 256, 3))
    pos[uv.face_ind] = saved["vertices"]
    image = imread(shared_dir / "prnet" / "aflw2000-samples" / f"{name}.jpg")
    return image, build_face_mesh(image, pos.reshape(256, 256, 3), uv)


def turned_mesh(shared_dir: Path, mesh: FaceMesh, *, yaw_deg: float = 0.0, pitch_deg: float = 0.0) -> FaceMesh:
    """``mesh`` with its head turned by ``yaw_deg`` about the vertical axis, then tilted by ``pitch_deg``.

    Vertices and landmarks turn about their vertex mean in the image frame (x right, y down, z
    towards the camera; the yaw turns +z towards +x, as ``t2f.export.raster.yaw_rotation`` does),
    and the pose is estimated again from the turned vertices, as PRNet's post-processing would.
    """
    yaw, pitch = np.radians(yaw_deg), np.radians(pitch_deg)
    turn = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    tilt = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
    rotation = tilt @ turn
    centre = mesh.vertices.astype(np.float64).mean(axis=0)
    vertices = (mesh.vertices - centre) @ rotation.T + centre
    landmarks = (mesh.landmarks - centre) @ rotation.T + centre
    canonical = UVData.load(shared_dir / "prnet" / "uv-data").canonical_vertices
    return dataclasses.replace(
        mesh,
        vertices=vertices.astype(np.float32),
        landmarks=landmarks.astype(np.float32),
        pose=head_pose(vertices, canonical),
    )
