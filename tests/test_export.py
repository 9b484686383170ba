from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import trimesh
from mesh_fixtures import REFERENCE_MESHES, reference_mesh, turned_mesh
from PIL import Image

from t2f.export.glb import glb_bytes, srgb_to_linear
from t2f.export.obj import obj_bytes, photo_obj_files, textured_obj_files
from t2f.export.text import format_table
from t2f.faces import FaceMesh, decimate, frontal_frame
from t2f.files.outputs import jpeg_bytes, png_bytes
from t2f.report import FilesFrame
from t2f.stages.prnet.uv import UVData


@pytest.fixture(scope="module")
def mesh(shared_dir: Path) -> FaceMesh:
    return reference_mesh(shared_dir)[1]


def test_format_table_matches_python_formatting() -> None:
    rng = np.random.default_rng(0)
    floats = rng.normal(0, 300, (500, 4))
    floats[0] = [0.0, -0.00001, 12345.67891, -7.5]
    expected = "".join(f"v {a:.4f} {b:.4f} {c:.4f} {d:.4f}\n" for a, b, c, d in floats).replace("-0.0000", "0.0000")
    assert format_table("v", floats, digits=4).decode() == expected
    # Half-way cases round on the scaled value, so they may differ from Python by one in the last digit.
    tie = float(format_table("v", np.array([[12345.67895]]), digits=4).split()[1])
    assert abs(tie - 12345.67895) <= 0.5e-4 + 1e-9
    ints = rng.integers(-5, 100_000, (300, 3))
    assert format_table("f", ints).decode() == "".join(f"f {a} {b} {c}\n" for a, b, c in ints)
    assert format_table("f", np.array([[1, 2, 3, 4]]), separator="/ / ").decode() == "f 1/2 3/4\n"
    assert format_table("v", np.zeros((0, 3)), digits=2) == b""


def test_colour_obj_parses_back_upright_and_facing_the_camera(mesh: FaceMesh) -> None:
    text = obj_bytes(mesh).decode("ascii")
    lines = text.splitlines()
    vertex_lines = [line for line in lines if line.startswith("v ")]
    face_lines = [line for line in lines if line.startswith("f ")]
    assert len(vertex_lines) == 43_867 and len(face_lines) == 86_906
    values = np.array([line.split()[1:] for line in vertex_lines], dtype=float)
    # The files' frame: the pose undone, y up, centred on the bounding box, 1 unit = the face's height.
    np.testing.assert_allclose(values[:, :3], frontal_frame(mesh).to_file(mesh.vertices), atol=1e-5)
    assert np.ptp(values[:, 1]) == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose((values[:, :3].min(axis=0) + values[:, :3].max(axis=0)) / 2, 0.0, atol=1e-4)
    np.testing.assert_array_equal(np.round(values[:, 3:] * 255), mesh.colors)
    assert vertex_lines[1].count(".") == 6 and len(vertex_lines[1].split()[4].split(".")[1]) == 3  # colours: 3 decimals
    faces = np.array([line.split()[1:] for line in face_lines], dtype=int)
    np.testing.assert_array_equal(faces, mesh.triangles[:, ::-1] + 1)
    loaded = trimesh.load(io.BytesIO(text.encode()), file_type="obj", process=False)
    # trimesh keeps referenced vertices only; upstream's triangulation leaves vertex 0 unused.
    assert loaded.vertices.shape == (43_866, 3) and loaded.faces.shape == (86_906, 3)
    assert (loaded.face_normals[:, 2] > 0).mean() > 0.75


