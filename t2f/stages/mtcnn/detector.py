"""MTCNN's three-stage cascade in PyTorch: the ``mtcnn`` package's detector, without TensorFlow, on any device.

The cascade, as the package runs it (thresholds and NMS overlaps are its defaults):

1. P-Net slides a 12 px window over an image pyramid (faces from 20 px up); cells scoring over 0.6
   become boxes, pruned per scale (overlap 0.5) and across scales (0.7), then squared.
2. R-Net re-scores each box from a 24 x 24 crop and nudges it; over 0.7 survive (overlap 0.7), squared.
3. O-Net does the same from 48 x 48 crops (over 0.8) and places five landmarks; boxes overlapping a
   better one by 0.7 of the smaller are dropped.

Every step runs on ``device`` (TensorFlow MTCNN took ~80 ms of CPU per 512 px image on the H200 host;
this on its GPU is unmeasured) and it needs nothing but PyTorch and the wheel's weight files.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from t2f.stages.mtcnn import Detections
from t2f.stages.mtcnn.boxes import (
    AreaGrid,
    area_grid,
    area_resize,
    crop_patches,
    integral_image,
    proposals,
    refined,
    scale_pyramid,
    squared,
    suppress,
)
from t2f.stages.mtcnn.network import ONet, PNet, RNet, load_networks
from t2f.streams import StreamPerThread


@dataclass(frozen=True)
class CascadeConfig:
    """The cascade's knobs, the ``mtcnn`` package's defaults."""

    min_face_px: float = 20.0
    pyramid_factor: float = 0.709
    pnet_threshold: float = 0.6
    rnet_threshold: float = 0.7
    onet_threshold: float = 0.8
    pnet_scale_overlap: float = 0.5  # NMS within one pyramid level
    pnet_overlap: float = 0.7  # NMS across levels
    rnet_overlap: float = 0.7
    onet_overlap: float = 0.7  # of the smaller box, not the union


class TorchMTCNN:
    """MTCNN on PyTorch: ``detect(image)`` -> :class:`Detections`.

    Parameters
    ----------
    pnet, rnet, onet : the networks, already on ``device`` (:func:`load_networks`).
    config : thresholds and overlaps (the package's defaults).
    device : where every step runs.
    """

    def __init__(
        self,
        pnet: PNet,
        rnet: RNet,
        onet: ONet,
        *,
        config: CascadeConfig | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.pnet, self.rnet, self.onet = pnet, rnet, onet
        self.config = config or CascadeConfig()
        self.device = torch.device(device)
        self.streams = StreamPerThread(self.device)
        # Resize grids per image size: painted images all share one size, so they are built once.
        self._pyramid = functools.lru_cache(maxsize=8)(self._build_pyramid)

    @classmethod
    def from_pretrained(
        cls, folder: Path | None = None, *, config: CascadeConfig | None = None, device: torch.device | str = "cpu"
    ) -> TorchMTCNN:
        """The detector with the installed ``mtcnn`` wheel's weights, or the three ``.lz4`` files in ``folder``."""
        return cls(*load_networks(folder, device=device), config=config, device=device)

    def detect(self, image: np.ndarray) -> Detections:
        """Faces in ``image`` (H, W, 3) uint8 RGB; on a GPU, on the calling thread's own stream (t2f.streams)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
        with torch.inference_mode(), self.streams():
            return self._detect(image)

    def _detect(self, image: np.ndarray) -> Detections:
        height, width = image.shape[:2]
        pixels = torch.from_numpy(np.require(image, requirements=["C", "W"])).to(self.device)  # copies only if needed
        normalised = (pixels.permute(2, 0, 1).float() - 127.5) / 128.0  # (3, H, W) in about [-1, 1]
        found = self._propose(normalised)
        found = self._refine(normalised, found)
        found, landmarks = self._output(normalised, found)
        boxes = found[:, :4].clone()
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width - 1)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height - 1)
        return Detections(
            boxes=boxes.cpu().numpy(),
            scores=found[:, 4].cpu().numpy(),
            landmarks=landmarks.reshape(-1, 2, 5).transpose(1, 2).cpu().numpy(),
        )

    def _propose(self, image: torch.Tensor) -> torch.Tensor:
        """Stage 1: (K, 5) squared P-Net boxes and scores."""
        c = self.config
        levels = []
        integral = integral_image(image)
        for scale, grid in self._pyramid(*image.shape[-2:]):
            offsets, odds = self.pnet(area_resize(integral, grid)[None])
            level = proposals(offsets[0], odds[0], scale, c.pnet_threshold)
            levels.append(suppress(level, c.pnet_scale_overlap, ordered=True))
        found = torch.cat(levels) if levels else torch.zeros(0, 5, device=self.device)
        return squared(suppress(found, c.pnet_overlap))

    def _build_pyramid(self, height: int, width: int) -> list[tuple[float, AreaGrid]]:
        """(scale, resize grid) of each pyramid level of a ``height`` x ``width`` image."""
        c = self.config
        scales = scale_pyramid(height, width, min_face_px=c.min_face_px, factor=c.pyramid_factor)
        return [(float(scale), area_grid(height, width, float(scale), self.device)) for scale in scales]

    def _refine(self, image: torch.Tensor, found: torch.Tensor) -> torch.Tensor:
        """Stage 2: (K, 5) R-Net's re-scored, moved and squared boxes."""
        if found.shape[0] == 0:
            return found
        offsets, odds = self.rnet(crop_patches(image, found[:, :4], 24))
        found = refined(torch.cat([found[:, :4], odds[:, 1:]], 1), offsets)
        found = found[found[:, 4] > self.config.rnet_threshold]
        return squared(suppress(found, self.config.rnet_overlap))

    def _output(self, image: torch.Tensor, found: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage 3: (K, 5) O-Net's boxes and scores, and (K, 10) landmarks (five x, then five y)."""
        if found.shape[0] == 0:
            return found, torch.zeros(0, 10, device=self.device)
        offsets, points, odds = self.onet(crop_patches(image, found[:, :4], 48))
        side = found[:, 2:4] - found[:, :2] + 1  # (K, 2) width, height
        xs = side[:, :1] * points[:, :5] + found[:, :1] - 1
        ys = side[:, 1:] * points[:, 5:] + found[:, 1:2] - 1
        found = refined(torch.cat([found[:, :4], odds[:, 1:], xs, ys], 1), offsets)
        found = found[found[:, 4] > self.config.onet_threshold]
        found = suppress(found, self.config.onet_overlap, method="min")
        return found[:, :5], found[:, 5:]
