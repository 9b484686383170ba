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
from t2f.export.obj import obj_bytes, textured_obj_files
from t2f.export.text import format_table
from t2f.faces import FaceMesh, decimate
from t2f.files.outputs import jpeg_bytes, png_bytes


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
    np.testing.assert_allclose(values[:, 0], mesh.vertices[:, 0], atol=1e-3)
    np.testing.assert_allclose(values[:, 1], mesh.image_shape[0] - 1 - mesh.vertices[:, 1], atol=1e-3)
    np.testing.assert_array_equal(np.round(values[:, 3:] * 255), mesh.colors)
    faces = np.array([line.split()[1:] for line in face_lines], dtype=int)
    np.testing.assert_array_equal(faces, mesh.triangles[:, ::-1] + 1)
    loaded = trimesh.load(io.BytesIO(text.encode()), file_type="obj", process=False)
    # trimesh keeps referenced vertices only; upstream's triangulation leaves vertex 0 unused.
    assert loaded.vertices.shape == (43_866, 3) and loaded.faces.shape == (86_906, 3)
    assert (loaded.face_normals[:, 2] > 0).mean() > 0.75


def test_textured_obj_mtl_and_png_refer_to_each_other(mesh: FaceMesh, tmp_path: Path) -> None:
    files = textured_obj_files(mesh, stem="face_textured")
    assert set(files) == {"face_textured.obj", "face_textured.mtl", "face_textured.png"}
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
