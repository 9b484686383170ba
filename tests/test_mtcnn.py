"""MTCNN on PyTorch (t2f.stages.mtcnn) against the ``mtcnn`` package it ports: same weights, same boxes."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.data import astronaut
from skimage.io import imread

from t2f.stages.detect import FaceDetector
from t2f.stages.mtcnn import Detections
from t2f.stages.mtcnn.boxes import area_grid, area_resize, crop_patches, integral_image, scale_pyramid, suppress
from t2f.stages.mtcnn.detector import TorchMTCNN
from t2f.stages.mtcnn.network import PNet, load_keras_arrays, load_keras_weights, load_networks, wheel_weights_dir


@pytest.fixture(scope="module")
def torch_mtcnn() -> TorchMTCNN:
    return TorchMTCNN.from_pretrained()


@pytest.fixture(scope="module")
def package_mtcnn() -> Any:  # the package's own class, untyped
    pytest.importorskip("tensorflow", reason="the reference is the mtcnn package, which runs on TensorFlow")
    from mtcnn import MTCNN

    return MTCNN(device="CPU:0")


def package_detections(package_mtcnn: Any, image: np.ndarray) -> Detections:
    rows = np.asarray(package_mtcnn.detect_faces(image, box_format="xyxy", output_type="numpy"), np.float32)
    rows = rows.reshape(-1, 16)[np.argsort(-rows.reshape(-1, 16)[:, 5], kind="stable")]
    return Detections(rows[:, 1:5], rows[:, 5], rows[:, 6:16].reshape(-1, 2, 5).transpose(0, 2, 1))


def two_faces() -> np.ndarray:
    face = astronaut()[30:230, 130:330]
    canvas = np.full((400, 900, 3), 200, np.uint8)
    canvas[100:300, 50:250] = face
    canvas[150:250, 600:700] = face[::2, ::2]
    return canvas


def test_networks_match_the_packages_keras_networks() -> None:
    pytest.importorskip("tensorflow", reason="the reference networks are the package's Keras models")
    from mtcnn.stages import StageONet, StagePNet, StageRNet

    rng = np.random.default_rng(0)
    ours = load_networks()
    theirs = [StagePNet()._model, StageRNet()._model, StageONet()._model]
    for network, keras, shape in zip(ours, theirs, [(2, 57, 43, 3), (5, 24, 24, 3), (5, 48, 48, 3)], strict=True):
        x = rng.uniform(-1, 1, shape).astype(np.float32)
        expected = [t.numpy() for t in keras(x)]
        got = network(torch.from_numpy(x).permute(0, 3, 1, 2))
        got = [t.permute(0, 2, 3, 1).numpy() if t.ndim == 4 else t.numpy() for t in got]  # P-Net's maps to NHWC
        assert [g.shape for g in got] == [e.shape for e in expected]
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_allclose(g, e, atol=1e-5)


@pytest.mark.parametrize("name", ["aflw", "aflw small", "astronaut", "two faces", "nothing"])
def test_cascade_finds_what_the_package_finds(
    name: str, torch_mtcnn: TorchMTCNN, package_mtcnn: Any, shared_dir: Path
) -> None:
    if name.startswith("aflw"):
        images = [imread(p) for p in sorted((shared_dir / "prnet" / "aflw2000-samples").glob("*.jpg"))]
        assert len(images) == 16
        if name == "aflw small":  # P-Net's scores saturate to 1.0 here: equal scores must keep the package's order
            images = [np.asarray(Image.fromarray(image).resize((113, 97))) for image in images]
    else:
        noise = np.random.default_rng(1).integers(0, 255, (300, 260, 3), dtype=np.uint8)
        images = [{"astronaut": astronaut(), "two faces": two_faces(), "nothing": noise}[name]]
    for image in images:
        got, expected = torch_mtcnn.detect(image), package_detections(package_mtcnn, image)
        assert got.boxes.shape[0] == expected.boxes.shape[0] == {"two faces": 2, "nothing": 0}.get(name, len(got.boxes))
        np.testing.assert_allclose(got.boxes, expected.boxes, atol=0.01)  # pixels
        np.testing.assert_allclose(got.scores, expected.scores, atol=1e-4)
        np.testing.assert_allclose(got.landmarks, expected.landmarks, atol=0.01)
    if name == "astronaut":
        ((x1, y1, x2, y2),) = got.boxes
        assert 150 < (x1 + x2) / 2 < 300 and 50 < (y1 + y2) / 2 < 200 and got.scores[0] > 0.99


def test_nothing_found_has_empty_arrays_of_the_documented_shapes(torch_mtcnn: TorchMTCNN) -> None:
    found = torch_mtcnn.detect(np.full((64, 80, 3), 128, np.uint8))
    assert found.boxes.shape == (0, 4) and found.scores.shape == (0,) and found.landmarks.shape == (0, 5, 2)
    tiny = torch_mtcnn.detect(np.zeros((10, 10, 3), np.uint8))  # smaller than P-Net's window: no pyramid at all
    assert tiny.boxes.shape == (0, 4)


def test_bad_image_is_refused(torch_mtcnn: TorchMTCNN) -> None:
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        torch_mtcnn.detect(np.zeros((32, 32), np.uint8))


def test_face_detector_engines_agree() -> None:
    pytest.importorskip("tensorflow")
    photo = astronaut()
    (ours,), (theirs,) = FaceDetector(engine="torch").detect(photo), FaceDetector(engine="tensorflow").detect(photo)
    np.testing.assert_allclose(
        [ours.left, ours.top, ours.right, ours.bottom],
        [theirs.left, theirs.top, theirs.right, theirs.bottom],
        atol=0.01,
    )
    assert ours.keypoints is not None and theirs.keypoints is not None
    np.testing.assert_allclose(ours.keypoints, theirs.keypoints, atol=0.01)
    assert ours.keypoints[0][0] < ours.keypoints[1][0]  # left eye, then right eye, in the image


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="engine must be 'torch' or 'tensorflow', not 'dlib'"):
        FaceDetector(engine="dlib")


def test_scale_pyramid_is_the_packages() -> None:
    scales = scale_pyramid(512, 512)
    assert len(scales) == 10
    np.testing.assert_allclose(scales, 0.6 * 0.709 ** np.arange(10))
    assert len(scale_pyramid(11, 200)) == 0  # shorter than the 12 px window


def area_matrix(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) float64 TensorFlow 'area' weights, written out cell by cell as its kernel does."""
    scale = size_in / size_out
    matrix = np.zeros((size_out, size_in))
    for i in range(size_out):
        low, high = i * scale, (i + 1) * scale
        for j in range(int(np.floor(low)), min(int(np.ceil(high)), size_in)):
            matrix[i, j] = (min(j + 1, high) - max(j, low)) / scale
    return matrix


def resize(image: np.ndarray, scale: float) -> np.ndarray:
    grid = area_grid(image.shape[1], image.shape[2], scale, torch.device("cpu"))
    return area_resize(integral_image(torch.from_numpy(image)), grid).numpy()


def test_area_resize_averages_whole_blocks_and_splits_partial_ones() -> None:
    ramp = np.broadcast_to(np.arange(6.0, dtype=np.float32), (3, 2, 6)).copy()
    np.testing.assert_allclose(resize(ramp, 0.5)[0, 0], [0.5, 2.5, 4.5], atol=1e-6)
    thirds = np.broadcast_to(np.array([0.0, 3.0, 6.0], np.float32), (3, 3, 3)).copy()
    np.testing.assert_allclose(resize(thirds, 2 / 3)[0, 0], [1.0, 5.0], atol=1e-6)  # 1.5 pixels per cell


@pytest.mark.parametrize(
    ("height", "width", "scale"),
    [(333, 517, 0.30160859999999995), (1024, 1024, 0.0096), (450, 450, 0.6), (64, 80, 0.999)],
)
def test_area_resize_is_tensorflows_area_kernel(height: int, width: int, scale: float) -> None:
    image = np.random.default_rng(2).uniform(-1, 1, (3, height, width)).astype(np.float32)
    resized = resize(image, scale)
    out_h, out_w = int(height * scale), int(width * scale)  # truncated, as TensorFlow does
    assert resized.shape == (3, out_h, out_w)
    expected = area_matrix(height, out_h) @ image.astype(np.float64) @ area_matrix(width, out_w).T
    np.testing.assert_allclose(resized, expected, atol=1e-5)


def test_crop_patches_samples_box_edges_and_zeroes_outside() -> None:
    image = torch.arange(25, dtype=torch.float32).reshape(5, 5).expand(3, 5, 5)  # value = 5 row + column
    # The package divides a box by H and W, then spreads it over H - 1 and W - 1 pixels.
    whole = crop_patches(image, torch.tensor([[0.0, 0.0, 5.0, 5.0]]), 5)
    assert torch.equal(whole[0], image)
    between = crop_patches(image, torch.tensor([[0.0, 0.0, 1.25, 1.25]]), 3)  # samples at 0, 0.5, 1
    np.testing.assert_allclose(between[0, 1].numpy(), [[0, 0.5, 1], [2.5, 3, 3.5], [5, 5.5, 6]], atol=1e-5)
    outside = crop_patches(image, torch.tensor([[-10.0, -10.0, 2.0, 2.0]]), 4)  # samples at -8, -4.8, -1.6, 1.6
    assert outside.shape == (1, 3, 4, 4)
    assert float(outside[0, :, :3].abs().sum() + outside[0, :, :, :3].abs().sum()) == 0.0  # zeros, not edge pixels
    assert float(outside[0, 2, 3, 3]) == pytest.approx(5 * 1.6 + 1.6)


def test_suppression_is_the_packages_rule_not_greedy_nms() -> None:
    # a overlaps b, b overlaps c, a does not overlap c. Greedy NMS keeps a and c; the package drops c
    # too, because a better row (b) overlaps it, though b was itself dropped.
    rows = torch.tensor([[0, 0, 10, 10, 0.9], [4, 0, 14, 10, 0.8], [8, 0, 18, 10, 0.7]], dtype=torch.float32)
    kept = suppress(rows, 0.3)
    assert kept[:, 4].tolist() == pytest.approx([0.9])
    assert suppress(rows[[2, 0, 1]], 0.3)[:, 4].tolist() == pytest.approx([0.9])  # sorted by score first


def test_weights_that_do_not_fit_are_refused() -> None:
    arrays = load_keras_arrays("pnet")
    with pytest.raises(ValueError, match="PNet has 13 parameters, the weights 12"):
        load_keras_weights(PNet(), arrays[:-1])
    swapped = [arrays[3], *arrays[1:3], arrays[0], *arrays[4:]]
    with pytest.raises(ValueError, match="does not fit"):
        load_keras_weights(PNet(), swapped)


def test_weights_are_read_from_a_folder_too(tmp_path: Path) -> None:
    for name in ("pnet", "rnet", "onet"):
        (tmp_path / f"{name}.lz4").write_bytes((wheel_weights_dir() / f"{name}.lz4").read_bytes())
    pnet, _, _ = load_networks(tmp_path)
    reference, _, _ = load_networks()
    assert all(torch.equal(a, b) for a, b in zip(pnet.parameters(), reference.parameters(), strict=True))


def test_missing_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install mtcnn==1\.0\.0"):
        wheel_weights_dir()


def test_out_of_gpu_memory_searches_that_image_on_the_cpu(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    detector = FaceDetector(engine="torch")
    expected = detector.detect(astronaut())

    def out_of_memory(image: np.ndarray) -> Detections:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")

    monkeypatch.setattr(detector._engine, "detect", out_of_memory)
    assert detector.detect(astronaut()) == expected  # the same networks, on the CPU
    assert detector.detect(astronaut()) == expected
    assert [r.getMessage() for r in caplog.records] == [
        "MTCNN ran out of GPU memory on cpu; searching this image on the CPU"  # once, not per image
    ]

    def no_room_for_cudnn(image: np.ndarray) -> Detections:  # a thread's first cuDNN call on a full card
        raise RuntimeError("cuDNN error: CUDNN_STATUS_NOT_INITIALIZED")

    monkeypatch.setattr(detector._engine, "detect", no_room_for_cudnn)
    assert detector.detect(astronaut()) == expected  # out of memory too: the CPU finds it

    def broken(image: np.ndarray) -> Detections:
        raise RuntimeError("CUDA error: device-side assert triggered")

    monkeypatch.setattr(detector._engine, "detect", broken)
    with pytest.raises(RuntimeError, match="device-side assert"):  # anything else is the job's failure, as before
        detector.detect(astronaut())


def test_a_detector_built_on_first_use_follows_the_settings(prnet_dir: Path) -> None:
    from t2f.build import load_face_pipeline
    from t2f.config import Settings

    pipeline = load_face_pipeline(Settings(prnet_dir=str(prnet_dir), detector="tensorflow"), crop="whole")
    assert pipeline.detector is None  # a whole-image crop needs none at start-up
    pytest.importorskip("tensorflow")
    (box,) = pipeline.detect(astronaut())  # a photo job's search builds it, as configured
    assert pipeline.detector is not None and pipeline.detector.engine == "tensorflow"
    assert 150 < box.center_xy[0] < 300
