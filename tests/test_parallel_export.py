"""One face's files made on several threads: the same bytes in the same order, no deadlock, errors kept."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from discord_fixtures import PhotoTextToImage
from mesh_fixtures import reference_mesh
from route_helpers import local_stages, route_of

from t2f.export.package import result_files
from t2f.export.parallel import run_parts
from t2f.faces import FaceRequest, FaceResult
from t2f.serve.files import FileWriter
from t2f.serve.jobs import JobRequest, JobStatus
from t2f.serve.service import JobService
from t2f.stages.pipeline import FacePipeline


def test_parts_come_back_in_order_and_run_on_the_pool_too() -> None:
    started = threading.Barrier(2, timeout=10)

    def part(index: int) -> tuple[int, str]:
        if index < 2:  # the first two meet: only possible if they run on two threads at once
            started.wait()
        return index, threading.current_thread().name

    with ThreadPoolExecutor(2, thread_name_prefix="helper") as pool:
        done = run_parts([lambda index=index: part(index) for index in range(6)], pool)
    assert [index for index, _ in done] == list(range(6))
    assert done[0][1] == threading.current_thread().name  # the caller ran the first part itself
    assert any(name.startswith("helper") for _, name in done[1:])


def test_parts_started_from_the_pools_only_thread_finish() -> None:
    # The one pool thread asks its own pool for parts: without the caller running them, it would wait forever.
    with ThreadPoolExecutor(1) as pool:
        outer = pool.submit(run_parts, [lambda index=index: index * index for index in range(5)], pool)
        assert outer.result(timeout=10) == [0, 1, 4, 9, 16]


def test_a_failing_part_raises_after_the_others_ran() -> None:
    ran: list[int] = []

    def part(index: int) -> int:
        ran.append(index)
        if index == 2:
            raise ValueError("part 2 broke")
        return index

    with ThreadPoolExecutor(2) as pool, pytest.raises(ValueError, match="part 2 broke"):
        run_parts([lambda index=index: part(index) for index in range(4)], pool)
    assert sorted(ran) == [0, 1, 2, 3]
    assert run_parts([]) == []


def test_after_a_failure_no_part_goes_on_using_the_pool() -> None:
    ran: list[int] = []

    def part(index: int) -> int:
        time.sleep(0.05)
        ran.append(index)
        if index == 1:
            raise ValueError("part 1 broke")
        return index

    with ThreadPoolExecutor(1) as pool:
        with pytest.raises(ValueError, match="part 1 broke"):
            run_parts([lambda index=index: part(index) for index in range(6)], pool)
        done_when_raised = sorted(ran)
        time.sleep(0.3)  # parts 3-5 (and maybe 2) were still queued on the pool: none may start now
        assert sorted(ran) == done_when_raised  # what had started was waited for...
        assert done_when_raised in ([0, 1], [0, 1, 2])  # ...and the rest dropped (part 2 may have begun)


def test_files_made_in_parallel_are_the_same_bytes_in_the_same_order(shared_dir: Path) -> None:
    image, mesh = reference_mesh(shared_dir)
    face = FaceResult(image=image, mesh=mesh, crop=None, box=None, faces_found=1)  # type: ignore[arg-type]
    serial_times: dict[str, float] = {}
    serial = result_files(face, serial_times)
    with ThreadPoolExecutor(3) as pool:
        parallel_times: dict[str, float] = {}
        parallel = result_files(face, parallel_times, pool=pool, outputs=("obj", "glb"))
        everything = result_files(face, pool=pool)
    assert list(everything) == list(serial) and everything == serial
    assert list(parallel) == ["image.png", "face.obj", "face.glb", "preview.jpg", "turntable.gif"]
    assert all(parallel[name] == serial[name] for name in parallel)
    assert set(parallel_times) == set(serial_times) == {"export_obj", "export_glb", "preview", "turntable"}
    assert all(seconds > 0 for seconds in parallel_times.values())


async def test_a_backends_export_threads_share_out_one_faces_turntable(
    stages: FacePipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    from t2f.export import turntable

    drawn_on: set[str] = set()
    draw = turntable.render_frame

    def watched(*args: Any, **kwargs: Any) -> Any:
        drawn_on.add(threading.current_thread().name.rsplit("_", 1)[0])
        return draw(*args, **kwargs)

    monkeypatch.setattr(turntable, "render_frame", watched)
    painted = FacePipeline(prnet=stages.prnet, uv=stages.uv, text_to_image=PhotoTextToImage())
    local = local_stages(painted, crop="whole", parts_threads=2)
    service = JobService(route_of(local), max_batch=1)
    job = JobRequest("job1", user_id=1, face=FaceRequest("a face", steps=2, size=64))
    result = await asyncio.wait_for(service.submit(job).result, 60)
    await service.shutdown()
    assert result.status == JobStatus.DONE and {"turntable.gif", "face.obj"} <= set(result.files)
    assert drawn_on == {"t2f-cpu", "t2f-files"}  # the thread exporting the face, and the files stage's helpers
    assert FileWriter().parts_pool is None  # one thread: no helpers at all
