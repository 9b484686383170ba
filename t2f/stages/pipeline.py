"""FacePipeline: image -> face -> mesh, each stage timed; it also holds the text-to-image stage.

Stages are passed in (built once at start-up, see :mod:`t2f.build`); ``reconstruct`` works from any
image. Results are plain data (:class:`~t2f.faces.FaceResult`); :mod:`t2f.export.package` turns a
result into file bytes, and only the caller writes them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from t2f.errors import InvalidRequest, T2FError
from t2f.faces import FaceBox, FaceCrop, FaceResult
from t2f.stages.detect import FaceDetector, crop_from_mtcnn_box
from t2f.stages.prnet.model import PRNet
from t2f.stages.prnet.postprocess import build_face_mesh, crop_from_landmarks, crop_whole_image, restore_position_map
from t2f.stages.prnet.uv import UVData
from t2f.timing import timed

CROP_MODES = ("detect", "whole")


class FacePipeline:
    """Image (or prompt) to face mesh.

    Parameters
    ----------
    prnet, uv : the reconstruction network and its UV data.
    detector : MTCNN, needed for ``crop="detect"`` and photos; built by ``make_detector`` when first needed.
    make_detector : how to build it (the settings' engine and device; default: PyTorch on the CPU).
    text_to_image : the diffusion stage (a :class:`~t2f.stages.text2img.TextToImage` or anything with its
        ``generate_batch``), used by the serving layer; ``None`` for photo reconstruction.
    """

    def __init__(
        self,
        *,
        prnet: PRNet,
        uv: UVData,
        detector: FaceDetector | None = None,
        text_to_image: Any = None,
        make_detector: Callable[[], FaceDetector] = FaceDetector,
    ) -> None:
        self.prnet = prnet
        self.uv = uv
        self.detector = detector
        self.make_detector = make_detector
        self.text_to_image = text_to_image

    def find_face(
        self, image: np.ndarray, *, crop: str, box: FaceBox | None = None, landmarks: np.ndarray | None = None
    ) -> tuple[FaceCrop, FaceBox | None, int]:
        """PRNet's crop for ``image`` (H, W, 3) uint8.

        A caller-given MTCNN-style ``box`` or (68, 2+) ``landmarks`` (PRNet's 1.6x, no-shift rule)
        wins over ``crop``, which is the largest detected face ("detect") or the whole image ("whole").
        """
        if landmarks is not None:
            return crop_from_landmarks(image, np.asarray(landmarks, dtype=np.float64)), None, 1
        if box is not None:
            return crop_from_mtcnn_box(image, box), box, 1
        if crop == "whole":
            return crop_whole_image(image), None, 1
        if crop != "detect":
            raise InvalidRequest(f"Unknown face crop mode {crop!r}; use one of {', '.join(CROP_MODES)}.")
        if self.detector is None:
            self.detector = self.make_detector()
        box, count = self.detector.largest_face(image)
        return crop_from_mtcnn_box(image, box), box, count

    def reconstruct(
        self,
        image: np.ndarray,
        *,
        crop: str = "detect",
        box: FaceBox | None = None,
        landmarks: np.ndarray | None = None,
    ) -> FaceResult:
        """One image to one face mesh (see :meth:`find_face` for ``crop``, ``box`` and ``landmarks``).

        Raises
        ------
        NoFaceFound
            When ``crop="detect"`` finds no usable face.
        """
        timings: dict[str, float] = {}
        with timed(timings, "detect"):
            found = self.find_face(image, crop=crop, box=box, landmarks=landmarks)
        return self._reconstruct_found([image], [found], timings)[0]

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Every face the detector finds in ``image`` (H, W, 3) uint8, largest first (built on first use)."""
        if self.detector is None:
            self.detector = self.make_detector()
        return self.detector.detect(image)

    def reconstruct_many(
        self,
        images: list[np.ndarray],
        *,
        crop: str = "detect",
        boxes: list[tuple[FaceBox | None, int] | None] | None = None,
    ) -> list[FaceResult | T2FError]:
        """Like :meth:`reconstruct_batch`, but an image without a usable face gets its error, not the batch's.

        ``boxes`` may give, per image, a face already found (and how many faces were seen) so it is not
        detected twice; ``None`` entries fall back to ``crop``.
        """
        timings: dict[str, float] = {}
        found: list[tuple[FaceCrop, FaceBox | None, int] | T2FError] = []
        with timed(timings, "detect"):
            for image, given in zip(images, boxes or [None] * len(images), strict=True):
                try:
                    if given is not None and given[0] is not None:
                        found.append((crop_from_mtcnn_box(image, given[0]), given[0], given[1]))
                    else:
                        found.append(self.find_face(image, crop=crop))
                except T2FError as exc:
                    found.append(exc)
        good = [(i, f) for i, f in enumerate(found) if not isinstance(f, T2FError)]
        faces = self._reconstruct_found([images[i] for i, _ in good], [f for _, f in good], timings) if good else []
        results: list[FaceResult | T2FError] = [f for f in found if isinstance(f, T2FError)]
        by_index = {i: face for (i, _), face in zip(good, faces, strict=True)}
        errors = iter(results)
        return [by_index[i] if i in by_index else next(errors) for i in range(len(found))]

    def reconstruct_batch(self, images: list[np.ndarray], *, crop: str = "detect") -> list[FaceResult]:
        """Several images, with PRNet run once on the stacked crops.

        Raises
        ------
        NoFaceFound
            The first image's error when any image has no usable face.
        """
        results = self.reconstruct_many(images, crop=crop)
        for result in results:
            if isinstance(result, T2FError):
                raise result
        return results  # type: ignore[return-value]

    def _reconstruct_found(
        self, images: list[np.ndarray], found: list[tuple[FaceCrop, FaceBox | None, int]], timings: dict[str, float]
    ) -> list[FaceResult]:
        """PRNet on the stacked crops, then each face's post-processing (a loop over faces, not vertices)."""
        with timed(timings, "prnet"):
            raw = self.prnet.predict(np.stack([face_crop.image for face_crop, _, _ in found]))
        results = []
        for image, (face_crop, box, count), raw_map in zip(images, found, raw, strict=True):
            stage_times = {"detect": timings["detect"] / len(images), "prnet": timings["prnet"] / len(images)}
            with timed(stage_times, "postprocess"):
                pos = restore_position_map(raw_map, face_crop.tform, max_pos=self.prnet.config.max_pos)
                mesh = build_face_mesh(image, pos, self.uv)
            results.append(FaceResult(image, mesh, face_crop, box, count, stage_times))
        return results
