"""The route's stages overlap: the GPU paints the next batch while the last batch's faces are found, and each
face goes on to its files the moment its own work is done."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
import types
from collections.abc import Callable

import numpy as np
import pytest
from discord_fixtures import PhotoTextToImage
from route_helpers import local_stages, route_of

from t2f.faces import FaceBox, FaceRequest
from t2f.serve.jobs import FAILED, FaceJob, JobRequest, JobResult, JobStatus
from t2f.serve.route import Route
from t2f.serve.service import JobService
from t2f.serve.warmup import LocalStages, warm_up
from t2f.stages.detect import FaceDetector
from t2f.stages.gate import GateLimits
from t2f.stages.pipeline import FacePipeline


class WatchedDetector(FaceDetector):
    """The session's MTCNN, recording the thread of each call and first running ``before_first`` (once)."""

    def __init__(self, inner: FaceDetector, before_first: Callable[[], None] = lambda: None) -> None:
        self.inner = inner
        self.before_first = before_first
        self.threads: list[str] = []
        self.min_confidence = inner.min_confidence

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        if not self.threads:
            self.before_first()
        self.threads.append(threading.current_thread().name)
        return self.inner.detect(image)


def face_job(job_id: str, steps: int) -> JobRequest:
    return JobRequest(job_id, user_id=int(job_id[-1]), face=FaceRequest("a face", steps=steps, size=256))


def overlapping(
    stages: FacePipeline, detector: FaceDetector, painter: PhotoTextToImage, gate: GateLimits | None = None
) -> Route:
    """The local route with the faces stage on a thread of its own, as on a GPU."""
    pipeline = FacePipeline(prnet=stages.prnet, uv=stages.uv, detector=detector, text_to_image=painter)
    return route_of(local_stages(pipeline, crop="detect", gate=gate), faces_thread=True)


async def test_the_next_batch_paints_while_the_last_one_is_detected(stages: FacePipeline) -> None:
    second_paint = threading.Event()
    painter = PhotoTextToImage(on_paint=lambda: second_paint.set() if len(painter.prompts) == 2 else None)
    overlapped: list[bool] = []
    # The first detection waits for the second batch's painting: it can only start while detection runs.
    detector = WatchedDetector(stages.detector, lambda: overlapped.append(second_paint.wait(10)))
    service = JobService(overlapping(stages, detector, painter), max_batch=4)
    first = service.submit(face_job("job1", steps=2))
    await asyncio.sleep(0)  # the drain task takes job1 alone; job2 (other steps) cannot join its batch
    second = service.submit(face_job("job2", steps=3))
    results = await asyncio.wait_for(asyncio.gather(first.result, second.result), 60)
    await service.shutdown()
    assert [r.status for r in results] == [JobStatus.DONE, JobStatus.DONE]
    assert all({"face.obj", "preview.jpg", "image.png"} <= set(r.files) for r in results)
    assert overlapped == [True]
    assert painter.threads == {"t2f-gpu_0"}
    assert set(detector.threads) == {"t2f-faces_0"}
    assert all(r.report is not None and r.report.face is not None and r.report.face.faces_found == 1 for r in results)


async def test_each_face_goes_to_its_files_while_the_next_face_of_its_batch_is_found(stages: FacePipeline) -> None:
    files_started = threading.Event()
    # The second face's detection waits until the first face's files have begun: it can only pass if a face
    # moves on alone, not when its whole batch is found.
    detector = WatchedDetector(stages.detector)
    original = detector.detect

    def detect(image: np.ndarray) -> list[FaceBox]:
        if len(detector.threads) == 1:
            assert files_started.wait(10), "the first face waited for its batch before its files"
        return original(image)

    detector.detect = detect  # type: ignore[method-assign]
    route = overlapping(stages, detector, PhotoTextToImage())
    write = route.files.write

    def files(job: FaceJob) -> JobResult:
        files_started.set()
        return write(job)

    route.files.write = files  # type: ignore[method-assign]
    service = JobService(route, max_batch=4)
    handles = [service.submit(face_job("job1", 2)), service.submit(face_job("job2", 2))]
    results = await asyncio.wait_for(asyncio.gather(*(h.result for h in handles)), 60)
    await service.shutdown()
    assert [r.status for r in results] == [JobStatus.DONE] * 2
    assert [r.report.face.vertices for r in results if r.report and r.report.face] == [43867, 43867]


