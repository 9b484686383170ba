"""MTCNN's image and box arithmetic in PyTorch, as the ``mtcnn`` package (1.0.0) does it with TensorFlow and numpy.

Each function reproduces one of the package's steps closely enough that the same weights find the
same boxes (tests/test_mtcnn.py compares the two on real photos), so the crop constants measured
for that package (t2f.stages.detect) hold unchanged. Boxes are (K, 4) float32 ``x1, y1, x2, y2`` in
pixels of the detector's input image; tensors stay on the caller's device.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

CELL = 12  # P-Net's window, px of the scaled image
STRIDE = 2  # P-Net's output cells are this many px apart


def scale_pyramid(height: int, width: int, *, min_face_px: float = 20.0, factor: float = 0.709) -> np.ndarray:
    """(S,) float64 scales at which P-Net's 12 px window sees faces from ``min_face_px`` up to the whole image."""
    count = round(-(math.log(min(height, width) / CELL) / math.log(factor) + 1))
    return (CELL / min_face_px) * factor ** np.arange(max(count, 0))


def area_edges(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Where the edges of ``size_out`` equal cells fall on an axis of ``size_in`` pixels: (size_out + 1,) int64
    pixel and float64 fraction into it (the last edge is pixel ``size_in - 1``, fraction 1)."""
    at = np.arange(size_out + 1) * (size_in / size_out)
    pixel = np.minimum(np.floor(at).astype(np.int64), size_in - 1)
    return pixel, at - pixel


class AreaGrid(NamedTuple):
    """One pyramid level's cell edges (:func:`area_edges`) on the device, for :func:`area_resize`."""

    rows: torch.Tensor
    row_fractions: torch.Tensor
    cols: torch.Tensor
    col_fractions: torch.Tensor
    cell_area: float  # input pixels per output pixel


def area_grid(height: int, width: int, scale: float, device: torch.device) -> AreaGrid:
    """The grid that resizes a ``height`` x ``width`` image by ``scale``, sides truncated as TensorFlow does."""
    out_h, out_w = int(height * scale), int(width * scale)
    (rows, row_fractions), (cols, col_fractions) = area_edges(height, out_h), area_edges(width, out_w)
    return AreaGrid(
        torch.from_numpy(rows).to(device),
        torch.from_numpy(row_fractions).to(device),
        torch.from_numpy(cols).to(device),
        torch.from_numpy(col_fractions).to(device),
        (height / out_h) * (width / out_w),
    )


def integral_image(image: torch.Tensor) -> torch.Tensor:
    """(3, H + 1, W + 1) float64 sums of ``image`` (3, H, W) above and left of each pixel corner.

    float64 because the sums of a 1024 px image reach ~1e6 and area means are their differences.
    """
    return torch.nn.functional.pad(image.double().cumsum(1).cumsum(2), (1, 0, 1, 0))


def area_resize(integral: torch.Tensor, grid: AreaGrid) -> torch.Tensor:
    """(3, h, w) float32 TensorFlow 'area' resize, from the image's :func:`integral_image`.

    An output pixel averages the input over its cell, each input pixel weighted by its overlap. The
    integral of a pixelated image is bilinear inside each pixel, so interpolating the integral image
    at the cell corners gives the exact sums; a level costs a few operations per output pixel, however
    far it shrinks the image.
    """
    rows = (
        integral[:, grid.rows] * (1 - grid.row_fractions)[:, None]
        + integral[:, grid.rows + 1] * grid.row_fractions[:, None]
    )
    at = rows[:, :, grid.cols] * (1 - grid.col_fractions) + rows[:, :, grid.cols + 1] * grid.col_fractions
    sums = at[:, 1:, 1:] - at[:, :-1, 1:] - at[:, 1:, :-1] + at[:, :-1, :-1]
    return (sums / grid.cell_area).float()


def proposals(offsets: torch.Tensor, odds: torch.Tensor, scale: float, threshold: float) -> torch.Tensor:
    """(K, 5) boxes and scores (``x1, y1, x2, y2, score``) of P-Net's cells more likely a face than ``threshold``.

    ``offsets`` (4, h, w) and ``odds`` (2, h, w) are P-Net's outputs for one image at ``scale``; each
    cell's 12 px window, moved by its offsets, is mapped back to input pixels. Sorted by score, best first.
    """
    score = odds[1]
    rows, cols = torch.nonzero(score > threshold, as_tuple=True)
    shift = offsets[:, rows, cols].T * (CELL - 1)  # (K, 4): x1, y1, x2, y2 as fractions of the 11 px side
    corner = torch.stack([cols, rows], 1).to(score.dtype) * STRIDE
    boxes = torch.cat([corner + 1 + shift[:, :2], corner + CELL + shift[:, 2:]], 1) / scale
    found = torch.cat([boxes, score[rows, cols, None]], 1)
    return found[best_first(found[:, 4])]


def best_first(scores: torch.Tensor) -> torch.Tensor:
    """Indices that sort ``scores`` (K,) high to low as the package does: numpy's ascending sort, reversed.

    P-Net's scores often saturate to exactly 1.0, and the package's suppression rule depends on the order
    of equal scores (the later row first), so the order is taken on the CPU, where it is defined.
    """
    order = np.argsort(scores.cpu().numpy())[::-1].copy()
    return torch.from_numpy(order).to(scores.device)


def overlap(boxes: torch.Tensor, *, method: str = "union") -> torch.Tensor:
    """(K, K) intersection of each pair of ``boxes`` (K, 4) over their union, or over the smaller box ("min")."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    low = torch.maximum(boxes[None, :, :2], boxes[:, None, :2])
    high = torch.minimum(boxes[None, :, 2:4], boxes[:, None, 2:4])
    inter = (high - low).clamp(min=0).prod(-1)
    if method == "union":
        return inter / (area[:, None] + area[None, :] - inter)
    if method == "min":
        return inter / torch.minimum(area[:, None], area[None, :])
    raise ValueError(f"method must be 'union' or 'min', not {method!r}")


def suppress(found: torch.Tensor, threshold: float, *, method: str = "union", ordered: bool = False) -> torch.Tensor:
    """The rows of ``found`` (K, 5+: box, score, ...) that no better-scoring row overlaps by more than ``threshold``.

    As in the ``mtcnn`` package, a row is dropped when any better row overlaps it, even one that
    was itself dropped (not greedy NMS). Rows are sorted by score first unless ``ordered``.
    """
    if found.shape[0] == 0:
        return found
    if not ordered:
        found = found[best_first(found[:, 4])]
    beaten = torch.triu(overlap(found[:, :4], method=method) > threshold, diagonal=1).any(0)
    return found[~beaten]


def squared(found: torch.Tensor) -> torch.Tensor:
    """``found`` with each box grown to a square of its longer side about the same centre."""
    boxes = found[:, :4]
    size = (boxes[:, 2:4] - boxes[:, :2]).amax(1, keepdim=True)
    low = (boxes[:, :2] + boxes[:, 2:4]) / 2 - size / 2
    return torch.cat([low, low + size, found[:, 4:]], 1)


def refined(found: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """``found`` with its boxes moved by a network's ``offsets`` (K, 4), fractions of each box's side (+1 px)."""
    boxes = found[:, :4]
    side = (boxes[:, 2:4] - boxes[:, :2] + 1).repeat(1, 2)
    return torch.cat([boxes + offsets * side, found[:, 4:]], 1)


def crop_patches(image: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """(K, 3, size, size) bilinear samples of ``image`` (3, H, W) inside ``boxes``, 0 outside the image.

    TensorFlow's ``crop_and_resize`` with the package's box normalisation (divided by H and W, then
    spread over H - 1 and W - 1): the first and last samples fall on the box's edges.
    """
    height, width = image.shape[-2:]
    steps = torch.arange(size, dtype=image.dtype, device=image.device) / (size - 1)

    def sample_at(low: torch.Tensor, high: torch.Tensor, extent: int) -> tuple[torch.Tensor, ...]:
        span = (extent - 1) / extent
        at = (low * span)[:, None] + steps[None] * ((high - low) * span)[:, None]  # (K, size)
        inside = (at >= 0) & (at <= extent - 1)
        before = at.floor()
        return before.clamp(0, extent - 1).long(), at.ceil().clamp(0, extent - 1).long(), at - before, inside

    top, bottom, down, rows_in = sample_at(boxes[:, 1], boxes[:, 3], height)
    left, right, across, cols_in = sample_at(boxes[:, 0], boxes[:, 2], width)

    def pick(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        return image[:, rows[:, :, None], cols[:, None, :]]  # (3, K, size, size)

    upper = pick(top, left) + (pick(top, right) - pick(top, left)) * across[:, None, :]
    lower = pick(bottom, left) + (pick(bottom, right) - pick(bottom, left)) * across[:, None, :]
    patches = upper + (lower - upper) * down[:, :, None]
    patches = patches * (rows_in[:, :, None] & cols_in[:, None, :])
    return patches.permute(1, 0, 2, 3).contiguous()
