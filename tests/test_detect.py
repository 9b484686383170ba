from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
from skimage.data import astronaut
from skimage.io import imread

from t2f.errors import NoFaceFound
from t2f.faces import FaceBox, FaceCrop
from t2f.stages.detect import FaceDetector, crop_from_dlib_box, crop_from_mtcnn_box
from t2f.stages.prnet.postprocess import crop_from_landmarks


@pytest.fixture(scope="module", params=["torch", "tensorflow"])
def detector(request: pytest.FixtureRequest) -> FaceDetector:
    """Both engines: the same weights must give the same verdicts and crops."""
    if request.param == "tensorflow":
        pytest.importorskip("tensorflow", reason="the TensorFlow engine needs tensorflow")
    return FaceDetector(engine=request.param)


def test_calibrated_crop_matches_prnets_landmark_crop(detector: FaceDetector, shared_dir: Path) -> None:
    samples = sorted((shared_dir / "prnet" / "aflw2000-samples").glob("*.jpg"))
    assert len(samples) == 16
    ious = []
    for path in samples:
        image = imread(path)
        box, count = detector.largest_face(image)
        assert count >= 1
        truth = sio.loadmat(str(path.with_suffix(".mat")))["pt3d_68"][:2].T
        ious.append(crop_from_mtcnn_box(image, box).overlap(crop_from_landmarks(image, truth)))
    assert min(ious) >= 0.70, ious
    assert np.mean(ious) >= 0.83, ious


def test_astronaut_face_is_found(detector: FaceDetector) -> None:
    box, count = detector.largest_face(astronaut())
    assert count == 1 and box.confidence > 0.9
    assert 150 < box.center_xy[0] < 300 and 50 < box.center_xy[1] < 200


def test_largest_of_several_faces_wins(detector: FaceDetector) -> None:
    face = astronaut()[30:230, 130:330]
    canvas = np.full((400, 900, 3), 200, np.uint8)
    canvas[100:300, 50:250] = face
    small = face[::2, ::2]
    canvas[150:250, 600:700] = small
    box, count = detector.largest_face(canvas)
    assert count == 2
    assert box.center_xy[0] < 300


def test_no_face_is_a_clear_error(detector: FaceDetector) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    with pytest.raises(NoFaceFound) as caught:
        detector.largest_face(noise)
    assert caught.value.user_message.startswith("No face found in the image. Try a portrait prompt")


def test_dlib_rule_uses_prnets_constants() -> None:
    image = np.zeros((400, 400, 3), np.uint8)
    crop = crop_from_dlib_box(image, FaceBox(100, 100, 200, 200))
    assert crop.side == 158.0
    np.testing.assert_allclose(crop.center_xy, [150.0, 164.0])


def test_crop_overlap_is_intersection_over_union() -> None:
    def crop(x: float, y: float, side: float) -> FaceCrop:
        return FaceCrop(
            image=np.zeros((256, 256, 3), np.float32), tform=np.eye(3), center_xy=np.array([x, y]), side=side
        )

    assert crop(50, 50, 20).overlap(crop(50, 50, 20)) == 1.0
    assert crop(50, 50, 20).overlap(crop(60, 50, 20)) == pytest.approx(200 / 600)  # half of each: 1/3
    assert crop(50, 50, 20).overlap(crop(90, 50, 20)) == 0.0
    assert crop(50, 50, 40).overlap(crop(50, 50, 20)) == pytest.approx(400 / 1600)  # one inside the other
