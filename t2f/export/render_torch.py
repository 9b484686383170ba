"""The rasteriser of t2f.export.raster in PyTorch, every view of a face at once: the turntable and preview on the GPU.

The same algorithm as :mod:`t2f.export.raster` (window tests of the edge functions, a z-buffer of
packed depth and candidate keys, Gouraud shading, the 3 x 3 silhouette blend), written on tensors so
one call draws all of a face's views in a few dozen kernel launches instead of seventeen numpy passes.
On a GPU host the turntable's 17 frames and the preview's views are then no longer CPU work; on a
CPU the numpy path stays (one face's files there are ~0.3 s beside minutes of painting).

Views are told apart by giving each its own block of pixel ids (view k's pixels are
``k * size * size + row * size + col``), and each view keeps its own depth range, so a frame matches
the one :func:`t2f.export.raster.draw_view` draws alone; ``tests/test_render_torch.py`` compares them. The
one difference: the pixel-test budget that bounds broken geometry is shared by the views drawn together.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.nn import functional as F

from t2f.errors import first_line, is_out_of_memory
from t2f.export.raster import BACKGROUND, ViewMesh, fit_to_panel, vertex_light
from t2f.streams import StreamPerThread
from t2f.zbuffer import CANDIDATE_BUDGET, WINDOWS

log = logging.getLogger(__name__)


def _covered(corners: torch.Tensor, low: torch.Tensor, window: int, size: int) -> tuple[torch.Tensor, ...]:
    """:func:`t2f.export.raster._covered_pixels` on tensors: (triangle, pixel in its view, depth, weights) hits.

    ``corners`` (F, 3, 3) float32 pixels, ``low`` (F, 2) int64 first pixel centre of each window.
    """
    x, y = corners[:, :, 0], corners[:, :, 1]
    x1, x2, y1, y2 = x.roll(-1, 1), x.roll(-2, 1), y.roll(-1, 1), y.roll(-2, 1)
    a, b, c = y1 - y2, x2 - x1, x1 * y2 - x2 * y1
    area = c.sum(1, keepdim=True)
    orient = torch.where(area < 0, -1.0, 1.0)
    a, b, c, area = a * orient, b * orient, c * orient, area * orient
    grid = torch.arange(window, dtype=corners.dtype, device=corners.device)
    px = low[:, 0:1].to(corners.dtype) + grid.repeat(window)[None]  # (F, K)
    py = low[:, 1:2].to(corners.dtype) + grid.repeat_interleave(window)[None]
    w = a[:, :, None] * px[:, None, :] + b[:, :, None] * py[:, None, :] + c[:, :, None]  # (F, 3, K)
    tri, cand = torch.nonzero((w >= 0).all(1), as_tuple=True)
    col, row = px[tri, cand].long(), py[tri, cand].long()
    keep = (area[tri, 0] > 0) & (col >= 0) & (col < size) & (row >= 0) & (row < size)
    tri, cand, col, row = tri[keep], cand[keep], col[keep], row[keep]
    weights = w[tri, :, cand] / area[tri]
    depth = (weights * corners[tri, :, 2]).sum(1)
    return tri, row * size + col, depth, weights


def rasterize_views(placed: torch.Tensor, triangles: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Z-buffer the front faces of each of N views.

    Parameters
    ----------
    placed : (N, V, 3) float32 vertices of each view in panel pixels (x right, y down, z towards the viewer).
    triangles : (F, 3) int64 counter-clockwise front faces.

    Returns
    -------
    face : (N, size, size) int64 triangle index, -1 where empty.
    bary : (N, size, size, 3) float32 barycentric weights (0 where empty).
    """
    views, pixels = placed.shape[0], size * size
    corners = placed[:, triangles]  # (N, F, 3, 3)
    edge_a, edge_b = corners[..., 1, :2] - corners[..., 0, :2], corners[..., 2, :2] - corners[..., 0, :2]
    view, tri = torch.nonzero(edge_a[..., 0] * edge_b[..., 1] - edge_a[..., 1] * edge_b[..., 0] > 0, as_tuple=True)
    corners = corners[view, tri]  # the facing triangles of every view, (T, 3, 3)
    low = corners[:, :, :2].amin(1).ceil().long()
    span = (corners[:, :, :2].amax(1).floor().long() - low).amax(1) + 1
    found: list[tuple[torch.Tensor, ...]] = []
    budget = CANDIDATE_BUDGET * views
    for smaller, window in zip((0, *WINDOWS), WINDOWS, strict=False):
        group = torch.nonzero((span > smaller) & (span <= window)).squeeze(1)
        if group.numel() * window * window > budget:
            break
        if group.numel():
            budget -= group.numel() * window * window
            hit, pixel, depth, weights = _covered(corners[group], low[group], window, size)
            found.append((group[hit], pixel + view[group[hit]] * pixels, depth, weights))
    face = torch.full((views * pixels,), -1, dtype=torch.int64, device=placed.device)
    bary = torch.zeros((views * pixels, 3), dtype=torch.float32, device=placed.device)
    if found:
        entry, pixel, depth, weights = (torch.cat(column) for column in zip(*found, strict=True))
        # Each view's depth range on its own, as when it is drawn alone (ties go to the later candidate).
        owner = view[entry]
        zero = torch.zeros(views, device=depth.device)  # the range includes 0, as numpy's min(initial=0) does
        low_z = zero.scatter_reduce(0, owner, depth, "amin")
        high_z = zero.scatter_reduce(0, owner, depth, "amax")
        scale = (2**30 - 1) / (high_z - low_z).clamp(min=1e-9)
        quantised = ((depth - low_z[owner]) * scale[owner]).long()
        keys = (quantised << 32) | torch.arange(depth.numel(), device=depth.device)
        best = torch.full((views * pixels,), -1, dtype=torch.int64, device=depth.device)
        best.scatter_reduce_(0, pixel, keys, "amax")
        hit = best >= 0
        winner = best[hit] & 0xFFFFFFFF
        face[hit], bary[hit] = tri[entry[winner]], weights[winner]
    return face.reshape(views, size, size), bary.reshape(views, size, size, 3)


