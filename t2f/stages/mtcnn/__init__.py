"""MTCNN (Zhang et al., 2016) in PyTorch, with the weights of the ``mtcnn`` wheel on PyPI.

``network`` holds the three networks and reads the wheel's weight files; ``boxes`` the pyramid,
crop and box arithmetic; ``detector`` the cascade (:class:`~t2f.stages.mtcnn.detector.TorchMTCNN`).
This module holds only what the cascade returns, so :mod:`t2f.stages.detect` can name it without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Detections:
    """Faces MTCNN found in one image, best score first.

    Attributes
    ----------
    boxes : (K, 4) float32 ``x1, y1, x2, y2`` in image pixels, clipped to the image.
    scores : (K,) float32 face probability in [0, 1].
    landmarks : (K, 5, 2) float32 (x, y) pixels of the left eye, right eye, nose, mouth left, mouth right
        (image left and right, MTCNN's order); not clipped.
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray
