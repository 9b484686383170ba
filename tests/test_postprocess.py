"""Golden tests: PRNet's own outputs (../shared/prnet/reference-outputs) rebuilt into position maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
from skimage.io import imread

from t2f.stages.prnet.postprocess import (
    build_face_mesh,
    crop_face,
    crop_from_landmarks,
    crop_transform,
    face_landmarks,
    restore_position_map,
    vertex_colors,
)
from t2f.stages.prnet.uv import UVData, face_indices_from_mask, load_mask, triangles_from_mask

SAMPLES = ["image00050", "image02283"]


@pytest.fixture(scope="module")
def uv(shared_dir: Path) -> UVData:
    return UVData.load(shared_dir / "prnet" / "uv-data")


def reference_position_map(shared_dir: Path, name: str, uv: UVData) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    mesh = sio.loadmat(str(shared_dir / "prnet" / "reference-outputs" / f"{name}_mesh.mat"))
    pos = np.zeros((256 * 256, 3))
    pos[uv.face_ind] = mesh["vertices"]
    return pos.reshape(256, 256, 3), mesh


def landmark_nme(predicted_xy: np.ndarray, truth_xy: np.ndarray) -> float:
    """Mean 2D landmark error over sqrt(w * h) of the ground-truth landmark box."""
    w, h = np.ptp(truth_xy, axis=0)
    return float(np.linalg.norm(predicted_xy - truth_xy, axis=1).mean() / np.sqrt(w * h))


def test_uv_files_follow_from_the_mask(shared_dir: Path, uv: UVData) -> None:
    mask = load_mask(shared_dir / "prnet" / "uv-data" / "uv_face_mask.png")
    np.testing.assert_array_equal(face_indices_from_mask(mask), uv.face_ind)
    triangles = triangles_from_mask(mask)
    assert triangles.shape == (86_906, 3)
    np.testing.assert_array_equal(triangles, uv.triangles)
    assert not (triangles == 0).any()  # upstream's id-0 quirk leaves vertex 0 isolated
    assert uv.face_ind.size == 43_867


@pytest.mark.parametrize("name", SAMPLES)
def test_mesh_from_reference_position_map(shared_dir: Path, uv: UVData, name: str) -> None:
    pos, reference = reference_position_map(shared_dir, name, uv)
    image = imread(shared_dir / "prnet" / "aflw2000-samples" / f"{name}.jpg")
    mesh = build_face_mesh(image, pos, uv)
    kpt = np.loadtxt(shared_dir / "prnet" / "reference-outputs" / f"{name}_kpt68.txt")
    assert np.abs(face_landmarks(pos, uv.kpt_ind) - kpt).max() <= 1e-6
    np.testing.assert_array_equal(mesh.triangles, reference["triangles"])
    np.testing.assert_allclose(mesh.vertices, reference["vertices"], atol=1e-3)
    photo_colors = vertex_colors(image, mesh.vertices)  # upstream's sampling, before hidden texels are filled
    colour_error = np.abs(photo_colors.astype(int) - reference["colors"].astype(int))
    assert colour_error.max() <= 13  # JPEG decoders differ by at most this much
    assert colour_error.mean() < 1.0
    # Where the camera saw the face well, the mesh keeps the photo's colours exactly: all but the sides
    # seen at a grazing angle, under the chin and in the nostrils (tests/test_texture.py).
    assert (mesh.colors == photo_colors).all(axis=1).mean() > 0.6
    assert mesh.uv.min() >= 0 and mesh.uv.max() < 1
    assert mesh.texture.shape == (256, 256, 3) and mesh.texture.mean() > 20
    # The nose tip (iBUG 30) is the nearest landmark to the camera.
    assert int(np.argmax(mesh.landmarks[:, 2])) == 30


def test_head_pose_of_near_frontal_faces_is_small(shared_dir: Path, uv: UVData) -> None:
    pos, _ = reference_position_map(shared_dir, "image00050", uv)
    image = imread(shared_dir / "prnet" / "aflw2000-samples" / "image00050.jpg")
    yaw, pitch, roll = np.degrees(build_face_mesh(image, pos, uv).pose)
    assert abs(yaw) < 10 and abs(pitch) < 15 and abs(roll) < 10
    truth = sio.loadmat(str(shared_dir / "prnet" / "aflw2000-samples" / "image00050.mat"))["Pose_Para"][0]
    assert abs(np.degrees(truth[1]) - yaw) < 10  # AFLW2000's yaw for the same photo


def test_landmark_nme_reproduces_the_reference_figure(shared_dir: Path) -> None:
    errors = []
    for kpt_file in sorted((shared_dir / "prnet" / "reference-outputs").glob("*_kpt68.txt")):
        name = kpt_file.name.removesuffix("_kpt68.txt")
        truth = sio.loadmat(str(shared_dir / "prnet" / "aflw2000-samples" / f"{name}.mat"))["pt3d_68"][:2].T
        errors.append(landmark_nme(np.loadtxt(kpt_file)[:, :2], truth))
    assert len(errors) == 16
    assert np.mean(errors) == pytest.approx(0.0328, abs=0.0005)


def test_restore_position_map_inverts_the_crop() -> None:
    tform = crop_transform(np.array([300.0, 200.0]), 180.0)
    rng = np.random.default_rng(0)
    raw = rng.random((256, 256, 3)).astype(np.float32)
    pos = restore_position_map(raw, tform)
    crop_xy = raw[..., :2] * 281.6
    back = pos[..., :2] * tform[0, 0] + tform[:2, 2]
    np.testing.assert_allclose(back, crop_xy, atol=1e-3)
    np.testing.assert_allclose(pos[..., 2], raw[..., 2] * 281.6 / tform[0, 0], rtol=1e-5)


def test_crop_maps_the_square_onto_the_network_input() -> None:
    image = np.zeros((400, 500, 3), np.uint8)
    image[150:250, 200:300] = 255  # a white square of side 100 centred at (249.5, 199.5)
    crop = crop_face(image, np.array([249.5, 199.5]), 99.0)
    assert crop.image.shape == (256, 256, 3) and crop.image.dtype == np.float32
    assert crop.image.min() >= 0 and crop.image[5:-5, 5:-5].min() > 0.99
    landmarks = np.array([[100.0, 100.0], [200.0, 160.0]])
    from_landmarks = crop_from_landmarks(image, landmarks)
    assert from_landmarks.side == int(1.6 * 80.0)
    np.testing.assert_allclose(from_landmarks.center_xy, [150.0, 130.0])


def test_vertex_colors_clamp_without_touching_the_input() -> None:
    image = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    vertices = np.array([[-3.0, 1.2, 0.0], [10.0, 9.0, 0.0], [2.4, 2.6, 0.0]])
    before = vertices.copy()
    colors = vertex_colors(image, vertices)
    np.testing.assert_array_equal(colors, image[[1, 3, 3], [0, 4, 2]])
    np.testing.assert_array_equal(vertices, before)


def test_head_pose_of_degenerate_geometry_is_nan(uv: UVData) -> None:
    from t2f.stages.prnet.postprocess import head_pose

    flat = np.zeros((uv.face_ind.size, 3))
    assert np.isnan(head_pose(flat, uv.canonical_vertices)).all()


def test_incomplete_uv_data_names_the_missing_file(shared_dir: Path, tmp_path: Path) -> None:
    import shutil

    from t2f.errors import ModelUnavailable

    shutil.copytree(shared_dir / "prnet" / "uv-data", tmp_path / "uv-data")
    (tmp_path / "uv-data" / "triangles.txt").unlink()
    with pytest.raises(ModelUnavailable) as caught:
        UVData.load(tmp_path / "uv-data")
    assert caught.value.user_message == (
        f"PRNet's UV data is incomplete in '{tmp_path / 'uv-data'}': missing triangles.txt. Fetch it with: t2f download"
    )
