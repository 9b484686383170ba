"""Detection off the GPU thread: the GPU paints the next batch while the last batch's faces are found."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest
from discord_fixtures import PhotoTextToImage

from t2f.faces import FaceBox, FaceRequest
from t2f.report import FaceReport
from t2f.serve.backend import LocalFaceBackend
from t2f.serve.jobs import FAILED, FinishedFace, JobRequest, JobResult, JobStatus, Pending
from t2f.serve.service import JobService
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


def overlapping(stages: FacePipeline, detector: FaceDetector, painter: PhotoTextToImage) -> LocalFaceBackend:
    pipeline = FacePipeline(prnet=stages.prnet, uv=stages.uv, detector=detector, text_to_image=painter)
    return LocalFaceBackend(pipeline, crop="detect", preview_every=0, overlap=True)


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


def test_run_batch_returns_pending_jobs_that_resolve_to_their_faces(stages: FacePipeline) -> None:
    backend = overlapping(stages, stages.detector, PhotoTextToImage())
    jobs = [face_job("job1", 2), face_job("job2", 2)]
    outcomes = backend.run_batch(jobs, lambda progress: None, lambda job_id: False)
    assert all(isinstance(o, Pending) for o in outcomes)
    assert outcomes[0].outcomes is outcomes[1].outcomes  # type: ignore[union-attr]  # one half-batch for both
    faces = outcomes[0].outcomes.result(60)  # type: ignore[union-attr]
    assert sorted(faces) == ["job1", "job2"]
    assert [faces[j.job_id].face.mesh.vertices.shape for j in jobs] == [(43867, 3)] * 2  # type: ignore[union-attr]


async def test_a_broken_face_half_fails_its_jobs_alone_and_the_service_goes_on(
    stages: FacePipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = overlapping(stages, stages.detector, PhotoTextToImage())
    find_faces = backend._find_faces
    calls: list[int] = []

    def breaks_once(*args: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in the faces half")
        return find_faces(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(backend, "_find_faces", breaks_once)
    service = JobService(backend, max_batch=4)
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
    """A backend whose faces need no GPU and whose files take a while, recording how many are written at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.writing = 0
        self.most = 0

    def run_batch(self, jobs, report, cancelled):  # type: ignore[no-untyped-def]
        return [FinishedFace(job=job, face=None, report=FaceReport(), seconds=0.0) for job in jobs]  # type: ignore[arg-type]

    def export(self, finished: FinishedFace) -> JobResult:
        with self.lock:
            self.writing += 1
            self.most = max(self.most, self.writing)
        time.sleep(0.2)
        with self.lock:
            self.writing -= 1
        return JobResult(finished.job.job_id, JobStatus.DONE, files={"face.obj": b"v 0 0 0\n"})


@pytest.mark.parametrize("threads", [1, 3])
async def test_export_threads_write_that_many_faces_at_once(threads: int) -> None:
    backend = SlowExport()
    service = JobService(backend, max_batch=4, export_threads=threads)
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
    pipeline = FacePipeline(prnet=stages.prnet, uv=stages.uv, detector=detector, text_to_image=painter)
    backend = LocalFaceBackend(pipeline, crop="detect", preview_every=0, overlap=True, gate=GateLimits())
    service = JobService(backend, max_batch=4)
    job = dataclasses.replace(face_job("job1", 2), repaints_left=1)
    handle = service.submit(job)
    result = await asyncio.wait_for(handle.result, 60)  # the worker had nothing left to do when the repaint came
    await service.shutdown()
    assert result.status == JobStatus.DONE
    assert painter.prompts == ["a face", "a face"] and len(detector.threads) == 2
    assert result.report is not None and result.report.seeds_tried == (0,)


def test_the_warm_up_estimates_each_buckets_time_at_the_members_step_count(stages: FacePipeline) -> None:
    painter = PhotoTextToImage(step_seconds=0.05)  # sleeps: long next to a loaded machine's noise
    painter.buckets = (1, 2)  # type: ignore[attr-defined]  # as a compiled stage has: the warm-up times each bucket
    pipeline = FacePipeline(prnet=stages.prnet, uv=stages.uv, text_to_image=painter)
    backend = LocalFaceBackend(pipeline, crop="whole", preview_every=0)
    few = backend.warm_up(64, max_batch=2, steps=2)
    many = backend.warm_up(64, max_batch=2, steps=30)
    assert set(few) == set(many) == {1, 2}
    for count in (1, 2):  # 28 more steps of 50 ms painting; PRNet and the mesh cost the same either way
        assert 1.4 * 0.7 < many[count] - few[count] < 1.4 * 1.4, (few, many)


class StuckExport(SlowExport):
    """Files that never come until ``release`` is set: a stuck export thread."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.exported: list[str] = []

    def export(self, finished: FinishedFace) -> JobResult:
        self.exported.append(finished.job.job_id)
        self.release.wait(30)
        return JobResult(finished.job.job_id, JobStatus.DONE, files={"face.obj": b"v 0 0 0\n"})


async def test_files_stuck_past_the_timeout_tell_the_member_and_health() -> None:
    backend = StuckExport()
    service = JobService(backend, max_batch=4, job_timeout_s=0.3)
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
    assert not service._past_gpu_jobs and backend.exported == ["job1"]  # job2's files were never made


async def test_a_face_found_after_its_timeout_writes_no_files(stages: FacePipeline) -> None:
    detecting, release = threading.Event(), threading.Event()
    detector = WatchedDetector(stages.detector, lambda: (detecting.set(), release.wait(10)))
    backend = overlapping(stages, detector, PhotoTextToImage())
    exported: list[str] = []
    export = backend.export

    def counted(finished: FinishedFace) -> JobResult:
        exported.append(finished.job.job_id)
        return export(finished)

    backend.export = counted  # type: ignore[method-assign]
    service = JobService(backend, max_batch=4, job_timeout_s=1.0)
    result = await asyncio.wait_for(service.submit(face_job("job1", 2)).result, 20)
    assert detecting.is_set() and result.status == JobStatus.TIMEOUT
    release.set()
    await asyncio.wait_for(service.shutdown(), 20)
    assert exported == [] and len(detector.threads) == 1  # found late, then dropped: no files, no repaint
