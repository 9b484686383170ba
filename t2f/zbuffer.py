"""A vectorised z-buffer rasteriser in numpy, and mesh normals: the reconstruction and the exporters both use them.

PRNet's stage asks it which parts of a face the camera saw (``t2f.stages.prnet.texture``); the
exporters draw the preview's and the turntable's views with it (``t2f.export.raster``, and
``t2f.export.render_torch`` on a GPU, which keeps its window sizes and budget). PRNet meshes are a
dense UV grid, so every triangle spans a pixel or a few; each triangle is tested against the pixel
centres of a small window around it, all triangles at once, and the nearest wins through one packed
integer maximum per pixel (no sort).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Pixels tested per triangle along each axis, by triangle size. Most preview triangles have 3 to 5
# pixel centres across their box; one step per pixel up to 8 keeps the windows tight there.
WINDOWS = (2, 3, 4, 5, 6, 7, 8, 12, 16, 24, 32)
# Pixel tests per view at most. A real face needs about 0.23 M; broken geometry (random weights, a
# failed fit) can have huge triangles, and those are left out rather than costing seconds.
CANDIDATE_BUDGET = 2_000_000


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
    """Test each triangle against the pixel centres of a ``window`` x ``window`` box from ``low``.

    Each corner's barycentric weight is an edge function A x + B y + C, so a test is a few
    multiply-adds over (triangles, 3, candidates). Returns the (triangle, flat pixel, depth,
    weights) of every covered candidate inside the ``size`` x ``size`` image.
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
    inside = (w[:, 0] >= 0) & (w[:, 1] >= 0) & (w[:, 2] >= 0)
    tri, cand = np.nonzero(inside)
    col, row = px[tri, cand].astype(np.int64), py[tri, cand].astype(np.int64)
    # Bounds and degenerate triangles are checked on the few hits, not on every candidate.
    keep = (area[tri, 0] > 0) & (col >= 0) & (col < size) & (row >= 0) & (row < size)
    tri, cand, col, row = tri[keep], cand[keep], col[keep], row[keep]
    weights = w[tri, :, cand] / area[tri]
    depth = np.einsum("pk,pk->p", weights, corners[tri, :, 2])
    return tri, row * size + col, depth, weights


def rasterize(vertices: np.ndarray, triangles: np.ndarray, size: int, *, cull_back: bool = False) -> Raster:
    """Z-buffer ``triangles`` of ``vertices`` (V, 3) in pixel units (x right, y down, z towards the viewer).

    A pixel (row, col) is covered when its centre (col, row) lies inside a triangle; the nearest
    (largest z) triangle wins. Both windings are drawn unless ``cull_back``: then only triangles
    whose normal (v1 - v0) x (v2 - v0) points towards the viewer (+z) are, the front faces of a
    :class:`~t2f.faces.FaceMesh`. Triangles are grouped by size so each is
    tested against a window just large enough for it (most need 4 x 4 pixels); groups are drawn
    smallest first until ``CANDIDATE_BUDGET`` pixel tests are spent, and triangles wider than the
    largest window are not drawn, so the cost stays bounded whatever the geometry.
    """
    corners = vertices[triangles].astype(np.float32)  # (F, 3, 3)
    if cull_back:
        edge_a, edge_b = corners[:, 1, :2] - corners[:, 0, :2], corners[:, 2, :2] - corners[:, 0, :2]
        facing = edge_a[:, 0] * edge_b[:, 1] - edge_a[:, 1] * edge_b[:, 0] > 0  # z of the normal
        order = np.flatnonzero(facing)  # ids into ``triangles``, so ``Raster.face`` keeps its meaning
        corners = corners[order]
    else:
        order = np.arange(len(triangles))
    # Only pixel centres (integers) inside the bounding box can be covered; a triangle whose box
    # holds none (span 0 or less) covers no pixel and is skipped.
    low = np.ceil(corners[:, :, :2].min(axis=1)).astype(np.int64)
    span = (np.floor(corners[:, :, :2].max(axis=1)).astype(np.int64) - low).max(axis=1) + 1
    parts = [(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros((0, 3), np.float32))]
    budget = CANDIDATE_BUDGET
    for smaller, window in zip((0, *WINDOWS), WINDOWS, strict=False):  # a few size groups, not a loop over triangles
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
    face[hit] = order[tri_id[winner]]
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


def raster_depth(raster: Raster, vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(H, W) float32 depth (z) of the surface each pixel shows, interpolated in its triangle; -inf where empty."""
    covered = raster.face >= 0
    depth = np.full(raster.face.shape, -np.inf, dtype=np.float32)
    corner_z = vertices[:, 2].astype(np.float32)[triangles[raster.face[covered]]]  # (P, 3)
    depth[covered] = np.einsum("pk,pk->p", raster.bary[covered], corner_z)
    return depth
