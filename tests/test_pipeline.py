"""End to end: prompt or photo -> every output file, through the real CLI and FacePipeline.

PRNet's weights here are random (the official checkpoint cannot be fetched in CI), so geometry is
meaningless; these tests check that every stage runs, files parse, and errors read well.
"""

from __future__ import annotations

import io
import json
import weakref
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image
from skimage.data import astronaut

from t2f import cli
from t2f.build import load_face_pipeline
from t2f.config import Settings
from t2f.report import RANDOM_WEIGHTS_NOTE

MESH_FILES = [
    "face.glb",
    "face.obj",
    "face_textured.mtl",
    "face_textured.obj",
    "face_textured.png",
    "face_textured_photo.obj",
    "image.png",
    "metadata.json",
    "preview.jpg",
    "turntable.gif",
]


@pytest.fixture
def prnet_env(prnet_dir: Path, clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("T2F_PRNET_DIR", str(prnet_dir))
    monkeypatch.setenv("T2F_SAFETY_CHECKER", "off")
    return clean_env


def check_outputs(out: Path) -> dict:
    assert sorted(p.name for p in out.iterdir()) == MESH_FILES
    meta = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
    assert meta["files"] == MESH_FILES
    assert meta["face"]["vertices"] == 43_867 and meta["face"]["triangles"] == 86_906
    assert len(meta["face"]["landmarks_68"]) == 68
    assert set(meta["face"]["pose_deg"]) == {"yaw", "pitch", "roll"}
    frame = meta["face"]["files_frame"]  # where face.obj and face.glb put the head, and how to get back
    assert set(frame) == {"pose_removed_deg", "unit_px", "photo_from_file"} and frame["unit_px"] > 0
    assert np.asarray(frame["photo_from_file"]).shape == (4, 4)
    assert meta["prnet"]["note"] == RANDOM_WEIGHTS_NOTE
    for stage in ("detect", "prnet", "postprocess", "export_obj", "export_glb", "preview"):
        assert meta["timings_s"][stage] >= 0
    obj = trimesh.load(out / "face.obj", process=False)
    assert obj.faces.shape == (86_906, 3)
    glb = trimesh.load(io.BytesIO((out / "face.glb").read_bytes()), file_type="glb")
    assert next(iter(glb.geometry.values())).faces.shape == (86_906, 3)
    preview = Image.open(out / "preview.jpg")
    assert preview.format == "JPEG" and np.asarray(preview).shape == (256, 1280, 3)
    return meta


def test_generate_with_tiny_sd_writes_every_file(tiny_sd: Path, prnet_env: Path) -> None:
    out = prnet_env / "gen"
    code = cli.main(
        [
            "generate",
            "a face",
            "--model",
            str(tiny_sd),
            "--size",
            "64",
            "--steps",
            "2",
            "--seed",
            "1",
            "--whole-image",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    meta = check_outputs(out)
    assert meta["face_crop"] == "whole" and meta["face"]["box_ltrb"] is None
    assert "encode_and_denoise" in meta["timings_s"]


def test_noise_has_no_face_and_the_image_is_kept(
    tiny_sd: Path, prnet_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = prnet_env / "noface"
    code = cli.main(["generate", "a face", "--model", str(tiny_sd), "--size", "64", "--steps", "2", "--out", str(out)])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("t2f: error: No face found in the image. Try a portrait prompt")
    assert err.endswith(f"The image was kept in {out}.")
    assert sorted(p.name for p in out.iterdir()) == ["image.png", "metadata.json"]


def test_reconstruct_a_photo_through_the_detector(shared_dir: Path, prnet_env: Path) -> None:
    out = prnet_env / "photo"
    assert (
        cli.main(["reconstruct", str(shared_dir / "prnet" / "aflw2000-samples" / "image00050.jpg"), "--out", str(out)])
        == 0
    )
    meta = check_outputs(out)
    assert meta["face_crop"] == "detect" and meta["face"]["faces_found"] == 1
    left, top, right, bottom = meta["face"]["box_ltrb"]
    assert 100 < (left + right) / 2 < 350 and 100 < (top + bottom) / 2 < 350  # the face in the 450 px photo


def test_prnet_import_then_reconstruct_with_defaults(
    prnet_checkpoint: Path, shared_dir: Path, clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uv = shared_dir / "prnet" / "uv-data"
    assert cli.main(["prnet", "import", str(prnet_checkpoint), "--uv-data", str(uv)]) == 0
    assert (clean_env / "hf" / "t2f" / "prnet" / "model.safetensors").is_file()  # beside the hub cache
    assert (clean_env / "hf" / "t2f" / "prnet" / "uv-data" / "triangles.txt").is_file()
    photo = shared_dir / "prnet" / "aflw2000-samples" / "image00050.jpg"
    assert cli.main(["reconstruct", str(photo), "--out", "result"]) == 0
    check_outputs(clean_env / "result")
    assert cli.main(["prnet", "import", str(clean_env / "no-such-ckpt")]) == 1
    assert "No TensorFlow checkpoint at" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message", "code"),
    [
        (b"hello, not an image", "That file is not an image t2f can read", 2),  # a bad input, before loading
        (None, "No face found in the image.", 1),
    ],
)
def test_reconstruct_refuses_bad_input_in_one_line(
    prnet_env: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, message: str, code: int
) -> None:
    path = prnet_env / "input.png"
    if content is None:
        noise = np.random.default_rng(1).integers(0, 255, (200, 200, 3), dtype=np.uint8)
        Image.fromarray(noise).save(path)
    else:
        path.write_bytes(content)
    assert cli.main(["reconstruct", str(path), "--out", str(prnet_env / "x")]) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"t2f: error: {message}") and "\n" not in err and "Traceback" not in err


def test_missing_prnet_stops_generate_before_painting(
    tiny_sd: Path, clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["generate", "a face", "--model", str(tiny_sd), "--size", "64", "--out", "o"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"t2f: error: PRNet weights are not in '{clean_env / 'hf' / 't2f' / 'prnet'}'. "
        "Fetch and convert the official weights with: t2f download"
    )
    assert not (clean_env / "o").exists()


def test_batch_reconstruction_equals_one_by_one(prnet_dir: Path) -> None:
    pipeline = load_face_pipeline(Settings(prnet_dir=str(prnet_dir)))
    photo = astronaut()
    images = [photo, photo[::-1].copy()]
    together = pipeline.reconstruct_batch(images, crop="whole")
    for image, batched in zip(images, together, strict=True):
        alone = pipeline.reconstruct(image, crop="whole")
        # Batched convolutions may pick other kernels: agreement to 1/20 of a pixel is float tolerance here.
        np.testing.assert_allclose(batched.mesh.vertices, alone.mesh.vertices, atol=0.05)


def test_caller_given_landmarks_and_box_set_the_crop(prnet_dir: Path, shared_dir: Path) -> None:
    import scipy.io as sio
    from skimage.io import imread

    from t2f.faces import FaceBox
    from t2f.stages.prnet.postprocess import crop_from_landmarks

    pipeline = load_face_pipeline(Settings(prnet_dir=str(prnet_dir)))
    sample = shared_dir / "prnet" / "aflw2000-samples" / "image00050"
    image = imread(f"{sample}.jpg")
    truth = sio.loadmat(f"{sample}.mat")["pt3d_68"][:2].T
    by_landmarks = pipeline.reconstruct(image, landmarks=truth)
    expected = crop_from_landmarks(image, truth)
    assert by_landmarks.crop.side == expected.side and by_landmarks.box is None
    by_box = pipeline.reconstruct(image, box=FaceBox(120, 100, 320, 380))
    assert by_box.box == FaceBox(120, 100, 320, 380) and by_box.faces_found == 1
    assert by_box.crop.side == pytest.approx(1.47 * 240)


def test_tiny_faces_are_refused_with_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    from t2f.errors import NoFaceFound
    from t2f.faces import FaceBox
    from t2f.stages.detect import FaceDetector

    detector = FaceDetector.__new__(FaceDetector)  # skip loading MTCNN: only the decision is under test
    monkeypatch.setattr(detector, "detect", lambda image: [FaceBox(10, 10, 22, 24, 0.99)])
    with pytest.raises(NoFaceFound) as caught:
        detector.largest_face(np.zeros((64, 64, 3), np.uint8))
    assert (
        caught.value.user_message
        == "The face in the image is too small (13 px) to reconstruct; try a close-up portrait."
    )


def test_out_of_memory_halves_the_batch_and_a_single_job_fails_alone(prnet_dir: Path) -> None:
    import torch
    from discord_fixtures import PhotoTextToImage
    from route_helpers import local_stages, through_route

    from t2f.faces import FaceRequest
    from t2f.serve.jobs import FAILED, JobRequest
    from t2f.serve.paint import OUT_OF_MEMORY

    class SmallGpuPhoto(PhotoTextToImage):
        """Room for two images at a time; "huge" never fits."""

        def __init__(self) -> None:
            super().__init__()
            self.tried: list[int] = []
            self.failed_batches: list[weakref.ref[torch.Tensor]] = []  # what each failed try held
            self.still_held: list[int] = []

        def generate_batch(self, requests, *, on_step=None, **options):  # type: ignore[no-untyped-def]
            self.tried.append(len(requests))
            # A retry runs with the memory of the tries that failed before it given back.
            self.still_held.append(sum(ref() is not None for ref in self.failed_batches))
            activations = torch.zeros(len(requests), 4, 16, 16)  # the UNet's, on a GPU
            if len(requests) > 2 or any(r.prompt == "huge" for r in requests):
                self.failed_batches.append(weakref.ref(activations))
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return super().generate_batch(requests, on_step=on_step)

    stage = SmallGpuPhoto()
    pipeline = load_face_pipeline(Settings(prnet_dir=str(prnet_dir)), text_to_image=stage)
    local = local_stages(pipeline, crop="whole")
    prompts = ["face 0", "face 1", "face 2", "face 3", "huge"]
    jobs = [
        JobRequest(job_id=f"{i:012d}", user_id=i, face=FaceRequest(p, steps=2, size=128)) for i, p in enumerate(prompts)
    ]
    results = through_route(local, jobs)
    assert [r.status for r in results] == ["done"] * 4 + ["failed"]  # type: ignore[union-attr]
    assert results[4].user_message == OUT_OF_MEMORY.format(job_id="000000000004")  # type: ignore[union-attr]
    assert stage.tried == [5, 2, 3, 1, 2, 1, 1]  # 5 -> 2 + 3; 3 -> 1 + 2; the 2 with "huge" -> 1 + 1
    assert stage.still_held == [0] * 7 and len(stage.failed_batches) == 4  # the traceback held them before
    assert stage.prompts == ["face 0", "face 1", "face 2", "face 3"]

    # PRNet out of memory for one face (each face is rebuilt alone): that face fails, the next one is made.
    predict, sizes = pipeline.prnet.predict, []

    def full_once(crops: np.ndarray) -> np.ndarray:
        sizes.append(len(crops))
        if len(sizes) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return predict(crops)

    pipeline.prnet.predict = full_once  # type: ignore[method-assign]
    results = through_route(local, jobs[:2])
    assert [r.status for r in results] == ["failed", "done"] and sizes == [1, 1]  # type: ignore[union-attr]
    assert results[0].user_message == FAILED.format(job_id="000000000000")  # type: ignore[union-attr]
    assert results[1].files["face.obj"].startswith(b"# t2f face mesh")  # type: ignore[union-attr]
