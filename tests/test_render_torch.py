"""The PyTorch renderer (t2f.export.render_torch) draws what the numpy one draws, every view at once.

Run here on the CPU; on a GPU host the same code runs on CUDA (tests/test_gpu.py compares the two there).
"""

from __future__ import annotations

import asyncio
import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from discord_fixtures import PhotoTextToImage
from mesh_fixtures import reference_mesh
from PIL import Image
from route_helpers import local_stages, route_of

from t2f.export.package import result_files
from t2f.export.preview import VIEWS, preview_strip
from t2f.export.raster import BACKGROUND, PREVIEW_LOD, draw_view, fit_to_panel, rasterize, view_mesh
from t2f.export.render_torch import ViewRenderer, rasterize_views
from t2f.export.turntable import TURNTABLE_LOD, render_frame, swing_yaws, turntable_frames
from t2f.faces import FaceMesh, FaceRequest, FaceResult
from t2f.serve.files import FileWriter
from t2f.serve.jobs import JobRequest, JobStatus
from t2f.serve.service import JobService
from t2f.stages.pipeline import FacePipeline


@pytest.fixture(scope="module")
def face(shared_dir: Path) -> tuple[np.ndarray, FaceMesh]:
    return reference_mesh(shared_dir)


def assert_nearly_same_picture(got: np.ndarray, expected: np.ndarray) -> None:
    """Equal but for float rounding: at most 1 level of 255, on under 0.5 % of the pixels."""
    assert got.shape == expected.shape and got.dtype == expected.dtype == np.uint8
    apart = np.abs(got.astype(np.int16) - expected.astype(np.int16)).max(-1)
    assert apart.max() <= 1 and (apart > 0).mean() < 0.005, (apart.max(), (apart > 0).mean())


def test_turntable_frames_match_the_numpy_frames(face: tuple[np.ndarray, FaceMesh]) -> None:
    _, mesh = face
    view = view_mesh(mesh, TURNTABLE_LOD)
    yaws = np.unique(np.round(swing_yaws(), 6))
    drawn = ViewRenderer("cpu").draw(view, yaws, 256)
    assert drawn is not None
    got = drawn["textured"]
    assert got.shape == (17, 256, 256, 3)
    assert_nearly_same_picture(got, np.stack([render_frame(view, float(yaw)) for yaw in yaws]))
    frames = turntable_frames(mesh, renderer=ViewRenderer("cpu"))
    assert frames.shape == (32, 256, 256, 3)
    assert_nearly_same_picture(frames, turntable_frames(mesh))
    assert (frames[0] != BACKGROUND).any(-1).mean() > 0.2  # a head, not an empty panel


def test_preview_strip_matches_the_numpy_strip(face: tuple[np.ndarray, FaceMesh]) -> None:
    image, mesh = face
    got, expected = preview_strip(image, mesh, renderer=ViewRenderer("cpu")), preview_strip(image, mesh)
    assert got.shape == (256, 5 * 256, 3)
    assert_nearly_same_picture(got, expected)
    assert np.array_equal(got[:, :256], expected[:, :256])  # the source image panel is the same pixels


def test_views_drawn_together_are_each_drawn_alone(face: tuple[np.ndarray, FaceMesh]) -> None:
    _, mesh = face
    view = view_mesh(mesh, PREVIEW_LOD)
    yaws = [yaw for _, yaw in VIEWS]
    placed = torch.from_numpy(np.stack([fit_to_panel(view.vertices, yaw, 128) for yaw in yaws]))
    triangles = torch.from_numpy(view.triangles.astype(np.int64))
    faces, bary = rasterize_views(placed, triangles, 128)
    assert faces.shape == (3, 128, 128) and bary.shape == (3, 128, 128, 3)
    for k, yaw in enumerate(yaws):
        alone = rasterize(fit_to_panel(view.vertices, yaw, 128), view.triangles, 128, cull_back=True)
        same = faces[k].numpy() == alone.face
        assert same.mean() > 0.998  # the rest: depth ties between neighbouring triangles at the last float bit
        np.testing.assert_allclose(bary[k].numpy()[same], alone.bary[same], atol=1e-5)
        assert draw_view(view, yaw, 128)[0].face.max() == alone.face.max()


