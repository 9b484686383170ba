"""A face mesh's views (the preview, the turntable) drawn in numpy with :mod:`t2f.zbuffer`, no OpenGL.

The head's estimated pose is undone first (:func:`t2f.faces.frontal_points`), so "front" means the
face's own front whatever way it looked in the picture, and each view turns the head about its own
vertical axis. Triangles facing away from the camera are culled (a PRNet mesh is an open mask: its
inside must not be lit like its outside), and silhouettes are anti-aliased by blending the one-pixel
band around them with the background by how much of each pixel's 3 x 3 neighbourhood the mesh covers
(drawing at twice the size and reducing would cost 2.5x the whole preview: bench/reconstruction.py).
:mod:`t2f.export.render_torch` is the same algorithm on tensors, for a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from t2f.faces import FaceMesh, decimate, frontal_points
from t2f.zbuffer import Raster, rasterize, vertex_normals

PANEL = 256
LIGHT = np.array([-0.3, -0.4, 0.866], dtype=np.float32)  # from the upper left, towards the face
BACKGROUND = np.array([32, 34, 40], dtype=np.uint8)
# Every third UV row and column: about 2.6 px per triangle in a 256 px panel, still without holes, and
# 0.6x the cost of every second (bench/reconstruction.py).
PREVIEW_LOD = 3


def yaw_rotation(yaw_deg: float) -> np.ndarray:
    """(3, 3) float32 rotation about the vertical (y) axis; positive turns the face's +z towards +x."""
    t = np.radians(yaw_deg)
    return np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]], dtype=np.float32)


def fit_to_panel(vertices: np.ndarray, yaw_deg: float, size: int = PANEL) -> np.ndarray:
    """Turn ``vertices`` (V, 3, y down) by ``yaw_deg`` about the vertical axis through their box centre, into the panel.

    The scale does not depend on the turn (it fits the head's height and its widest horizontal
    radius), so every view and every turntable frame shows the head at the same size.

    Returns
    -------
    placed : (V, 3) float32 pixels of a ``size`` x ``size`` panel (x right, y down, z towards the viewer).
    """
    centred = vertices - (vertices.min(axis=0) + vertices.max(axis=0)) / 2
    reach = max(float(np.ptp(centred[:, 1])), 2 * float(np.hypot(centred[:, 0], centred[:, 2]).max()), 1e-6)
    placed = (centred @ yaw_rotation(yaw_deg).T) * (0.92 * size / reach)
    placed[:, :2] += size / 2
    return placed.astype(np.float32)


