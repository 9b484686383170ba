"""CPU preview of a face mesh: a vectorised z-buffer rasteriser in numpy, no OpenGL.

The preview is one strip a chat user reads at a glance: the source image, then the mesh shaded
from the front, at three-quarter and in profile, then textured from the front. PRNet meshes are
a dense UV grid, so at preview size every triangle spans a pixel or two; each triangle is tested
against the pixels of a small window around it, all triangles at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from t2f.prnet.postprocess import FaceMesh, decimate

PANEL = 256
WINDOWS = (2, 4, 8, 16, 32)  # pixels tested per triangle along each axis, by triangle size
# Pixel tests per view at most. A real face needs about 0.1 M; broken geometry (random weights, a
# failed fit) can have huge triangles, and those are left out rather than costing seconds.
CANDIDATE_BUDGET = 2_000_000
LIGHT = np.array([-0.3, -0.4, 0.866], dtype=np.float32)  # from the upper left, towards the face
BACKGROUND = np.array([32, 34, 40], dtype=np.uint8)
VIEWS = (("front", 0.0), ("3/4", 45.0), ("profile", 80.0))
# Every third UV row and column: about 2.6 px per triangle in a 256 px panel, still without holes, and
# 0.6x the cost of every second (bench/reconstruction.py).
PREVIEW_LOD = 3


@dataclass(frozen=True)
class Raster:
    """Which triangle covers each pixel, and where inside it.

    Attributes
    ----------
    face : (H, W) int64 triangle index, -1 where no triangle is visible.
    bary : (H, W, 3) float32 barycentric weights of the triangle's corners (0 where empty).
    """

    face: np.ndarray
    bary: np.ndarray


def _covered_pixels(corners: np.ndarray, low: np.ndarray, window: int, size: int) -> tuple[np.ndarray, ...]:
    """Test each triangle against the pixels of a ``window`` x ``window`` box from ``low``.

    Each corner's barycentric weight is an edge function A x + B y + C, so a test is a few
    multiply-adds over (triangles, 3, candidates). Returns the (triangle, flat pixel, depth,
    weights) of every covered candidate.
    """
    x, y = corners[:, :, 0], corners[:, :, 1]  # (F, 3)
    x1, x2, y1, y2 = np.roll(x, -1, 1), np.roll(x, -2, 1), np.roll(y, -1, 1), np.roll(y, -2, 1)
    a, b, c = y1 - y2, x2 - x1, x1 * y2 - x2 * y1  # weight of corner i, from the edge opposite it
    area = c.sum(axis=1, keepdims=True)  # twice the signed area; the A and B terms cancel
    orient = np.where(area < 0, -1.0, 1.0).astype(np.float32)
    a, b, c, area = a * orient, b * orient, c * orient, area * orient
    grid = np.arange(window, dtype=np.float32)
    px = low[:, 0:1].astype(np.float32) + np.tile(grid, window)[None]  # (F, K) candidate centres
    py = low[:, 1:2].astype(np.float32) + np.repeat(grid, window)[None]
    w = a[:, :, None] * px[:, None, :] + b[:, :, None] * py[:, None, :] + c[:, :, None]  # (F, 3, K)
    inside = (w >= 0).all(axis=1) & (area > 0) & (px >= 0) & (px < size) & (py >= 0) & (py < size)
    tri, cand = np.nonzero(inside)
    weights = w[tri, :, cand] / area[tri]
    depth = (weights * corners[tri, :, 2]).sum(axis=1)
    pixel = py[tri, cand].astype(np.int64) * size + px[tri, cand].astype(np.int64)
    return tri, pixel, depth, weights


def rasterize(vertices: np.ndarray, triangles: np.ndarray, size: int) -> Raster:
    """Z-buffer ``triangles`` of ``vertices`` (V, 3) in pixel units (x right, y down, z towards the viewer).

    A pixel (row, col) is covered when its centre (col, row) lies inside a triangle; the nearest
    (largest z) triangle wins. Both windings are drawn. Triangles are grouped by size so each is
    tested against a window just large enough for it (most need 2 x 2 pixels); groups are drawn
    smallest first until ``CANDIDATE_BUDGET`` pixel tests are spent, and triangles wider than the
    largest window are not drawn, so the cost stays bounded whatever the geometry.
    """
    corners = vertices[triangles].astype(np.float32)  # (F, 3, 3)
    low = np.floor(corners[:, :, :2].min(axis=1)).astype(np.int64)
    span = (np.ceil(corners[:, :, :2].max(axis=1)).astype(np.int64) - low).max(axis=1) + 1
    parts = [(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros((0, 3), np.float32))]
    budget = CANDIDATE_BUDGET
    for window in WINDOWS:  # a handful of size groups, not a loop over triangles
        smaller = window // 2 if window > WINDOWS[0] else 0
        group = np.flatnonzero((span > smaller) & (span <= window))
        if group.size * window * window > budget:
            break
        if group.size:
            budget -= group.size * window * window
            tri, pixel, depth, weights = _covered_pixels(corners[group], low[group], window, size)
            parts.append((group[tri], pixel, depth, weights))
    tri_id, pixel, depth, weights = (np.concatenate(column) for column in zip(*parts, strict=True))
    # Z-buffer without sorting: pack (depth quantised to 30 bits, candidate) into one integer and keep
    # each pixel's maximum; depth ties within 1/2**30 of the range go to the later candidate.
    low_z = depth.min(initial=0.0)
    scale = (2**30 - 1) / max(float(depth.max(initial=0.0) - low_z), 1e-9)
    keys = (((depth - low_z) * scale).astype(np.int64) << 32) | np.arange(depth.size, dtype=np.int64)
    best = np.full(size * size, -1, dtype=np.int64)
    np.maximum.at(best, pixel, keys)
    hit = best >= 0
    winner = best[hit] & 0xFFFFFFFF
    face = np.full(size * size, -1, dtype=np.int64)
    bary = np.zeros((size * size, 3), dtype=np.float32)
    face[hit] = tri_id[winner]
    bary[hit] = weights[winner]
    return Raster(face=face.reshape(size, size), bary=bary.reshape(size, size, 3))


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(V, 3) float32 unit normals: area-weighted sums of the adjacent face normals."""
    corners = vertices[triangles].astype(np.float32)
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals = np.stack(
        [np.bincount(triangles.ravel(), np.repeat(face_normals[:, k], 3), minlength=len(vertices)) for k in range(3)],
        -1,
    )
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return (normals / np.where(length == 0, 1, length)).astype(np.float32)


