"""Face detection with MTCNN (the ``mtcnn`` package's weights, which ship in its wheel).

By default MTCNN runs on PyTorch (t2f.stages.mtcnn) on the models' device; the package's own
TensorFlow code is kept as an engine to choose (T2F_DETECTOR), pinned to the CPU so it never
reserves GPU memory that the diffusion model and PRNet need. The largest face wins. Its box is
turned into PRNet's crop with constants measured for MTCNN on AFLW2000-3D
(../shared/docs/face-detection.md), not the ones PRNet tuned for dlib's detector.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from t2f.errors import NoFaceFound, is_out_of_memory, release_failed_call
from t2f.faces import FaceBox, FaceCrop
from t2f.stages.mtcnn import Detections
from t2f.stages.prnet.postprocess import crop_face

if TYPE_CHECKING:
    import torch

    from t2f.stages.mtcnn.detector import TorchMTCNN

log = logging.getLogger(__name__)

# Landmark-box centre relative to an MTCNN box centre, and PRNet's crop side (1.6 x landmark-box
# size), all in units of s = (w + h) / 2 of the MTCNN box.
MTCNN_SHIFT_X = 0.016
MTCNN_SHIFT_Y = 0.153
MTCNN_CROP_SCALE = 1.47
# PRNet's own constants for dlib's MMOD box, for callers who bring such a box.
DLIB_SHIFT_Y = 0.14
DLIB_CROP_SCALE = 1.58
DETECT_MAX_SIDE = 1024  # detection runs on a copy at most this large; boxes are scaled back
MIN_FACE_PX = 24

NO_FACE = "No face found in the image. Try a portrait prompt, e.g. 'a close-up portrait photo of ...'."


def crop_from_mtcnn_box(image: np.ndarray, box: FaceBox) -> FaceCrop:
    """PRNet's crop from an MTCNN box with the calibrated shift and scale."""
    s = box.size
    center = box.center_xy + np.array([MTCNN_SHIFT_X * s, MTCNN_SHIFT_Y * s])
    return crop_face(image, center, MTCNN_CROP_SCALE * s)


def crop_from_dlib_box(image: np.ndarray, box: FaceBox) -> FaceCrop:
    """PRNet's original crop rule for a dlib MMOD box: 0.14 s down, side int(1.58 s)."""
    s = box.size
    return crop_face(image, box.center_xy + np.array([0.0, DLIB_SHIFT_Y * s]), float(int(DLIB_CROP_SCALE * s)))


class _TensorFlowMTCNN:
    """The ``mtcnn`` package itself, on TensorFlow pinned to the CPU, answering as :class:`TorchMTCNN` does."""

    def __init__(self) -> None:
        import tensorflow as tf

        # Keep TF off the GPU (PyTorch owns it). If TF already initialised its devices this raises,
        # and MTCNN below is pinned to the CPU anyway.
        with contextlib.suppress(RuntimeError):
            tf.config.set_visible_devices([], "GPU")
        from mtcnn import MTCNN

        self._mtcnn: Any = MTCNN(device="CPU:0")

    def detect(self, image: np.ndarray) -> Detections:
        # Rows: image id, x1, y1, x2, y2, score, five landmark x, five landmark y (unrounded, clipped boxes).
        found = np.asarray(self._mtcnn.detect_faces(image, box_format="xyxy", output_type="numpy"), np.float32)
        if found.size == 0:
            return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))
        return Detections(found[:, 1:5], found[:, 5], found[:, 6:16].reshape(-1, 2, 5).transpose(0, 2, 1))


class FaceDetector:
    """Find faces with MTCNN: the ``mtcnn`` wheel's weights, run by PyTorch on ``device`` (``engine="torch"``)
    or by the package's own TensorFlow code on the CPU (``engine="tensorflow"``).

    Both find the same boxes to within a hundredth of a pixel on the CPU (tests/test_mtcnn.py); on a GPU,
    cuDNN's TF32 convolutions (PyTorch's default there) may move them by up to about a pixel, well inside
    what PRNet's crop allows. PyTorch needs no TensorFlow and runs on the GPU beside PRNet. Should the GPU
    run out of memory, that image is searched with the same networks on the CPU instead (one warning line),
    not failed.
    """

    def __init__(
        self, *, min_confidence: float = 0.9, engine: str = "torch", device: torch.device | str = "cpu"
    ) -> None:
        self.engine, self.device = engine, str(device)
        self._on_cpu: TorchMTCNN | None = None  # made the first time the GPU runs out of memory
        if engine == "torch":
            from t2f.stages.mtcnn.detector import TorchMTCNN

            self._engine: TorchMTCNN | _TensorFlowMTCNN = TorchMTCNN.from_pretrained(device=device)
        elif engine == "tensorflow":
            self._engine = _TensorFlowMTCNN()
        else:
            raise ValueError(f"engine must be 'torch' or 'tensorflow', not {engine!r}")
        self.min_confidence = min_confidence

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """All faces in ``image`` (H, W, 3) uint8 RGB, largest first."""
        scale = min(1.0, DETECT_MAX_SIDE / max(image.shape[:2]))
        small = image
        if scale < 1.0:
            from PIL import Image

            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            small = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
        found = self._search(np.ascontiguousarray(small))
        keep = found.scores >= self.min_confidence
        corners = found.boxes[keep].astype(np.float64) / scale
        points = found.landmarks[keep].astype(np.float64) / scale
        boxes = [
            FaceBox(left, top, right, bottom, float(score), keypoints=tuple((x, y) for x, y in point.tolist()))
            for (left, top, right, bottom), score, point in zip(
                corners.tolist(), found.scores[keep], points, strict=True
            )
        ]
        return sorted(boxes, key=lambda b: (b.right - b.left) * (b.bottom - b.top), reverse=True)

    def _search(self, image: np.ndarray) -> Detections:
        """The engine's detections; on the CPU when the GPU is out of memory (PRNet and painting share it)."""
        try:
            return self._engine.detect(image)
        except Exception as exc:
            if not is_out_of_memory(exc) or self.engine != "torch":
                raise
            release_failed_call(exc)
        from t2f.stages.mtcnn.detector import TorchMTCNN

        if self._on_cpu is None:
            log.warning("MTCNN ran out of GPU memory on %s; searching this image on the CPU", self.device)
            self._on_cpu = TorchMTCNN.from_pretrained(device="cpu")
        return self._on_cpu.detect(image)

    def largest_face(self, image: np.ndarray) -> tuple[FaceBox, int]:
        """The largest face and how many faces were found.

        Raises
        ------
        NoFaceFound
            When there is no face, or the largest is under 24 px.
        """
        boxes = self.detect(image)
        if not boxes:
            raise NoFaceFound(NO_FACE)
        if boxes[0].size < MIN_FACE_PX:
            raise NoFaceFound(
                f"The face in the image is too small ({boxes[0].size:.0f} px) to reconstruct; try a close-up portrait."
            )
        return boxes[0], len(boxes)
