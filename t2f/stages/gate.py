"""Is a painted image a usable face? Portrait framing before painting, and the face gate after it.

Stable Diffusion does not know that t2f needs a close-up, frontal, single face. :class:`PortraitFraming`
wraps the member's words in a portrait template and adds a default negative prompt; :func:`judge`
then looks at the detector's boxes and five keypoints (before PRNet, in well under a millisecond) and
says whether the image has exactly one dominant face, big enough, turned less than the limits. The
serving layer repaints with the next seed when it does not.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

import numpy as np

from t2f.faces import FaceBox, FaceRequest

DEFAULT_TEMPLATE = "a close-up frontal portrait photo of {prompt}, facing the camera, centred, plain background"
DEFAULT_NEGATIVE = (
    "side view, profile, looking away, turned head, several people, two people, crowd, hands over the face, "
    "cropped head, out of frame, sunglasses, mask, back of the head, full body, far away"
)
# Yaw from the nose's sideways offset, pitch from its height between the eye and mouth lines. Fitted by
# least squares on ../shared/prnet's 16 AFLW2000-3D samples against their ground-truth pose (MTCNN's
# keypoints): mean error 5 degrees in yaw (worst 13) and 8 in pitch (worst 35, on a face turned 66 degrees).
PITCH_PER_NOSE_HEIGHT = -109.3  # degrees per unit of (nose height / eye-to-mouth distance)
PITCH_AT_ZERO_HEIGHT = 57.2


class GateReason(StrEnum):
    """Why an image did not pass, in the words a member reads."""

    NO_FACE = "no face was found"
    TOO_SMALL = "the face was too small"
    TURNED_AWAY = "the face was turned away"
    SEVERAL_PEOPLE = "there were several people"
    FLAGGED = "the safety filter flagged it"


ADVICE = {
    GateReason.NO_FACE: "Describe a person's face, e.g. 'a close-up portrait of ...'.",
    GateReason.TOO_SMALL: "Ask for a close-up, e.g. 'a close-up portrait of ...'.",
    GateReason.TURNED_AWAY: "Ask for a front view, e.g. '... looking at the camera'.",
    GateReason.SEVERAL_PEOPLE: "Describe one person.",
    GateReason.FLAGGED: "Try a different prompt.",
}


def final_message(reason: GateReason, tries: int) -> str:
    """What a member reads when every try failed: the last reason and what to change."""
    if tries == 1:
        return f"No usable face: {reason} in the image. {ADVICE[reason]}"
    return f"No usable face after {tries} tries: {reason} in the last image. {ADVICE[reason]}"


def repaint_note(reason: GateReason, tries: int) -> str:
    """What a member reads while the job is painted again: why the last image was not used."""
    which = "first" if tries == 1 else f"image {tries}"
    return f"{reason} in the {which} image" if tries == 1 else f"{reason} in {which}"


@dataclass(frozen=True)
class PortraitFraming:
    """The portrait template (``{prompt}`` is the member's words) and the default negative prompt.

    An empty template paints the member's words as they are; an empty negative adds nothing.
    """

    template: str = DEFAULT_TEMPLATE
    negative: str = DEFAULT_NEGATIVE

    def frame(self, request: FaceRequest) -> FaceRequest:
        """The request as painted: words inside the template, default negatives after the member's own."""
        prompt = self.template.replace("{prompt}", request.prompt) if self.template else request.prompt
        negative = ", ".join(part for part in (request.negative_prompt.strip(), self.negative.strip()) if part)
        return replace(request, prompt=prompt, negative_prompt=negative)


@dataclass(frozen=True)
class GateLimits:
    """What a usable face is: turned at most so far, at least this big, and clearly alone."""

    max_yaw_deg: float = 30.0
    max_pitch_deg: float = 25.0
    min_face_fraction: float = 0.12  # face size (mean of box width and height) over the image's shorter side
    second_face_ratio: float = 0.5  # another face at least this fraction of the main one's area: several people


@dataclass(frozen=True)
class GateVerdict:
    """The gate's answer: ``reason`` is ``None`` when the image passed, with the face ``box`` to use."""

    reason: GateReason | None
    box: FaceBox | None = None
    faces: int = 0
    yaw_deg: float | None = None
    pitch_deg: float | None = None

    @property
    def passed(self) -> bool:
        return self.reason is None


def head_turn(keypoints: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch) in degrees from five keypoints (5, 2): eye, eye, nose, mouth corner, mouth corner.

    The face's vertical axis runs from the eyes' midpoint to the mouth's; yaw is the arctangent of the
    nose's offset across that axis over half the eye distance (positive: turned to the image's left, as
    AFLW2000 counts it), pitch is linear in the nose's height between the eye and mouth lines.
    """
    left_eye, right_eye, nose, mouth_left, mouth_right = np.asarray(keypoints, dtype=np.float64)
    eyes, mouth = (left_eye + right_eye) / 2, (mouth_left + mouth_right) / 2
    down = mouth - eyes
    height = max(float(np.hypot(*down)), 1e-6)
    down /= height
    across = np.array([down[1], -down[0]])
    half_eyes = max(abs(float(np.dot(right_eye - left_eye, across))) / 2, 1e-6)
    offset = float(np.dot(nose - (eyes + mouth) / 2, across))
    yaw = -np.degrees(np.arctan(offset / half_eyes))
    pitch = PITCH_PER_NOSE_HEIGHT * float(np.dot(nose - eyes, down)) / height + PITCH_AT_ZERO_HEIGHT
    return float(yaw), float(pitch)


def judge(image_shape: tuple[int, ...], boxes: list[FaceBox], limits: GateLimits = GateLimits()) -> GateVerdict:
    """Whether ``boxes`` (the detector's, largest first) make a usable face in an image of ``image_shape``."""
    if not boxes:
        return GateVerdict(GateReason.NO_FACE)
    main = boxes[0]
    count = len(boxes)
    area = (main.right - main.left) * (main.bottom - main.top)
    others = [(b.right - b.left) * (b.bottom - b.top) for b in boxes[1:]]
    if others and max(others) >= limits.second_face_ratio * area:
        return GateVerdict(GateReason.SEVERAL_PEOPLE, main, count)
    if main.size < limits.min_face_fraction * min(image_shape[:2]):
        return GateVerdict(GateReason.TOO_SMALL, main, count)
    if main.keypoints is None:  # a detector without keypoints: size and count are all it can tell
        return GateVerdict(None, main, count)
    yaw, pitch = head_turn(np.asarray(main.keypoints))
    if abs(yaw) > limits.max_yaw_deg or abs(pitch) > limits.max_pitch_deg:
        return GateVerdict(GateReason.TURNED_AWAY, main, count, yaw, pitch)
    return GateVerdict(None, main, count, yaw, pitch)
