"""JobService around a route of controllable fake stages (the real pipeline runs in the SimCord tests)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence

import pytest

from t2f.faces import FaceRequest
from t2f.serve.jobs import FAILED, FaceJob, JobPhase, JobProgress, JobRequest, JobResult, JobStatus, Outcome, QueueFull
from t2f.serve.route import Route, Watch
from t2f.serve.service import JobService

FACE = object()  # stands for a found face: the fake files stage never looks inside


class FakeBackend:
    """A painter that records batches; each step reports progress and checks cancellation; it can be held or
    made to crash. Its jobs come back with a face, for the files stage (``export``) to finish."""

    def __init__(self, steps: int = 3) -> None:
        self.batches: list[list[str]] = []
        self.threads: set[str] = set()
        self.gate = threading.Event()
        self.gate.set()
        self.steps = steps
        self.crash_on: set[str] = set()

    def paint(self, jobs: Sequence[FaceJob], watch: Watch) -> list[Outcome]:
        self.threads.add(threading.current_thread().name)
        self.batches.append([j.job_id for j in jobs])
        if self.crash_on & {j.job_id for j in jobs}:
            raise RuntimeError("boom")
        for step in range(1, self.steps + 1):
            self.gate.wait(5)
            if all(watch.cancelled(j.job_id) for j in jobs):
                return [JobResult(j.job_id, JobStatus.CANCELLED, user_message="Cancelled.") for j in jobs]
            for job in jobs:
                watch.report(JobProgress(job.job_id, JobPhase.PAINTING, step, self.steps))
        return [FaceJob(j.request, face=FACE) for j in jobs]  # type: ignore[arg-type]

    def export(self, job: FaceJob) -> JobResult:
        return JobResult(job.job_id, JobStatus.DONE, files={"face.obj": b"v 0 0 0\n"})


class SlowFiles(FakeBackend):
    """Starts a face's files, then waits for the test's ``release`` before it writes them."""

    def __init__(self) -> None:
        super().__init__()
        self.writing, self.release = threading.Event(), threading.Event()

    def export(self, job: FaceJob) -> JobResult:
        self.writing.set()
        assert self.release.wait(5)
        return super().export(job)


class FakeFiles:
    def __init__(self, write: Callable[[FaceJob], JobResult]) -> None:
        self.write = write


def route(backend: FakeBackend) -> Route:
    return Route(paint=backend, faces=None, files=FakeFiles(backend.export))


def job(job_id: str, user: int, steps: int = 25) -> JobRequest:
    return JobRequest(job_id=job_id, user_id=user, face=FaceRequest("a face", steps=steps))


async def test_round_robin_across_users_and_batches_of_one_shape() -> None:
    backend = FakeBackend()
    backend.gate.clear()  # hold the first batch so the queue builds up
    service = JobService(route(backend), max_batch=2)
    handles = [service.submit(job("a0", 1))]
    await asyncio.sleep(0.05)
    handles += [service.submit(job(f"a{i}", 1)) for i in range(1, 4)]
    handles += [service.submit(job(f"b{i}", 2)) for i in range(2)]
    handles.append(service.submit(job("c0", 3, steps=30)))  # another shape: never batched with the rest
    assert [h.job.job_id for h in service.queued()] == ["a1", "b0", "c0", "a2", "b1", "a3"]
    assert service.position("c0") == 3 and service.position("a0") == 0
    assert service.pending_for(1) == 4
    backend.gate.set()
    results = await asyncio.gather(*(h.result for h in handles))
    assert all(r.status == "done" for r in results)
    assert backend.batches == [["a0"], ["a1", "b0"], ["c0"], ["a2", "b1"], ["a3"]]
    assert backend.threads == {"t2f-gpu_0"}  # one worker thread, never the event loop's


async def test_progress_reaches_the_loop_and_eta_uses_measurements() -> None:
    service = JobService(route(FakeBackend(steps=4)))
    handle = service.submit(job("p", 1))
    seen: list[tuple[str, int]] = []
    while not handle.result.done():
        await handle.changed.wait()
        handle.changed.clear()
        if handle.latest is not None:
            seen.append((handle.latest.phase, handle.latest.step))
    assert (await handle.result).status == "done"
    await service.drained()  # the batch's time is recorded once the GPU thread is done with it
    assert seen[0] == ("starting", 0) and ("painting", 4) in seen
    assert 0 < service.batch_times.overall != 10.0  # a measurement has moved the initial guess of 10 s
    # Position 5 with batches of 4: one full batch (no size-4 measurement: the overall average), then its own
    # batch of 1, which a batch of 1 has been measured at.
    assert service.max_batch == 4 and set(service.batch_times.by_size) == {1}
    assert service.eta_seconds(5) == pytest.approx(service.batch_times.overall + service.batch_times.by_size[1])


async def test_eta_counts_each_batch_size_at_its_own_measured_time() -> None:
    service = JobService(route(FakeBackend()), max_batch=8)
    await service.warm_up(lambda: {1: 0.25, 2: 0.5, 4: 0.8, 8: 1.1})  # seeds, as t2f.serve.warmup.warm_up returns
    assert service.eta_seconds(1) == pytest.approx(0.25)
    assert service.eta_seconds(3) == pytest.approx(0.8)  # a batch of 3 is padded to the bucket of 4
    assert service.eta_seconds(19) == pytest.approx(2 * 1.1 + 0.8)  # two full batches of 8, then 3
    service.batch_times.record(1, 0.45)  # the first real batch replaces the 2-step seed; later ones average
    service.batch_times.record(1, 0.55)
    assert service.batch_times.by_size[1] == pytest.approx(0.7 * 0.45 + 0.3 * 0.55)
    assert service.batch_times.estimate(16) == service.batch_times.overall  # never measured: the overall


async def test_cancel_waiting_and_running_jobs() -> None:
    backend = FakeBackend(steps=50)
    backend.gate.clear()
    service = JobService(route(backend), max_batch=1)
    running = service.submit(job("r", 1))
    waiting = service.submit(job("w", 2))
    await asyncio.sleep(0.05)
    assert service.cancel("w") == "stopped" and (await waiting.result).status == "cancelled"
    assert service.cancel("r") == "stopping"  # painting: it stops at the next step
    backend.gate.set()
    assert (await running.result).status == "cancelled"
    assert service.cancel("r") == service.cancel("nope") == "unknown"
    assert backend.batches == [["r"]]


async def test_a_crashing_batch_fails_its_jobs_and_the_worker_goes_on() -> None:
    backend = FakeBackend()
    backend.crash_on = {"bad"}
    service = JobService(route(backend), max_batch=1)
    bad, good = service.submit(job("bad", 1)), service.submit(job("good", 2))
    bad_result, good_result = await bad.result, await good.result
    assert bad_result.status == "failed" and bad_result.user_message == FAILED.format(job_id="bad")
    assert "Traceback" not in bad_result.user_message
    assert good_result.status == "done"


async def test_timeout_stops_the_job_with_a_message() -> None:
    backend = FakeBackend(steps=1000)
    backend.gate.clear()
    service = JobService(route(backend), job_timeout_s=0.2)
    handle = service.submit(job("slow", 1))
    threading.Timer(0.4, backend.gate.set).start()
    result = await handle.result
    assert result.status == "timeout"
    assert result.user_message.startswith("Your face took longer than") and result.user_message.endswith("Try again.")


async def test_capacity_and_shutdown_keep_waiting_jobs() -> None:
    backend = FakeBackend()
    backend.gate.clear()
    service = JobService(route(backend), capacity=2, max_batch=1)
    first = service.submit(job("1", 1))
    await asyncio.sleep(0.05)
    service.submit(job("2", 2))
    service.submit(job("3", 3))
    with pytest.raises(QueueFull) as caught:
        service.submit(job("4", 4))
    assert caught.value.user_message.startswith("The queue is full (2 faces waiting)")
    threading.Timer(0.1, backend.gate.set).start()
    waiting = await service.shutdown(timeout_s=5)
    assert (await first.result).status == "done"
    assert [j.job_id for j in waiting] == ["2", "3"]
    with pytest.raises(QueueFull, match="restarting"):
        service.submit(job("5", 5))


async def test_pause_holds_jobs_until_resume() -> None:
    service = JobService(route(FakeBackend()))
    service.pause()
    handle = service.submit(job("x", 1))
    await asyncio.sleep(0.05)
    assert not handle.result.done() and service.position("x") == 1
    service.resume()
    assert (await handle.result).status == "done"


async def test_file_writing_overlaps_the_next_batch() -> None:
    second_batch_started = threading.Event()
    export_threads: set[str] = set()

    class ExportingBackend(FakeBackend):
        def paint(self, jobs, watch):  # type: ignore[no-untyped-def]
            if len(self.batches) == 1:
                second_batch_started.set()
            return super().paint(jobs, watch)

        def export(self, job: FaceJob) -> JobResult:
            export_threads.add(threading.current_thread().name)
            # Only finishes once the GPU thread has moved on to the next batch.
            assert second_batch_started.wait(5), "the next batch did not start while this one was exporting"
            return JobResult(job.job_id, JobStatus.DONE, files={"face.obj": b"v 0 0 0\n"})

    service = JobService(route(ExportingBackend()), max_batch=1)
    first, second = service.submit(job("one", 1)), service.submit(job("two", 2))
    assert service.pending_for(1) == 1
    results = await asyncio.gather(first.result, second.result)
    assert [r.files for r in results] == [{"face.obj": b"v 0 0 0\n"}] * 2
    assert export_threads == {"t2f-cpu_0"}


async def test_a_cancel_while_the_files_are_written_is_too_late_and_the_face_is_delivered() -> None:
    files = SlowFiles()
    writing, release = files.writing, files.release
    service = JobService(route(files))
    handle = service.submit(job("late", 1))
    assert await asyncio.to_thread(writing.wait, 5)
    assert service.cancel("late") == "too late"
    release.set()
    assert (await handle.result).status == "done"  # what the member was told: it will be delivered


async def test_a_cancel_before_the_files_begin_stops_the_job() -> None:
    painted, release = threading.Event(), threading.Event()

    class HeldPainter(FakeBackend):
        def paint(self, jobs, watch):  # type: ignore[no-untyped-def]
            outcomes = super().paint(jobs, watch)
            painted.set()
            assert release.wait(5)  # the GPU thread holds the job, painted, until the member has cancelled
            return outcomes

    backend = HeldPainter(steps=1)
    service = JobService(route(backend))
    handle = service.submit(job("early", 1))
    assert await asyncio.to_thread(painted.wait, 5)
    assert service.cancel("early") == "stopping"
    release.set()
    result = await handle.result
    assert result.status == "cancelled" and result.files == {}  # no files were written for it


async def test_a_withdrawn_job_is_never_delivered_even_once_its_files_are_being_written() -> None:
    files = SlowFiles()
    writing, release = files.writing, files.release
    service = JobService(route(files))
    late, waiting = service.submit(job("late", 1)), service.submit(job("waiting", 2))
    assert await asyncio.to_thread(writing.wait, 5)
    ended = service.withdraw("late")
    assert ended is late.result and service.withdraw("unknown") is None
    release.set()
    result = await ended
    assert result.status == "cancelled" and result.withdrawn and result.files == {}  # made, and dropped
    assert (await waiting.result).status == "done" and not (await waiting.result).withdrawn  # another member's
    assert service.withdraw("late") is None  # over