def interpolate(raster: Raster, triangles: np.ndarray, attributes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-vertex ``attributes`` (V, C) interpolated at every covered pixel.

    Returns (flat pixel indices (P,), values (P, C) float32).
    """
    pixels = np.flatnonzero(raster.face >= 0)
    corner_ids = triangles[raster.face.ravel()[pixels]]  # (P, 3)
    weights = raster.bary.reshape(-1, 3)[pixels]  # (P, 3)
    values = np.einsum("pk,pkc->pc", weights, attributes.astype(np.float32)[corner_ids])
    return pixels, values


def vertex_light(normals: np.ndarray, yaw_deg: float = 0.0) -> np.ndarray:
    """(V,) float32 Lambert term in [0, 1] of outward ``normals`` (V, 3) seen from a view turned by ``yaw_deg``.

    One-sided: a surface turned away from the light is unlit, never lit like its front.
    """
    return np.clip(normals @ (yaw_rotation(yaw_deg).T @ LIGHT), 0.0, 1.0)


def shade(raster: Raster, triangles: np.ndarray, light: np.ndarray, colors: np.ndarray | None) -> np.ndarray:
    """(H, W, 3) uint8: per-vertex ``light`` (V,) interpolated across each triangle (Gouraud shading),
    on clay grey or on ``colors`` (V, 3) uint8.

    At preview size a triangle spans a few pixels, so interpolating the light instead of the normal
    (Phong) looks the same and costs a third.
    """
    if colors is None:
        pixels, values = interpolate(raster, triangles, light[:, None])
        lit = 205.0 * (0.25 + 0.75 * values)
    else:
        pixels, values = interpolate(raster, triangles, np.column_stack([light, colors]))
        lit = values[:, 1:] * (0.55 + 0.45 * values[:, :1])
    out = np.broadcast_to(BACKGROUND, (raster.face.size, 3)).copy()
    out[pixels] = np.clip(lit, 0, 255).astype(np.uint8)
    return out.reshape(*raster.face.shape, 3)


def soften_edges(image: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 ``image`` with the silhouette of ``covered`` (H, W) bool anti-aliased.

    Each pixel on either side of the silhouette takes the covered share s of its 3 x 3
    neighbourhood as opacity (a covered pixel 0.5 + s / 2, an empty one s / 2) over the
    background; an empty pixel borrows the mean colour of its covered neighbours. A straight edge
    gets a two-pixel ramp and a staircase a smooth one; the inside is untouched.
    """
    share = ndimage.uniform_filter(covered.astype(np.float32), 3, mode="constant")
    band = np.flatnonzero(((share > 0) & (share < 1)).ravel())
    if band.size == 0:
        return image
    width = covered.shape[1]
    rows, cols = np.divmod(band, width)
    padded_mask = np.pad(covered, 1)
    padded_image = np.pad(image, ((1, 1), (1, 1), (0, 0))).astype(np.float32)
    dr, dc = (axis.ravel() for axis in np.mgrid[0:3, 0:3])  # the 3 x 3 neighbourhood, (9,) each
    near_mask = padded_mask[rows[:, None] + dr, cols[:, None] + dc]  # (B, 9)
    near = np.einsum("bk,bkc->bc", near_mask, padded_image[rows[:, None] + dr, cols[:, None] + dc])
    near /= near_mask.sum(axis=1, keepdims=True)
    inside = covered.ravel()[band]
    own = np.where(inside[:, None], image.reshape(-1, 3)[band], near)
    opacity = np.where(inside, 0.5, 0.0) + 0.5 * share.ravel()[band]
    out = image.reshape(-1, 3).copy()
    out[band] = np.round(BACKGROUND + opacity[:, None] * (own - BACKGROUND)).astype(np.uint8)
    return out.reshape(image.shape)


@dataclass(frozen=True)
class ViewMesh:
    """A light copy of a face, turned to face the camera, ready to draw from any yaw.

    Attributes
    ----------
    vertices : (V, 3) float32 pose-normalised vertices (:func:`t2f.faces.frontal_points`), source-image pixel units.
    triangles : (F, 3) int32 front faces counter-clockwise as in :class:`~t2f.faces.FaceMesh`.
    normals : (V, 3) float32 outward unit normals of ``vertices``.
    colors : (V, 3) uint8 RGB.
    """

    vertices: np.ndarray
    triangles: np.ndarray
    normals: np.ndarray
    colors: np.ndarray


def view_mesh(mesh: FaceMesh, step: int = PREVIEW_LOD) -> ViewMesh:
    """``mesh`` decimated to every ``step``-th UV row and column, with its head pose undone."""
    light = decimate(mesh, step)
    vertices = frontal_points(light.vertices, light)
    return ViewMesh(vertices, light.triangles, vertex_normals(vertices, light.triangles), light.colors)


def draw_view(view: ViewMesh, yaw_deg: float, size: int = PANEL) -> tuple[Raster, np.ndarray]:
    """Rasterise ``view`` turned by ``yaw_deg`` (front faces only) in a ``size`` panel.

    Returns the raster and the per-vertex light (V,) float32 of that view.
    """
    raster = rasterize(fit_to_panel(view.vertices, yaw_deg, size), view.triangles, size, cull_back=True)
    return raster, vertex_light(view.normals, yaw_deg)