def shade_views(
    face: torch.Tensor, bary: torch.Tensor, triangles: torch.Tensor, light: torch.Tensor, colors: torch.Tensor | None
) -> torch.Tensor:
    """(N, H, W, 3) float32 shaded views before rounding: :func:`t2f.export.raster.shade` on tensors.

    ``light`` (N, V) per-vertex Lambert term of each view; ``colors`` (V, 3) float32 or ``None`` for clay.
    """
    views = face.shape[0]
    covered = face >= 0
    view, row, col = torch.nonzero(covered, as_tuple=True)
    corner_ids = triangles[face[view, row, col]]  # (P, 3)
    weights = bary[view, row, col]  # (P, 3)
    lit = (weights * light[view[:, None], corner_ids]).sum(1, keepdim=True)  # (P, 1)
    if colors is None:
        values = 205.0 * (0.25 + 0.75 * lit.expand(-1, 3))
    else:
        values = (weights[:, :, None] * colors[corner_ids]).sum(1) * (0.55 + 0.45 * lit)
    out = torch.as_tensor(BACKGROUND, dtype=torch.float32, device=face.device).expand(*face.shape, 3).clone()
    out[view, row, col] = values.clamp(0, 255).floor()  # astype(uint8) truncates
    return out.reshape(views, *face.shape[1:], 3)


def soften_views(images: torch.Tensor, covered: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8: :func:`t2f.export.raster.soften_edges` of each view, on tensors."""
    mask = covered[:, None].float()  # (N, 1, H, W)
    ones = torch.ones(1, 1, 3, 3, device=images.device)
    count = F.conv2d(mask, ones, padding=1)  # covered pixels of each 3 x 3 neighbourhood
    share = (count / 9.0)[:, 0]
    planar = images.permute(0, 3, 1, 2)  # (N, 3, H, W)
    near = F.conv2d((planar * mask).reshape(-1, 1, *planar.shape[2:]), ones, padding=1).reshape(planar.shape)
    near = (near / count.clamp(min=1)).permute(0, 2, 3, 1)
    band = (share > 0) & (share < 1)
    own = torch.where(covered[..., None], images, near)
    opacity = (torch.where(covered, 0.5, 0.0) + 0.5 * share)[..., None]
    background = torch.as_tensor(BACKGROUND, dtype=torch.float32, device=images.device)
    blended = torch.round(background + opacity * (own - background))
    return torch.where(band[..., None], blended, images).to(torch.uint8)


class ViewRenderer:
    """Draws a face's views with PyTorch on ``device`` (a GPU), each calling thread on its own CUDA stream.

    The export threads draw while the GPU thread's next batch is queued on the default stream
    (:mod:`t2f.streams`). :meth:`draw` never raises: on an out-of-memory error it returns ``None`` and
    the caller draws that face with numpy; after any other error the renderer turns itself off with
    one warning line and numpy draws from then on. A face's files never fail for the drawing's sake.
    """

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.streams = StreamPerThread(self.device)
        self.broken = False

    def draw(
        self, view: ViewMesh, yaws: np.ndarray, size: int, *, looks: tuple[str, ...] = ("textured",)
    ) -> dict[str, np.ndarray] | None:
        """Look -> (N, size, size, 3) uint8 views of ``view`` turned by each of ``yaws`` (degrees), lit and
        anti-aliased, from one rasterisation: "textured" in its vertex colours, "clay" in clay grey (what
        :func:`t2f.export.turntable.render_frame` and the preview's panels draw one at a time with numpy);
        ``None`` when numpy must draw them instead.
        """
        if self.broken:
            return None
        try:
            return self._draw(view, yaws, size, looks)
        except Exception as exc:
            if not is_out_of_memory(exc):
                self.broken = True
                log.warning(
                    "drawing on %s failed (%s); numpy draws the previews from now on", self.device, first_line(exc)
                )
            return None

    def _draw(self, view: ViewMesh, yaws: np.ndarray, size: int, looks: tuple[str, ...]) -> dict[str, np.ndarray]:
        placed = np.stack([fit_to_panel(view.vertices, float(yaw), size) for yaw in yaws])
        lights = np.stack([vertex_light(view.normals, float(yaw)) for yaw in yaws])
        device = self.device
        with torch.inference_mode(), self.streams():
            triangles = torch.from_numpy(view.triangles.astype(np.int64)).to(device)
            face, bary = rasterize_views(torch.from_numpy(placed).to(device), triangles, size)
            light = torch.from_numpy(lights).to(device)
            colors = torch.from_numpy(view.colors.astype(np.float32)).to(device)
            drawn = {
                look: soften_views(
                    shade_views(face, bary, triangles, light, colors if look == "textured" else None), face >= 0
                )
                for look in looks
            }
            return {look: frames.cpu().numpy() for look, frames in drawn.items()}
