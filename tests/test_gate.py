"""The face gate and portrait framing on their own: real AFLW2000-3D photos with ground-truth pose."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from t2f.faces import FaceBox, FaceRequest
from t2f.stages.gate import (
    GateLimits,
    GateReason,
    PortraitFraming,
    final_message,
    head_turn,
    judge,
    repaint_note,
)


@pytest.fixture(scope="module")
def detector():  # type: ignore[no-untyped-def]
    from t2f.stages.detect import FaceDetector

    return FaceDetector()


def aflw(shared_dir: Path) -> list[tuple[np.ndarray, float, float]]:
    """(image, yaw, pitch in degrees) for the 16 AFLW2000-3D samples."""
    samples = []
    for jpg in sorted((shared_dir / "prnet" / "aflw2000-samples").glob("*.jpg")):
        pitch, yaw, _ = np.degrees(scipy.io.loadmat(jpg.with_suffix(".mat"))["Pose_Para"][0][:3])
        samples.append((np.asarray(Image.open(jpg).convert("RGB")), float(yaw), float(pitch)))
    return samples


def test_head_turn_from_five_points_follows_the_ground_truth(shared_dir: Path, detector) -> None:  # type: ignore[no-untyped-def]
    errors = []
    for image, yaw, pitch in aflw(shared_dir):
        (box, *_) = detector.detect(image)
        estimate = head_turn(np.asarray(box.keypoints))
        errors.append((abs(estimate[0] - yaw), abs(estimate[1] - pitch)))
    yaw_errors, pitch_errors = np.array(errors).T
    assert yaw_errors.mean() < 8 and yaw_errors.max() < 15  # measured: 5.1 mean, 13 worst
    assert pitch_errors.mean() < 10  # measured: 7.6 mean


def test_the_gate_passes_frontal_faces_and_names_what_is_wrong(shared_dir: Path, detector) -> None:  # type: ignore[no-untyped-def]
    limits = GateLimits(max_yaw_deg=30, max_pitch_deg=45)
    for image, yaw, pitch in aflw(shared_dir):
        verdict = judge(image.shape, detector.detect(image), limits)
        if abs(yaw) > 40 or abs(pitch) > 50:
            assert verdict.reason is GateReason.TURNED_AWAY, (yaw, pitch)
        elif abs(yaw) < 20 and abs(pitch) < 35:
            assert verdict.passed and verdict.faces == 1, (yaw, pitch, verdict)
    assert judge((256, 256, 3), []).reason is GateReason.NO_FACE


def test_size_and_a_second_face_decide_before_the_pose() -> None:
    frontal = ((40.0, 40.0), (60.0, 40.0), (50.0, 50.0), (42.0, 60.0), (58.0, 60.0))
    main = FaceBox(30, 30, 70, 74, keypoints=frontal)
    assert judge((256, 256, 3), [main]).passed
    assert judge((512, 512, 3), [main]).reason is GateReason.TOO_SMALL  # 42 px of 512 is under 12 %
    twin = FaceBox(130, 30, 166, 70)
    assert judge((256, 256, 3), [main, twin]).reason is GateReason.SEVERAL_PEOPLE
    far = FaceBox(200, 200, 212, 212)  # a small face in the background is not a second person
    assert judge((256, 256, 3), [main, far]).passed


def test_framing_wraps_the_words_and_merges_negatives() -> None:
    framing = PortraitFraming(template="a portrait of {prompt}, facing the camera", negative="profile, two people")
    framed = framing.frame(FaceRequest("a pirate", negative_prompt="blur", seed=9))
    assert framed.prompt == "a portrait of a pirate, facing the camera"
    assert framed.negative_prompt == "blur, profile, two people" and framed.seed == 9
    assert PortraitFraming(template="", negative="").frame(FaceRequest("x", "y")) == FaceRequest("x", "y")


def test_the_member_reads_what_to_change() -> None:
    assert final_message(GateReason.TURNED_AWAY, 1) == (
        "No usable face: the face was turned away in the image. Ask for a front view, e.g. '... looking at the camera'."
    )
    assert final_message(GateReason.SEVERAL_PEOPLE, 3) == (
        "No usable face after 3 tries: there were several people in the last image. Describe one person."
    )
    assert repaint_note(GateReason.NO_FACE, 1) == "no face was found in the first image"
    assert repaint_note(GateReason.TOO_SMALL, 2) == "the face was too small in image 2"
