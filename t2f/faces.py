"""The types that flow between stages: numpy arrays and plain values, no torch, no I/O.

``FaceRequest`` -> text-to-image -> ``FaceImage`` -> detection -> ``FaceBox`` / ``FaceCrop`` ->
PRNet -> ``FaceMesh`` inside a ``FaceResult``. Every stage, exporter and the serving layer speak
these, so any of them can be tested or replaced alone. Coordinates are image pixels with x to the
right (column), y down (row) and z towards the camera, in the frame of the source image.

The UV-grid helpers live here too because they define a ``FaceMesh``'s topology: PRNet's vertices
are pixels of a 256 x 256 UV grid, and a mesh is re-triangulated (:func:`decimate`) by that grid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

UV_SIZE = 256  # side of PRNet's UV position map


@dataclass(frozen=True)
class FaceRequest:
    """One image to paint. ``size`` is the side of the square image in pixels (a multiple of 8); ``profile`` is
    ``quality`` or ``fast`` (:data:`t2f.bounds.PROFILES`): what the denoising loop does besides its steps."""

    prompt: str
    negative_prompt: str = ""
    seed: int = 0
    steps: int = 25
    guidance: float = 7.5
    size: int = 512
    profile: str = "quality"


@dataclass(frozen=True)
class FaceImage:
    """What the text-to-image stage made of one :class:`FaceRequest`.

    Attributes
    ----------
    request : the request this answers.
    image : (size, size, 3) uint8 RGB, or ``None`` when withheld.
    nsfw : the safety checker's verdict; ``None`` when no check ran (switched off, or left to the caller).
    withheld_reason : a sentence for the user when ``image`` is ``None``, else ``None``.
    dropped_prompt : the end of the prompt the text encoder could not read ("" when all fitted).
    timings : seconds per phase (``encode_and_denoise``, ``decode``, ``safety_check``), shared by a batch.
    """

    request: FaceRequest
    image: np.ndarray | None
    nsfw: bool | None
    withheld_reason: str | None
    dropped_prompt: str
    timings: dict[str, float]

    @property
    def prompt_truncated(self) -> bool:
        """True when part of the prompt was cut at the text encoder's token limit."""
        return bool(self.dropped_prompt)


@dataclass(frozen=True)
class StepProgress:
    """One finished denoising step of a batch.

    ``previews`` holds one (h, w, 3) uint8 TAESD preview per request when previews were asked for
    on this step, else ``None``.
    """

    step: int
    total: int
    previews: tuple[np.ndarray, ...] | None = None


StepCallback = Callable[[StepProgress], None]


@dataclass(frozen=True)
class FaceBox:
    """A detected face: left, top, right, bottom in image pixels, and the detector's confidence.

    ``keypoints`` are the detector's five (x, y) points in image pixels when it gives them: the eye,
    eye, nose tip and mouth corners, in that order, each pair left to right in the image.
    """

    left: float
    top: float
    right: float
    bottom: float
    confidence: float = 1.0
    keypoints: tuple[tuple[float, float], ...] | None = None

    @property
    def size(self) -> float:
        """s = (width + height) / 2."""
        return ((self.right - self.left) + (self.bottom - self.top)) / 2

    @property
    def center_xy(self) -> np.ndarray:
        """(2,) float64 centre in image pixels."""
        return np.array([(self.left + self.right) / 2, (self.top + self.bottom) / 2])


@dataclass(frozen=True)
class FaceCrop:
    """PRNet's input and how it maps back to the source image.

    Attributes
    ----------
    image : (256, 256, 3) float32 RGB in [0, 1], the only float image between stages (PRNet's input).
    tform : (3, 3) float64 similarity (scale and translation) from source-image (x, y, 1) to crop pixels.
    center_xy : (2,) float64 crop centre in source-image pixels.
    side : crop side in source-image pixels.
    """

    image: np.ndarray
    tform: np.ndarray
    center_xy: np.ndarray
    side: float

    def overlap(self, other: FaceCrop) -> float:
        """Intersection over union of this square crop and ``other`` in source-image pixels, in [0, 1]."""
        low = np.maximum(self.center_xy - self.side / 2, other.center_xy - other.side / 2)
        high = np.minimum(self.center_xy + self.side / 2, other.center_xy + other.side / 2)
        inter = float(np.prod(np.clip(high - low, 0, None)))
        return inter / (self.side**2 + other.side**2 - inter)


