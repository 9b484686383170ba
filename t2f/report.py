"""The per-face report: one typed record of how a face was made.

The CLI's ``metadata.json``, the bot's result embed and its Info button all read a
:class:`FaceReport`; the store keeps it as JSON (:meth:`FaceReport.to_json` /
:meth:`FaceReport.from_json`), so a report survives restarts unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from t2f.faces import FaceImage, FaceMesh, FaceRequest, FaceResult, frontal_frame

RANDOM_WEIGHTS_NOTE = (
    "PRNet weights were not converted from the official checkpoint (its sha256 differs); "
    "the geometry may be meaningless."
)


@dataclass(frozen=True)
class HeadPose:
    """Head rotation in degrees: yaw (turn), pitch (nod), roll (tilt)."""

    yaw: float
    pitch: float
    roll: float

    @classmethod
    def from_radians(cls, pose: np.ndarray) -> HeadPose | None:
        """From a (3,) yaw, pitch, roll array in radians; ``None`` when it is NaN (degenerate geometry)."""
        yaw, pitch, roll = (round(float(v), 2) for v in np.degrees(pose))
        return None if np.isnan(yaw) else cls(yaw, pitch, roll)

    def text(self) -> str:
        """``yaw 4° · pitch -3° · roll 0°``: whole degrees, halves away from zero, never "-0"."""
        return f"yaw {whole(self.yaw)}° · pitch {whole(self.pitch)}° · roll {whole(self.roll)}°"


def whole(degrees: float) -> int:
    """``degrees`` rounded to a whole number, halves away from zero (2.5 -> 3, -2.5 -> -3, -0.4 -> 0)."""
    return int(np.sign(degrees) * np.floor(abs(degrees) + 0.5)) + 0  # + 0 turns -0 into 0


Matrix4 = tuple[tuple[float, float, float, float], ...]


@dataclass(frozen=True)
class FilesFrame:
    """Where face.obj and face.glb put the head (:class:`t2f.faces.FrontalFrame`), for metadata.json.

    ``pose_removed`` is the head pose undone in the files (zero when the geometry had no pose);
    ``unit_px`` the source-image pixels in one file unit (the frontal face's height); ``photo_from_file``
    the 4 x 4 matrix taking a file point (x, y, z, 1) back to the photo (pixels: x right, y down, z
    towards the camera), as ``face_textured_photo.obj`` has it before its y flip.
    """

    pose_removed: HeadPose
    unit_px: float
    photo_from_file: Matrix4

    @classmethod
    def of(cls, mesh: FaceMesh) -> FilesFrame:
        frame = frontal_frame(mesh)
        pose = HeadPose.from_radians(mesh.pose) or HeadPose(0.0, 0.0, 0.0)
        matrix = np.round(frame.photo_from_file(), 6)
        return cls(pose, round(frame.height, 4), tuple(tuple(row) for row in matrix.tolist()))

    def to_json(self) -> dict[str, Any]:
        return {
            "pose_removed_deg": dataclasses.asdict(self.pose_removed),
            "unit_px": self.unit_px,
            "photo_from_file": [list(row) for row in self.photo_from_file],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FilesFrame:
        matrix = tuple(tuple(float(value) for value in row) for row in data["photo_from_file"])
        return cls(HeadPose(**data["pose_removed_deg"]), float(data["unit_px"]), matrix)  # type: ignore[arg-type]


@dataclass(frozen=True)
class WeightsProvenance:
    """Where PRNet's weights came from: the converted file's and the source checkpoint's sha256."""

    source: str
    sha256: str | None
    checkpoint_sha256: str | None
    official: bool

    @property
    def note(self) -> str | None:
        """One line a user sees when the weights are not the official ones."""
        return None if self.official else RANDOM_WEIGHTS_NOTE


@dataclass(frozen=True)
class FaceGeometry:
    """Facts about the reconstructed face (absent when painting did not get that far).

    ``landmarks`` are (68, 3) float iBUG-68 points in image pixels; ``box_ltrb`` is the detector's box
    (``None`` for a whole-image crop); ``crop_center_xy`` and ``crop_side`` are PRNet's crop in pixels;
    ``files_frame`` where the mesh files put the head (``None`` in reports saved before it was recorded).
    """

    vertices: int
    triangles: int
    pose: HeadPose | None
    landmarks: tuple[tuple[float, float, float], ...]
    faces_found: int
    box_ltrb: tuple[float, float, float, float] | None
    crop_center_xy: tuple[float, float]
    crop_side: float
    files_frame: FilesFrame | None = None

    @classmethod
    def of(cls, result: FaceResult) -> FaceGeometry:
        box = result.box
        return cls(
            vertices=len(result.mesh.vertices),
            triangles=len(result.mesh.triangles),
            pose=HeadPose.from_radians(result.mesh.pose),
            landmarks=tuple(tuple(row) for row in np.round(result.mesh.landmarks.astype(np.float64), 3).tolist()),
            faces_found=result.faces_found,
            box_ltrb=None
            if box is None
            else (round(box.left, 1), round(box.top, 1), round(box.right, 1), round(box.bottom, 1)),
            crop_center_xy=tuple(np.round(result.crop.center_xy, 2).tolist()),
            crop_side=round(float(result.crop.side), 2),
            files_frame=FilesFrame.of(result.mesh),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "vertices": self.vertices,
            "triangles": self.triangles,
            "pose_deg": None if self.pose is None else dataclasses.asdict(self.pose),
            "landmarks_68": [list(point) for point in self.landmarks],
            "faces_found": self.faces_found,
            "box_ltrb": None if self.box_ltrb is None else list(self.box_ltrb),
            "crop": {"center_xy": list(self.crop_center_xy), "side": self.crop_side},
            **({} if self.files_frame is None else {"files_frame": self.files_frame.to_json()}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaceGeometry:
        pose = data.get("pose_deg")
        box = data.get("box_ltrb")
        return cls(
            vertices=int(data["vertices"]),
            triangles=int(data["triangles"]),
            pose=None if pose is None else HeadPose(**pose),
            landmarks=tuple(tuple(point) for point in data.get("landmarks_68", ())),
            faces_found=int(data["faces_found"]),
            box_ltrb=None if box is None else tuple(box),
            crop_center_xy=tuple(data["crop"]["center_xy"]),
            crop_side=float(data["crop"]["side"]),
            files_frame=None if data.get("files_frame") is None else FilesFrame.from_json(data["files_frame"]),
        )


@dataclass(frozen=True)
class FaceReport:
    """Everything worth knowing about one face: what was asked, what made it, where it is, how long it took.

    ``request`` (as the member asked) and ``model``/``model_revision`` (the diffusion weights) are
    ``None`` for a photo reconstruction; ``painted_prompt``/``painted_negative`` are what the model was
    given (the portrait framing around the member's words); ``seeds_tried`` the seeds painted before the
    one that made this face (repaints); ``timings_s`` maps stage names to seconds; ``face`` and ``prnet``
    are ``None`` until PRNet ran.
    """

    request: FaceRequest | None = None
    painted_prompt: str | None = None
    painted_negative: str | None = None
    seeds_tried: tuple[int, ...] = ()
    model: str | None = None
    model_revision: str | None = None
    dropped_prompt: str = ""
    nsfw: bool | None = None
    timings_s: Mapping[str, float] = field(default_factory=dict)
    face: FaceGeometry | None = None
    prnet: WeightsProvenance | None = None
    upload_note: str | None = None

    @classmethod
    def of_painting(
        cls,
        painted: FaceImage,
        *,
        model: str | None,
        revision: str | None,
        request: FaceRequest | None = None,
        seeds_tried: tuple[int, ...] = (),
    ) -> FaceReport:
        """The report once the image is painted: the member's ``request`` (default: the painted one), what
        was painted, the model and the text encoder's verdict."""
        return cls(
            request=request or painted.request,
            painted_prompt=painted.request.prompt,
            painted_negative=painted.request.negative_prompt,
            seeds_tried=seeds_tried,
            model=model,
            model_revision=revision,
            dropped_prompt=painted.dropped_prompt,
            nsfw=painted.nsfw,
            timings_s=rounded(painted.timings),
        )

    def with_face(self, result: FaceResult, prnet: WeightsProvenance | None) -> FaceReport:
        """This report plus the reconstructed face and its stage times."""
        timings = {**self.timings_s, **rounded(result.timings)}
        return dataclasses.replace(self, face=FaceGeometry.of(result), prnet=prnet, timings_s=timings)

    def with_timings(self, timings: Mapping[str, float]) -> FaceReport:
        return dataclasses.replace(self, timings_s={**self.timings_s, **rounded(timings)})

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to metadata.json and kept in the store."""
        data: dict[str, Any] = {}
        if self.request is not None:  # a painted face; a photo reconstruction has no prompt or model
            data.update(dataclasses.asdict(self.request))
            data.update(
                painted_prompt=self.painted_prompt,
                painted_negative=self.painted_negative,
                seeds_tried=list(self.seeds_tried),
            )
            data.update(
                prompt_truncated=bool(self.dropped_prompt),
                dropped_prompt=self.dropped_prompt,
                model=None if self.model is None else {"id": self.model, "revision": self.model_revision},
                nsfw=self.nsfw,
            )
        data["timings_s"] = dict(self.timings_s)
        if self.face is not None:
            data["face"] = self.face.to_json()
        if self.prnet is not None:
            data["prnet"] = {
                "weights": self.prnet.source,
                "sha256": self.prnet.sha256,
                "checkpoint_sha256": self.prnet.checkpoint_sha256,
                "official": self.prnet.official,
            }
            if self.prnet.note:
                data["prnet"]["note"] = self.prnet.note
        if self.upload_note:
            data["upload_note"] = self.upload_note
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaceReport:
        """Inverse of :meth:`to_json`."""
        names = [f.name for f in dataclasses.fields(FaceRequest)]
        model = data.get("model") or {}
        prnet = data.get("prnet")
        return cls(
            # Reports kept before a field existed (a profile) take its default.
            request=FaceRequest(**{name: data[name] for name in names if name in data}) if "prompt" in data else None,
            painted_prompt=data.get("painted_prompt"),
            painted_negative=data.get("painted_negative"),
            seeds_tried=tuple(data.get("seeds_tried", ())),
            model=model.get("id"),
            model_revision=model.get("revision"),
            dropped_prompt=data.get("dropped_prompt", ""),
            nsfw=data.get("nsfw"),
            timings_s=dict(data.get("timings_s", {})),
            face=None if data.get("face") is None else FaceGeometry.from_json(data["face"]),
            prnet=None
            if prnet is None
            else WeightsProvenance(
                prnet["weights"], prnet.get("sha256"), prnet.get("checkpoint_sha256"), bool(prnet.get("official"))
            ),
            upload_note=data.get("upload_note"),
        )


def rounded(timings: Mapping[str, float], digits: int = 4) -> dict[str, float]:
    """Stage times rounded for reports (tenths of a millisecond)."""
    return {name: round(float(seconds), digits) for name, seconds in timings.items()}