def test_textured_obj_mtl_and_png_refer_to_each_other(mesh: FaceMesh, tmp_path: Path) -> None:
    files = {**textured_obj_files(mesh, stem="face_textured"), **photo_obj_files(mesh, stem="face_textured")}
    assert set(files) == {"face_textured.obj", "face_textured_photo.obj", "face_textured.mtl", "face_textured.png"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    obj = files["face_textured.obj"].decode()
    assert obj.splitlines()[1] == "mtllib face_textured.mtl"
    assert "map_Kd face_textured.png" in files["face_textured.mtl"].decode()
    uv = np.array([line.split()[1:] for line in obj.splitlines() if line.startswith("vt ")], dtype=float)
    assert uv.shape == (43_867, 2) and uv.min() >= 0 and uv.max() <= 1
    first_face = next(line for line in obj.splitlines() if line.startswith("f "))
    a, b, c = (corner.split("/") for corner in first_face.split()[1:])
    assert a[0] == a[1] and b[0] == b[1] and c[0] == c[1]
    loaded = trimesh.load(tmp_path / "face_textured.obj", process=False)
    assert loaded.visual.kind == "texture"
    assert np.asarray(loaded.visual.material.image).shape[:2] == (256, 256)
    assert np.asarray(Image.open(io.BytesIO(files["face_textured.png"]))).shape == (256, 256, 3)
    # The same mesh where the photo saw it (source-image pixels, y up), with the same UVs and material.
    photo = files["face_textured_photo.obj"].decode()
    assert photo.splitlines()[1] == "mtllib face_textured.mtl"
    where = np.array([line.split()[1:] for line in photo.splitlines() if line.startswith("v ")], dtype=float)
    np.testing.assert_allclose(where[:, 0], mesh.vertices[:, 0], atol=1e-3)
    np.testing.assert_allclose(where[:, 1], mesh.image_shape[0] - 1 - mesh.vertices[:, 1], atol=1e-3)
    np.testing.assert_allclose(where[:, 2], mesh.vertices[:, 2], atol=1e-3)
    assert [line for line in photo.splitlines() if not line.startswith("v ")][2:] == [
        line for line in obj.splitlines() if not line.startswith("v ")
    ][2:]
    # metadata.json's matrix takes the frontal file back to the photo: the two OBJs are one mesh.
    frontal = np.array([line.split()[1:] for line in obj.splitlines() if line.startswith("v ")], dtype=float)
    back = np.column_stack([frontal, np.ones(len(frontal))]) @ np.array(FilesFrame.of(mesh).photo_from_file).T
    np.testing.assert_allclose(back[:, 0], where[:, 0], atol=0.01)
    np.testing.assert_allclose(mesh.image_shape[0] - 1 - back[:, 1], where[:, 1], atol=0.01)
    np.testing.assert_allclose(back[:, 2], where[:, 2], atol=0.01)


def load_glb(data: bytes) -> trimesh.Trimesh:
    scene = trimesh.load(io.BytesIO(data), file_type="glb", process=False)
    (geometry,) = scene.geometry.values()
    return geometry


def glb_json(data: bytes) -> dict:
    length = struct.unpack_from("<I", data, 12)[0]
    return json.loads(data[20 : 20 + length])


def test_glb_round_trips_counts_normals_and_linear_colours(mesh: FaceMesh) -> None:
    data = glb_bytes(mesh)
    geometry = load_glb(data)
    assert geometry.faces.shape == (86_906, 3)
    assert geometry.vertices.shape[0] in (43_866, 43_867)
    # A PBR material and vertex colours: trimesh keeps the material and the colours as a vertex attribute.
    assert geometry.visual.kind == "texture"
    assert geometry.visual.material.metallicFactor == 0.0
    # COLOR_0 holds linear values (glTF's definition), read back unconverted.
    colours = np.asarray(geometry.visual.vertex_attributes["color"])
    np.testing.assert_allclose(colours, srgb_to_linear(mesh.colors)[: len(colours)], atol=1e-6)
    assert np.ptp(geometry.vertices[:, 1]) == pytest.approx(1.0, rel=1e-3)  # normalised to 1 unit tall
    assert (geometry.face_normals[:, 2] > 0).mean() > 0.75
    gltf = glb_json(data)
    (primitive,) = gltf["meshes"][0]["primitives"]
    assert set(primitive["attributes"]) == {"POSITION", "NORMAL", "COLOR_0"}
    assert gltf["materials"][0]["pbrMetallicRoughness"] == {"metallicFactor": 0.0, "roughnessFactor": 0.8}
    # The stored normals agree with the triangles' own normals (front faces towards +z).
    normals = np.asarray(geometry.vertex_normals)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-4)
    assert (normals[:, 2] > 0).mean() > 0.75


def glb_positions(data: bytes) -> np.ndarray:
    """(V, 3) float32 POSITION accessor of a GLB, read straight from its binary chunk (every vertex, in order)."""
    length = struct.unpack_from("<I", data, 12)[0]
    gltf = glb_json(data)
    accessor = gltf["accessors"][gltf["meshes"][0]["primitives"][0]["attributes"]["POSITION"]]
    view = gltf["bufferViews"][accessor["bufferView"]]
    binary = data[20 + length + 8 :]
    return np.frombuffer(binary, np.float32, accessor["count"] * 3, view["byteOffset"]).reshape(-1, 3)


@pytest.mark.parametrize(("yaw", "pitch"), [(60.0, 0.0), (-55.0, 40.0), (35.0, -25.0)])
def test_a_turned_heads_glb_opens_facing_the_viewer(shared_dir: Path, mesh: FaceMesh, yaw: float, pitch: float) -> None:
    uv = UVData.load(shared_dir / "prnet" / "uv-data")
    landmark_vertex = np.searchsorted(uv.face_ind, uv.kpt_ind[1] * 256 + uv.kpt_ind[0])
    turned = turned_mesh(shared_dir, mesh, yaw_deg=yaw, pitch_deg=pitch)
    # In the photo's frame the head is turned: its eye line is far from level.
    photo_eyes = turned.vertices[landmark_vertex[[36, 45]]]
    photo_line = photo_eyes[1] - photo_eyes[0]
    assert np.degrees(np.arctan2(abs(photo_line[2]), photo_line[0])) > 20 or abs(pitch) > 20
    positions = glb_positions(glb_bytes(turned))
    landmarks = positions[landmark_vertex]
    eye_line = landmarks[45] - landmarks[36]  # outer eye corners, left to right in the picture
    assert abs(np.degrees(np.arctan2(eye_line[1], eye_line[0]))) < 2  # level: no roll
    assert abs(np.degrees(np.arctan2(eye_line[2], eye_line[0]))) < 2  # square to the viewer: no yaw
    mouth, eyes = (landmarks[48] + landmarks[54]) / 2, (landmarks[36] + landmarks[45]) / 2
    normal = np.cross(mouth - eyes, eye_line)  # out of the face, through eyes and mouth
    normal /= np.linalg.norm(normal)
    assert abs(np.degrees(np.arctan2(normal[0], normal[2]))) < 2  # it faces +z, the viewer ...
    assert 0 < np.degrees(np.arctan2(normal[1], normal[2])) < 10  # ... up to the mean face's own tilt (7.6°)
    assert int(np.argmax(landmarks[:, 2])) == 30  # the nose tip is the landmark nearest the viewer
    assert positions[:, 2].max() - landmarks[30, 2] < 0.01  # and about the nearest point
    assert np.ptp(positions[:, 1]) == pytest.approx(1.0, abs=1e-4)  # 1 unit tall, centred
    np.testing.assert_allclose((positions.min(axis=0) + positions.max(axis=0)) / 2, 0.0, atol=1e-4)
    # The same file as the head that was not turned: the pose is undone, not just the yaw.
    np.testing.assert_allclose(positions, glb_positions(glb_bytes(mesh)), atol=1e-4)


def test_srgb_to_linear_matches_the_standard() -> None:
    values = srgb_to_linear(np.array([[0, 10, 128, 255]], np.uint8))[0]
    np.testing.assert_allclose(values, [0.0, 10 / 255 / 12.92, 0.2158605, 1.0], rtol=1e-5)


def test_textured_glb_uses_the_uv_texture(mesh: FaceMesh) -> None:
    data = glb_bytes(mesh, textured=True)
    gltf = glb_json(data)
    (primitive,) = gltf["meshes"][0]["primitives"]
    assert set(primitive["attributes"]) == {"POSITION", "NORMAL", "TEXCOORD_0"}
    assert gltf["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"] == {"index": 0, "texCoord": 0}
    geometry = load_glb(data)
    assert geometry.visual.kind == "texture"
    assert np.asarray(geometry.visual.material.baseColorTexture).shape[:2] == (256, 256)
    # glTF's UV origin is the image's top-left, as FaceMesh.uv's: no flip (trimesh flips v on load).
    uv = np.asarray(geometry.visual.uv)
    np.testing.assert_allclose(uv[:, 1], 1.0 - mesh.uv[: len(uv), 1], atol=1e-6)


def validator_reports(paths: list[Path]) -> dict:
    """The Khronos glTF validator's findings for each file, run once through Node (tests/gltf_validate.js)."""
    root = Path(__file__).resolve().parent.parent
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed; .ci/run installs it (apt nodejs) for the glTF validator")
    if not (root / "node_modules" / "gltf-validator").is_dir():
        pytest.skip("the glTF validator is not installed: run 'npm ci' in the repository root (.ci/run does)")
    done = subprocess.run(
        [node, str(root / "tests" / "gltf_validate.js"), *map(str, paths)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_every_glb_passes_the_khronos_validator(shared_dir: Path, tmp_path: Path) -> None:
    written = {}
    for name in REFERENCE_MESHES:
        face = reference_mesh(shared_dir, name)[1]
        written[f"{name}.glb"] = glb_bytes(face)
        written[f"{name}_textured.glb"] = glb_bytes(face, textured=True)
        written[f"{name}_decimated.glb"] = glb_bytes(decimate(face))
    turned = turned_mesh(shared_dir, reference_mesh(shared_dir)[1], yaw_deg=-55, pitch_deg=40)
    written["turned.glb"] = glb_bytes(turned)
    paths = []
    for name, data in written.items():
        (tmp_path / name).write_bytes(data)
        paths.append(tmp_path / name)
    reports = validator_reports(paths)
    assert set(reports) == set(map(str, paths))
    for path, report in reports.items():
        assert report["numErrors"] == 0, (path, report["messages"])
        assert report["numWarnings"] == 0, (path, report["messages"])


def test_preview_encodings_keep_the_picture() -> None:
    rng = np.random.default_rng(0)
    picture = np.repeat(np.repeat(rng.integers(0, 256, (16, 32, 3), dtype=np.uint8), 8, 0), 8, 1)  # 8x8 blocks
    assert (np.asarray(Image.open(io.BytesIO(png_bytes(picture)))) == picture).all()
    jpeg = Image.open(io.BytesIO(jpeg_bytes(picture)))
    assert jpeg.format == "JPEG" and jpeg.size == (256, 128)
    # Quality 92 without chroma subsampling: random 8 px colour blocks come back close, colour included.
    assert np.abs(np.asarray(jpeg).astype(int) - picture).mean() < 2  # 4:2:0 would give about 9
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        jpeg_bytes(np.zeros((4, 4, 4), np.uint8))