@dataclass(frozen=True)
class FaceMesh:
    """A dense PRNet face.

    Attributes
    ----------
    vertices : (V, 3) float32 source-image pixels (x right, y down, z towards the camera).
    triangles : (F, 3) int32 0-based, counter-clockwise in the image plane (y down).
    colors : (V, 3) uint8 RGB from the source image where the camera saw the face, borrowed from the
        mirrored side where it did not (``t2f.stages.prnet.texture``).
    uv : (V, 2) float32 texture coordinates in [0, 1), u right, v down.
    texture : (256, 256, 3) uint8 UV texture map, made the same way.
    landmarks : (68, 3) float32 iBUG-68 points, same frame as ``vertices``.
    pose : (3,) float64 yaw, pitch, roll in radians (all NaN when the geometry has no pose).
    image_shape : (height, width) of the source image.
    """

    vertices: np.ndarray
    triangles: np.ndarray
    colors: np.ndarray
    uv: np.ndarray
    texture: np.ndarray
    landmarks: np.ndarray
    pose: np.ndarray
    image_shape: tuple[int, int]


@dataclass(frozen=True)
class FaceResult:
    """One reconstructed face.

    Attributes
    ----------
    image : (H, W, 3) uint8 RGB the face was found in.
    mesh : the dense mesh.
    crop : PRNet's input crop and its transform.
    box : the detector's box, or ``None`` when the whole image (or given landmarks) made the crop.
    faces_found : how many faces the detector saw (the largest was used); 1 without detection.
    timings : seconds per stage (``detect``, ``prnet``, ``postprocess``).
    """

    image: np.ndarray
    mesh: FaceMesh
    crop: FaceCrop
    box: FaceBox | None
    faces_found: int
    timings: dict[str, float] = field(default_factory=dict)


def grid_triangles(ids: np.ndarray, *, skip_vertex_zero: bool = False) -> np.ndarray:
    """Triangulate a grid of vertex ids (-1 = no vertex) the way PRNet does.

    Each 2x2 quad A=(u,v), B=(u+1,v), C=(u,v+1), D=(u+1,v+1), visited row by row, yields
    [A, B, C] then [B, D, C] when all three corners are vertices.

    Returns
    -------
    triangles : (F, 3) int32 vertex ids, counter-clockwise in pixel coordinates (y down).
    """
    a, b, c, d = ids[:-1, :-1], ids[:-1, 1:], ids[1:, :-1], ids[1:, 1:]
    quads = np.stack([np.stack([a, b, c], -1), np.stack([b, d, c], -1)], axis=2)  # (rows, cols, 2, 3)
    triangles = quads.reshape(-1, 3)
    keep = (triangles > 0) if skip_vertex_zero else (triangles >= 0)
    return triangles[keep.all(axis=1)].astype(np.int32)


