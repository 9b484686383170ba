"""FacePipeline: text -> image -> face -> mesh -> files, each stage timed.

Stages are passed in (built once at start-up); ``reconstruct`` works from any image, and
``generate`` paints one first. Results are plain data; :func:`result_files` turns a result into
the bytes of every output file, and only the caller writes them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from t2f.detect import FaceBox, FaceDetector, crop_from_mtcnn_box
from t2f.errors import InvalidRequest, T2FError
from t2f.export.glb import glb_bytes
from t2f.export.obj import obj_bytes, textured_obj_files
from t2f.outputs import IMAGE_FILE, PREVIEW_FILE, jpeg_bytes, png_bytes
from t2f.prnet.model import PRNet
from t2f.prnet.postprocess import (
    FaceCrop,
    FaceMesh,
    build_face_mesh,
    crop_from_landmarks,
    crop_whole_image,
    restore_position_map,
)
from t2f.prnet.uv import UVData
from t2f.render import preview_strip

CROP_MODES = ("detect", "whole")


@dataclass(frozen=True)
class FaceResult:
    """One reconstructed face.

    Attributes
    ----------
    image : (H, W, 3) uint8 RGB the face was found in.
    mesh : the dense mesh.
    crop : PRNet's input crop and its transform.
    box : the detector's box, or ``None`` when the whole image was the crop.
    faces_found : how many faces the detector saw (the largest was used); 1 for a whole-image crop.
    timings : seconds per stage (``detect``, ``prnet``, ``postprocess``).
    """

    image: np.ndarray
    mesh: FaceMesh
    crop: FaceCrop
    box: FaceBox | None
    faces_found: int
    timings: dict[str, float] = field(default_factory=dict)


@contextmanager
def timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    """Add the seconds spent inside the block to ``timings[stage]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start


class FacePipeline:
    """Image (or prompt) to face mesh.

    Parameters
    ----------
    prnet, uv : the reconstruction network and its UV data.
    detector : MTCNN, needed for ``crop="detect"``; built lazily when missing.
    text_to_image : the diffusion stage, needed only by :meth:`generate`.
    """

    def __init__(
        self, *, prnet: PRNet, uv: UVData, detector: FaceDetector | None = None, text_to_image: Any = None
    ) -> None:
        self.prnet = prnet
        self.uv = uv
        self.detector = detector
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
            self.detector = FaceDetector()
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

    def reconstruct_many(self, images: list[np.ndarray], *, crop: str = "detect") -> list[FaceResult | T2FError]:
        """Like :meth:`reconstruct_batch`, but an image without a usable face gets its error, not the batch's."""
        timings: dict[str, float] = {}
        found: list[tuple[FaceCrop, FaceBox | None, int] | T2FError] = []
        with timed(timings, "detect"):
            for image in images:
                try:
                    found.append(self.find_face(image, crop=crop))
                except T2FError as exc:
                    found.append(exc)
        good = [i for i, f in enumerate(found) if not isinstance(f, T2FError)]
        faces = self._reconstruct_found([images[i] for i in good], [found[i] for i in good], timings) if good else []  # type: ignore[misc]
        by_index = dict(zip(good, faces, strict=True))
        return [by_index.get(i, f) for i, f in enumerate(found)]  # type: ignore[misc]

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

    def generate(
        self, request: Any, *, crop: str = "detect", on_step: Callable[[Any], None] | None = None
    ) -> tuple[Any, FaceResult | None]:
        """Paint ``request`` (a :class:`~t2f.text2img.FaceRequest`) and reconstruct its face.

        Returns the :class:`~t2f.text2img.FaceImage` and the face, or ``None`` when the image was withheld.
        """
        if self.text_to_image is None:
            raise InvalidRequest("This pipeline has no text-to-image stage.")
        painted = self.text_to_image.generate(request, on_step=on_step)
        if painted.image is None:
            return painted, None
        return painted, self.reconstruct(painted.image, crop=crop)


def result_files(
    result: FaceResult,
    timings: dict[str, float] | None = None,
    *,
    outputs: tuple[str, ...] = ("obj", "textured", "glb"),
) -> dict[str, bytes]:
    """The output files of a face, by name; export times are added to ``timings`` when given.

    Always ``image.png`` and ``preview.jpg``; ``face.obj`` (vertex colours) for "obj",
    ``face_textured.obj/.mtl/.png`` for "textured", ``face.glb`` for "glb".
    """
    stage_times = timings if timings is not None else {}
    files = {IMAGE_FILE: png_bytes(result.image)}
    with timed(stage_times, "export_obj"):
        if "obj" in outputs:
            files["face.obj"] = obj_bytes(result.mesh)
        if "textured" in outputs:
            files.update(textured_obj_files(result.mesh, stem="face_textured"))
    with timed(stage_times, "export_glb"):
        if "glb" in outputs:
            files["face.glb"] = glb_bytes(result.mesh)
    with timed(stage_times, "preview"):
        files[PREVIEW_FILE] = jpeg_bytes(preview_strip(result.image, result.mesh))
    return files


def face_metadata(result: FaceResult) -> dict[str, Any]:
    """JSON-friendly facts about a face: landmarks, pose, crop, box."""
    yaw, pitch, roll = np.degrees(result.mesh.pose)
    return {
        "vertices": len(result.mesh.vertices),
        "triangles": len(result.mesh.triangles),
        "pose_deg": None if np.isnan(yaw) else {"yaw": round(float(yaw), 2), "pitch": round(float(pitch), 2),
                                                "roll": round(float(roll), 2)},
        "landmarks_68": np.round(result.mesh.landmarks, 3).tolist(),
        "faces_found": result.faces_found,
        "box_ltrb": None if result.box is None else [round(v, 1) for v in (result.box.left, result.box.top,
                                                                           result.box.right, result.box.bottom)],
        "crop": {"center_xy": np.round(result.crop.center_xy, 2).tolist(), "side": round(result.crop.side, 2)},
    }  # fmt: skip