async def test_a_broken_faces_stage_fails_its_job_alone_and_the_service_goes_on(
    stages: FacePipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    route = overlapping(stages, stages.detector, PhotoTextToImage())
    assert route.faces is not None
    find = route.faces.find
    calls: list[int] = []

    def breaks_once(*args: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in the faces stage")
        return find(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(route.faces, "find", breaks_once)
    service = JobService(route, max_batch=4)
    broken = await asyncio.wait_for(service.submit(face_job("job1", 2)).result, 60)
    fine = await asyncio.wait_for(service.submit(face_job("job2", 2)).result, 60)
    await service.shutdown()
    assert broken.status == JobStatus.FAILED and broken.user_message == FAILED.format(job_id="job1")
    assert "Traceback" not in broken.user_message and "bug" not in broken.user_message
    assert fine.status == JobStatus.DONE and "face.obj" in fine.files


async def test_shutdown_waits_for_faces_still_being_found(stages: FacePipeline) -> None:
    detecting = threading.Event()
    release = threading.Event()
    detector = WatchedDetector(stages.detector, lambda: (detecting.set(), release.wait(10)))
    service = JobService(overlapping(stages, detector, PhotoTextToImage()), max_batch=4)
    handle = service.submit(face_job("job1", 2))
    await asyncio.to_thread(detecting.wait, 10)
    assert service.pending_for(1) == 1  # still the member's: admission counts it
    threading.Timer(0.2, release.set).start()
    assert await service.shutdown(timeout_s=30) == []
    assert handle.result.done() and handle.result.result().status == JobStatus.DONE


class SlowExport:
    """A painter whose faces need no GPU, and files that take a while, recording how many are written at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.writing = 0
        self.most = 0

    def paint(self, jobs, watch):  # type: ignore[no-untyped-def]
        return [dataclasses.replace(job, face=object()) for job in jobs]

    def write(self, job: FaceJob) -> JobResult:
        with self.lock:
            self.writing += 1
            self.most = max(self.most, self.writing)
        time.sleep(0.2)
        with self.lock:
            self.writing -= 1
        return JobResult(job.job_id, JobStatus.DONE, files={"face.obj": b"v 0 0 0\n"})

    def route(self, files_threads: int = 1) -> Route:
        return Route(paint=self, faces=None, files=self, files_threads=files_threads)


@pytest.mark.parametrize("threads", [1, 3])
async def test_export_threads_write_that_many_faces_at_once(threads: int) -> None:
    backend = SlowExport()
    service = JobService(backend.route(files_threads=threads), max_batch=4)
    handles = [service.submit(face_job(f"job{i}", 2)) for i in range(4)]
    results = await asyncio.wait_for(asyncio.gather(*(h.result for h in handles)), 30)
    await service.shutdown()
    assert [r.status for r in results] == [JobStatus.DONE] * 4
    assert backend.most == threads


class NoFaceFirst(WatchedDetector):
    """The session's MTCNN, except that the first image has no face (the gate sends it back to be repainted)."""

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        found = super().detect(image)
        return [] if len(self.threads) == 1 else found


async def test_a_repaint_decided_on_the_faces_thread_is_painted_again(stages: FacePipeline) -> None:
    painter = PhotoTextToImage()
    detector = NoFaceFirst(stages.detector)
    service = JobService(overlapping(stages, detector, painter, gate=GateLimits()), max_batch=4)
    job = dataclasses.replace(face_job("job1", 2), repaints_left=1)
    handle = service.submit(job)
    result = await asyncio.wait_for(handle.result, 60)  # the worker had nothing left to do when the repaint came
    await service.shutdown()
    assert result.status == JobStatus.DONE
    assert painter.prompts == ["a face", "a face"] and len(detector.threads) == 2
    assert result.report is not None and result.report.seeds_tried == (0,)


def test_the_warm_up_estimates_each_buckets_time_at_the_members_step_count(
    stages: FacePipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The warm-up's clock is the test's: each painted step costs 50 ms on it and nothing else costs anything,
    so the extrapolation is checked exactly, whatever else the machine is doing."""
    from t2f.serve import warmup

    clock = [0.0]
    painter = PhotoTextToImage(on_step=lambda: clock.__setitem__(0, clock[0] + 0.05))
    painter.buckets = (1, 2)  # type: ignore[attr-defined]  # as a compiled stage has: the warm-up times each bucket
    monkeypatch.setattr(warmup, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    pipeline = FacePipeline(prnet=stages.prnet, uv=stages.uv, text_to_image=painter)
    local: LocalStages = local_stages(pipeline, crop="whole")
    few = warm_up(local, 64, max_batch=2, compile_mode="off", steps=2)
    many = warm_up(local, 64, max_batch=2, compile_mode="off", steps=30)
    assert set(few) == set(many) == {1, 2}
    # A 2-step batch paints 0.1 s; 28 more steps add 1.4 s; PRNet and the mesh cost the same either way.
    assert few == pytest.approx({1: 0.1, 2: 0.1}) and many == pytest.approx({1: 1.5, 2: 1.5})


class StuckExport(SlowExport):
    """Files that never come until ``release`` is set: a stuck export thread."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.exported: list[str] = []

    def write(self, job: FaceJob) -> JobResult:
        self.exported.append(job.job_id)
        self.release.wait(30)
        return JobResult(job.job_id, JobStatus.DONE, files={"face.obj": b"v 0 0 0\n"})


async def test_files_stuck_past_the_timeout_tell_the_member_and_health() -> None:
    backend = StuckExport()
    service = JobService(backend.route(), max_batch=4, job_timeout_s=0.3)
    service.stuck_margin_s = 0.3
    handle = service.submit(face_job("job1", 2))
    behind = service.submit(face_job("job2", 2))  # its files wait for the one export thread, which is stuck
    result = await asyncio.wait_for(handle.result, 10)
    assert (await asyncio.wait_for(behind.result, 10)).status == JobStatus.TIMEOUT
    assert result.status == JobStatus.TIMEOUT
    assert result.user_message == "Your face took longer than 0.005 minutes and was stopped. Try again."
    assert service.pending_for(1) == service.pending_for(2) == 0  # the members may ask again
    assert service.health(require_warm=False) == (True, "ok")  # not yet a minute (here 0.3 s) past it
    await asyncio.sleep(0.5)
    healthy, reason = service.health(require_warm=False)
    assert not healthy and reason.startswith("a face has waited ") and reason.endswith(" s for its face or its files")
    backend.release.set()  # the thread lets go: its late files are dropped, and the service is healthy again
    await asyncio.wait_for(service.shutdown(), 10)
    assert handle.result.result().status == JobStatus.TIMEOUT
    assert service.health(require_warm=False) == (False, "shutting down")
    assert not service.after_gpu.running() and backend.exported == ["job1"]  # job2's files were never made


async def test_a_face_found_after_its_timeout_writes_no_files(stages: FacePipeline) -> None:
    detecting, release = threading.Event(), threading.Event()
    detector = WatchedDetector(stages.detector, lambda: (detecting.set(), release.wait(10)))
    route = overlapping(stages, detector, PhotoTextToImage())
    exported: list[str] = []
    write = route.files.write

    def counted(job: FaceJob) -> JobResult:
        exported.append(job.job_id)
        return write(job)

    route.files.write = counted  # type: ignore[method-assign]
    service = JobService(route, max_batch=4, job_timeout_s=1.0)
    result = await asyncio.wait_for(service.submit(face_job("job1", 2)).result, 20)
    assert detecting.is_set() and result.status == JobStatus.TIMEOUT
    release.set()
    await asyncio.wait_for(service.shutdown(), 20)
    assert exported == [] and len(detector.threads) == 1  # found late, then dropped: no files, no repaint