def decimate(mesh: FaceMesh, step: int = 2) -> FaceMesh:
    """A lighter mesh: the vertices on every ``step``-th UV row and column, re-triangulated by the same rule.

    ``step=2`` keeps about a quarter of the vertices; colours, UVs, texture, landmarks and pose carry over.
    """
    cols, rows = np.round(mesh.uv * UV_SIZE).astype(np.int64).T
    keep = np.flatnonzero((rows % step == 0) & (cols % step == 0))
    ids = np.full((UV_SIZE // step + 1, UV_SIZE // step + 1), -1, dtype=np.int64)
    ids[rows[keep] // step, cols[keep] // step] = np.arange(keep.size)
    return FaceMesh(
        vertices=mesh.vertices[keep],
        triangles=grid_triangles(ids),
        colors=mesh.colors[keep],
        uv=mesh.uv[keep],
        texture=mesh.texture,
        landmarks=mesh.landmarks,
        pose=mesh.pose,
        image_shape=mesh.image_shape,
    )


def pose_rotation(pose: np.ndarray) -> np.ndarray:
    """(3, 3) float64 rotation R of a head pose (yaw, pitch, roll) in radians, as ``FaceMesh.pose`` holds it.

    The pose comes from the similarity ``vertices ~ s R canonical + t`` (PRNet's ``estimate_pose``),
    whose angles are read as R = Rz(roll) Ry(-yaw) Rx(pitch) in the image frame (x right, y down, z
    towards the camera). The identity when any angle is NaN (a mesh without a pose).
    """
    yaw, pitch, roll = (float(angle) for angle in pose)
    if not np.all(np.isfinite([yaw, pitch, roll])):
        return np.eye(3)
    cy, sy, cp, sp, cr, sr = np.cos(-yaw), np.sin(-yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    rz = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    return rz @ ry @ rx


def frontal_points(points: np.ndarray, mesh: FaceMesh) -> np.ndarray:
    """``points`` (N, 3) of ``mesh``'s frame turned so the head faces the camera (PRNet's ``--isFront``).

    The head's estimated pose is undone about the centre of its vertices (the mean), so the face
    looks along +z, upright (y down) with level eyes; only the rotation is undone, not the scale.

    Returns
    -------
    frontal : (N, 3) float32, in source-image pixel units, centred on the mesh's vertex mean.
    """
    centre = mesh.vertices.astype(np.float64).mean(axis=0)
    # Row vectors: (R^T (p - c))^T = (p - c)^T R.
    return ((points.astype(np.float64) - centre) @ pose_rotation(mesh.pose)).astype(np.float32)


# Photo frame (y down) to the files' frame (y up): a reflection, so triangles' corner order is reversed with it.
Y_UP = np.diag([1.0, -1.0, 1.0])


@dataclass(frozen=True)
class FrontalFrame:
    """Where a face's mesh files (OBJ, GLB) put the head: its pose undone, upright, centred and 1 unit tall.

    A photo point p (source-image pixels: x right, y down, z towards the camera) is written at
    ``q = Y_UP @ R^T (p - origin) / height``: x to the face's left-to-right, y up, z out of the face
    towards the viewer, the origin at the centre of the frontal head's bounding box, and one unit = the
    frontal mesh's height in photo pixels.

    Attributes
    ----------
    rotation : (3, 3) float64 R, the head pose removed (:func:`pose_rotation`; the identity without a pose).
    origin : (3,) float64 photo point that becomes (0, 0, 0).
    height : photo pixels per file unit.
    """

    rotation: np.ndarray
    origin: np.ndarray
    height: float

    def to_file(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) float64 file coordinates of photo ``points`` (N, 3)."""
        # Row vectors: (R^T (p - o))^T = (p - o)^T R.
        return (points.astype(np.float64) - self.origin) @ self.rotation @ Y_UP / self.height

    def file_from_photo(self) -> np.ndarray:
        """(4, 4) float64 homogeneous matrix taking photo (x, y, z, 1) to file coordinates."""
        linear = Y_UP @ self.rotation.T / self.height
        return np.block([[linear, (-linear @ self.origin)[:, None]], [np.zeros((1, 3)), np.ones((1, 1))]])

    def photo_from_file(self) -> np.ndarray:
        """(4, 4) float64 homogeneous matrix taking file (x, y, z, 1) back to photo pixels (the inverse)."""
        linear = self.rotation @ Y_UP * self.height
        return np.block([[linear, self.origin[:, None]], [np.zeros((1, 3)), np.ones((1, 1))]])


def frontal_frame(mesh: FaceMesh) -> FrontalFrame:
    """The :class:`FrontalFrame` of ``mesh``: its pose undone, its frontal bounding box centred, 1 unit tall.

    Without a pose (NaN angles: degenerate geometry) only the centring and the scale apply.
    """
    rotation = pose_rotation(mesh.pose)
    vertices = mesh.vertices.astype(np.float64)
    turned = vertices @ rotation  # R^T p for each row: the frontal head, in photo pixel units
    low, high = turned.min(axis=0), turned.max(axis=0)
    origin = rotation @ ((low + high) / 2)  # the frontal box's centre, back in the photo
    return FrontalFrame(rotation=rotation, origin=origin, height=max(float(high[1] - low[1]), 1e-6))
