"""Real PRNet meshes for export and render tests, rebuilt from ../shared/prnet/reference-outputs.

``turned_mesh`` rotates one as a head turned in a photo would be, and re-estimates its pose;
``turned_view`` draws one, textured with a known texture, as a photo of a turned head would show it
(bench/texture_visibility.py uses it too).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io as sio
from scipy import ndimage
from skimage.io import imread

from t2f.export.raster import interpolate, yaw_rotation
from t2f.faces import UV_SIZE, FaceMesh, frontal_points
from t2f.stages.prnet.postprocess import build_face_mesh, head_pose
from t2f.stages.prnet.uv import UVData
from t2f.zbuffer import rasterize

REFERENCE_MESHES = ("image00050", "image02283")  # the AFLW2000 samples whose whole mesh PRNet's output saved


def reference_pos(shared_dir: Path, name: str = "image00050") -> tuple[np.ndarray, np.ndarray]:
    """(image, position map (256, 256, 3), zero off the face) of one AFLW2000 sample, from PRNet's saved output."""
    uv = UVData.load(shared_dir / "prnet" / "uv-data")
    saved = sio.loadmat(str(shared_dir / "prnet" / "reference-outputs" / f"{name}_mesh.mat"))
    pos = np.zeros((UV_SIZE * UV_SIZE, 3))
    pos[uv.face_ind] = saved["vertices"]
    image = imread(shared_dir / "prnet" / "aflw2000-samples" / f"{name}.jpg")
    return image, pos.reshape(UV_SIZE, UV_SIZE, 3)


def reference_mesh(shared_dir: Path, name: str = "image00050") -> tuple[np.ndarray, FaceMesh]:
    """(image, mesh) for one AFLW2000 sample, from PRNet's saved output for it."""
    image, pos = reference_pos(shared_dir, name)
    return image, build_face_mesh(image, pos, UVData.load(shared_dir / "prnet" / "uv-data"))


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


@dataclasses.dataclass(frozen=True)
class TurnedView:
    """A photo of a head turned by a known yaw, drawn from a mesh and a texture.

    image : (size, size, 3) uint8 the head on a blotchy, speckled background (what ghosts would copy).
    pos : (256, 256, 3) float64 the perfect position map of that photo (zero off the face).
    seen : (V,) bool vertices of a triangle the photo shows (corners of a drawn triangle).
    """

    image: np.ndarray
    pos: np.ndarray
    seen: np.ndarray


def turned_view(mesh: FaceMesh, texture: np.ndarray, yaw_deg: float, *, size: int = 512) -> TurnedView:
    """``mesh`` with its pose undone, turned by ``yaw_deg`` (+z towards +x), drawn in ``texture`` (unlit).

    The head is 0.6 ``size`` tall and centred; each pixel samples ``texture`` bilinearly at its UV.
    """
    frontal = frontal_points(mesh.vertices, mesh).astype(np.float64)
    scale = 0.6 * size / np.ptp(frontal[:, 1])
    placed = frontal @ yaw_rotation(yaw_deg).T.astype(np.float64) * scale + [size / 2, size / 2, size]
    raster = rasterize(placed, mesh.triangles, size, cull_back=True)
    pixels, texel = interpolate(raster, mesh.triangles, mesh.uv.astype(np.float64) * UV_SIZE)  # (P, 2) u, v
    rng = np.random.default_rng(7)
    blotches = ndimage.zoom(rng.uniform(0, 255, (8, 8, 3)), (size / 8, size / 8, 1), order=1)
    image = np.clip(blotches + rng.normal(0, 25, blotches.shape), 0, 255).reshape(-1, 3)
    image[pixels] = np.stack(
        [ndimage.map_coordinates(texture[..., c].astype(np.float64), texel[:, ::-1].T, order=1) for c in range(3)], -1
    )
    seen = np.zeros(len(mesh.vertices), bool)
    seen[mesh.triangles[raster.face[raster.face >= 0]].ravel()] = True
    pos = np.zeros((UV_SIZE * UV_SIZE, 3))
    pos[np.round(mesh.uv[:, 1] * UV_SIZE).astype(int) * UV_SIZE + np.round(mesh.uv[:, 0] * UV_SIZE).astype(int)] = (
        placed
    )
    return TurnedView(np.round(image).astype(np.uint8).reshape(size, size, 3), pos.reshape(UV_SIZE, UV_SIZE, 3), seen)


class ReferenceFacePRNet:
    """A PRNet stand-in whose every answer is the reference face (image00050): a real face's shape in any crop.

    Random weights put every vertex on about one point; blown up to a 1-unit GLB that is a ball of
    screen-sized triangles, which software WebGL draws for seconds per frame. Browser tests that need
    only *a* face in the viewer use this instead of the network (everything else is ``inner``'s).
    """

    def __init__(self, inner: object, shared_dir: Path) -> None:
        from t2f.stages.prnet.postprocess import crop_transform

        self.inner = inner
        _, pos = reference_pos(shared_dir)
        # The network output that restores to the reference face's position map in its own photo's crop.
        tform = crop_transform(np.array([227.0, 280.0]), 350.0)
        flat = pos.reshape(-1, 3)
        xy = np.column_stack([flat[:, :2], np.ones(len(flat))]) @ tform.T
        raw = np.column_stack([xy[:, :2], flat[:, 2] * tform[0, 0]]) / (UV_SIZE * 1.1)
        self.raw = raw.reshape(UV_SIZE, UV_SIZE, 3).astype(np.float32)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def predict(self, crops: np.ndarray) -> np.ndarray:
        return np.repeat(self.raw[None], len(crops), axis=0)


def reference_face_pipeline(stages: Any, shared_dir: Path, painter: object) -> Any:
    """The session's detector and UV data with ``painter`` and :class:`ReferenceFacePRNet` (the browser tests'
    face: quick for software WebGL to draw)."""
    from t2f.stages.pipeline import FacePipeline

    return FacePipeline(
        prnet=ReferenceFacePRNet(stages.prnet, shared_dir),  # type: ignore[arg-type]
        uv=stages.uv,
        detector=stages.detector,
        text_to_image=painter,
    )