def yaw_rotation(yaw_deg: float) -> np.ndarray:
    """(3, 3) float32 rotation about the vertical (y) axis."""
    t = np.radians(yaw_deg)
    return np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]], dtype=np.float32)


def fit_to_panel(vertices: np.ndarray, yaw_deg: float, size: int = PANEL) -> np.ndarray:
    """Rotate ``vertices`` (V, 3, y down) about the vertical axis through their centre and scale into the panel."""
    centred = vertices - (vertices.min(axis=0) + vertices.max(axis=0)) / 2
    turned = centred @ yaw_rotation(yaw_deg).T
    span = float(np.ptp(turned[:, :2], axis=0).max()) or 1.0
    scaled = turned * (0.9 * size / span)
    scaled[:, :2] += size / 2
    return scaled.astype(np.float32)


def shade(raster: Raster, triangles: np.ndarray, normals: np.ndarray, colors: np.ndarray | None) -> np.ndarray:
    """(H, W, 3) uint8: Lambert shading of interpolated normals, in clay grey or ``colors`` (V, 3) uint8."""
    covered = raster.face >= 0
    corner_ids = triangles[raster.face[covered]]  # (P, 3)
    weights = raster.bary[covered][..., None]  # (P, 3, 1)
    normal = (normals[corner_ids] * weights).sum(axis=1)
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-6)
    light = np.abs(normal @ LIGHT)  # abs: the back of a thin surface is lit like its front
    if colors is None:
        base = np.full((len(light), 3), 205.0, dtype=np.float32)
        lit = base * (0.25 + 0.75 * light[:, None])
    else:
        base = (colors[corner_ids].astype(np.float32) * weights).sum(axis=1)
        lit = base * (0.55 + 0.45 * light[:, None])
    out = np.broadcast_to(BACKGROUND, (*raster.face.shape, 3)).copy()
    out[covered] = np.clip(lit, 0, 255).astype(np.uint8)
    return out


def fit_image(image: np.ndarray, size: int = PANEL) -> np.ndarray:
    """(size, size, 3) uint8: ``image`` scaled to fit, centred on the background colour."""
    picture = Image.fromarray(image)
    picture.thumbnail((size, size), Image.BILINEAR)
    panel = Image.new("RGB", (size, size), tuple(int(c) for c in BACKGROUND))
    panel.paste(picture, ((size - picture.width) // 2, (size - picture.height) // 2))
    return np.asarray(panel)


def coarse_mesh(mesh: FaceMesh, step: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices, triangles, colors) of the mesh decimated to every ``step``-th UV row and column."""
    light = decimate(mesh, step)
    return light.vertices, light.triangles, light.colors


def preview_strip(image: np.ndarray, mesh: FaceMesh, *, size: int = PANEL) -> np.ndarray:
    """(size, 5 * size, 3) uint8: image | shaded front | shaded 3/4 | shaded profile | textured front."""
    vertices, triangles, colors = coarse_mesh(mesh, PREVIEW_LOD)
    # Normals in the image frame, turned with each view (the panel fit only adds a uniform scale).
    image_normals = vertex_normals(vertices, triangles)
    panels = [fit_image(image, size)]
    front: tuple[Raster, np.ndarray] | None = None
    for label, yaw in VIEWS:
        placed = fit_to_panel(vertices, yaw, size)  # every view starts from the image frame
        raster, normals = rasterize(placed, triangles, size), image_normals @ yaw_rotation(yaw).T
        front = front or (raster, normals)
        panels.append(_label(shade(raster, triangles, normals, None), label))
    assert front is not None
    panels.append(_label(shade(front[0], triangles, front[1], colors), "textured"))
    return np.concatenate(panels, axis=1)


def _label(panel: np.ndarray, text: str) -> np.ndarray:
    picture = Image.fromarray(panel)
    ImageDraw.Draw(picture).text((6, 4), text, fill=(230, 230, 230))
    return np.asarray(picture)