def test_a_view_with_nothing_facing_the_camera_is_empty() -> None:
    vertices = torch.tensor([[[10.0, 10, 0], [10, 20, 0], [20, 10, 0]]])  # clockwise on screen: a back face
    faces, bary = rasterize_views(vertices, torch.tensor([[0, 1, 2]]), 32)
    assert (faces == -1).all() and float(bary.abs().sum()) == 0.0
    both = torch.cat([vertices, vertices[:, [0, 2, 1]]])  # the second view sees it from the front
    faces, _ = rasterize_views(both, torch.tensor([[0, 1, 2]]), 32)
    assert (faces[0] == -1).all() and (faces[1] == 0).sum() > 20


def test_result_files_drawn_by_torch_decode_as_the_numpy_ones(face: tuple[np.ndarray, FaceMesh]) -> None:
    image, mesh = face
    result = FaceResult(image=image, mesh=mesh, crop=None, box=None, faces_found=1)  # type: ignore[arg-type]
    renderer = ViewRenderer("cpu")
    drawn, numpy_drawn = result_files(result, renderer=renderer), result_files(result)
    assert list(drawn) == list(numpy_drawn)
    with ThreadPoolExecutor(3) as pool:  # the turntable and the preview drawn at once, on two threads
        assert result_files(result, renderer=renderer, pool=pool) == drawn
    assert all(drawn[name] == numpy_drawn[name] for name in drawn if name not in ("preview.jpg", "turntable.gif"))
    gif = Image.open(io.BytesIO(drawn["turntable.gif"]))
    assert gif.n_frames == 32 and gif.size == (256, 256)
    assert Image.open(io.BytesIO(drawn["preview.jpg"])).size == (1280, 256)


def test_a_files_stage_with_a_render_device_draws_with_torch(
    stages: FacePipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    looks: list[tuple[str, ...]] = []
    draw = ViewRenderer._draw

    def watched(self: ViewRenderer, view: object, yaws: np.ndarray, size: int, wanted: tuple[str, ...]) -> object:
        looks.append(wanted)
        return draw(self, view, yaws, size, wanted)  # type: ignore[arg-type]

    monkeypatch.setattr(ViewRenderer, "_draw", watched)
    painted = FacePipeline(prnet=stages.prnet, uv=stages.uv, text_to_image=PhotoTextToImage())  # a real face
    local = local_stages(painted, crop="whole", render_device="cpu")
    assert isinstance(local.files.renderer, ViewRenderer) and local.files.renderer.device == torch.device("cpu")
    service = JobService(route_of(local), max_batch=1)

    async def one() -> JobStatus:
        job = JobRequest("job1", user_id=1, face=FaceRequest("a face", steps=2, size=64))
        result = await asyncio.wait_for(service.submit(job).result, 60)
        await service.shutdown()
        assert {"turntable.gif", "preview.jpg"} <= set(result.files)
        return result.status

    assert asyncio.run(one()) == JobStatus.DONE
    assert sorted(looks) == [("clay", "textured"), ("textured",)]  # the preview from one raster; the turntable
    assert FileWriter().renderer is None  # no device: numpy draws


def test_a_failed_drawing_falls_back_to_numpy(
    face: tuple[np.ndarray, FaceMesh], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    image, mesh = face
    renderer = ViewRenderer("cpu")
    calls: list[int] = []

    def out_of_memory(*args: object) -> None:
        calls.append(1)
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(renderer, "_draw", out_of_memory)
    assert np.array_equal(turntable_frames(mesh, renderer=renderer), turntable_frames(mesh))  # numpy drew it
    assert not renderer.broken and not caplog.records  # out of memory: this face only, no warning

    def no_room_for_cublas(*args: object) -> None:  # an export thread's first cuBLAS call on a full card
        calls.append(1)
        raise RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`")

    monkeypatch.setattr(renderer, "_draw", no_room_for_cublas)
    assert np.array_equal(turntable_frames(mesh, renderer=renderer), turntable_frames(mesh))
    assert not renderer.broken and not caplog.records  # out of memory as well: tried again for the next face

    def kernel_error(*args: object) -> None:
        calls.append(1)
        raise RuntimeError("CUDA error: an illegal memory access was encountered\nmore lines")

    monkeypatch.setattr(renderer, "_draw", kernel_error)
    assert np.array_equal(preview_strip(image, mesh, renderer=renderer), preview_strip(image, mesh))
    assert renderer.broken and len(calls) == 3
    assert [r.getMessage() for r in caplog.records] == [
        "drawing on cpu failed (RuntimeError: CUDA error: an illegal memory access was encountered); "
        "numpy draws the previews from now on"
    ]
    turntable_frames(mesh, renderer=renderer)
    assert len(calls) == 3  # turned off: not tried again
