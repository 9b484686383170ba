"""After the GPU: each job on its own, through the faces stage and the files stage, on their threads.

The service hands a job here the moment the painter (or the faces stage) is done with it, and gets each
stage's outcome back on the event loop. This keeps the jobs in flight: since when (for the service's
health), the job timeout counted from when the job left the GPU, and which jobs are having their files
written (too late to cancel).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field

from t2f.serve.jobs import CANCELLED, FaceJob, JobResult, JobStatus, Outcome, Stage, failed, timed_out
from t2f.serve.queue import JobHandle
from t2f.serve.route import Route, Watch

log = logging.getLogger(__name__)


@dataclass
class InFlight:
    """A job past the GPU: since when (monotonic), the stage running for it, and its timeout's timer."""

    handle: JobHandle
    since: float
    timer: asyncio.TimerHandle | None = None
    future: asyncio.Future[Outcome] | None = field(default=None, repr=False)


class AfterGpu:
    """Runs the faces and files stages of the jobs the GPU is done with.

    Parameters
    ----------
    route : the stages, and whether the faces stage has a thread of its own.
    gpu : the GPU thread's executor, where the faces stage queues when it has no thread of its own.
    job_timeout_s : how long after leaving the GPU a job may take before its member is told it timed out.
    cancelled : the service's set of jobs asked to stop (read here, added to by :meth:`stop`).
    on_outcome : called on the event loop with each stage's outcome.
    on_overdue : called on the event loop when a job outlives ``job_timeout_s`` here.
    """

    def __init__(
        self,
        route: Route,
        *,
        gpu: Executor,
        job_timeout_s: float,
        cancelled: set[str],
        on_outcome: Callable[[JobHandle, Outcome], None],
        on_overdue: Callable[[JobHandle], None],
    ) -> None:
        self.route = route
        self.faces_executor = ThreadPoolExecutor(1, thread_name_prefix="t2f-faces") if route.faces_thread else gpu
        self.files_executor = ThreadPoolExecutor(route.files_threads, thread_name_prefix="t2f-cpu")
        self.job_timeout_s = job_timeout_s
        self._cancelled = cancelled
        self._on_outcome = on_outcome
        self._on_overdue = on_overdue
        self._jobs: dict[str, InFlight] = {}
        self._writing: set[str] = set()  # jobs whose files are being written
        self._lock = threading.Lock()  # a cancel and the start of a job's files never cross

    # -- what the service asks -----------------------------------------------------------------------
    def handles(self) -> list[JobHandle]:
        """The jobs here whose members have not been answered yet."""
        return [job.handle for job in self._jobs.values() if not job.handle.result.done()]

    def oldest(self) -> float | None:
        """Since when (monotonic) the longest-waiting job here left the GPU; ``None`` when there is none."""
        return min((job.since for job in self._jobs.values()), default=None)

    def running(self) -> list[asyncio.Future[Outcome]]:
        """The stages still running (shutdown waits for them)."""
        return [job.future for job in self._jobs.values() if job.future is not None and not job.future.done()]

    def stop(self, job_id: str) -> bool:
        """Ask a job to stop before its next stage begins; ``False`` when its files are already being written."""
        with self._lock:
            if job_id in self._writing:
                return False
            self._cancelled.add(job_id)
            return True

    def forget(self, job_id: str) -> None:
        """The job has ended: it is no longer being written."""
        with self._lock:
            self._writing.discard(job_id)

    def shutdown(self) -> None:
        for executor in (self.faces_executor, self.files_executor):
            executor.shutdown(wait=False, cancel_futures=True)

    # -- running a stage -----------------------------------------------------------------------------
    def run(self, handle: JobHandle, job: FaceJob, watch: Watch) -> None:
        """Run the stage ``job`` needs next (its face, or its files) on that stage's thread."""
        loop = asyncio.get_running_loop()
        job_id = job.job_id
        entry = self._jobs.get(job_id)
        if entry is None:
            entry = self._jobs[job_id] = InFlight(handle, time.monotonic())
            entry.timer = loop.call_later(self.job_timeout_s, self._overdue, entry)
        stage = handle.stage = job.next_stage
        if stage is Stage.FILES:
            future = loop.run_in_executor(self.files_executor, self._write, handle, job)
        else:
            future = loop.run_in_executor(self.faces_executor, self._find, handle, job, watch)
        entry.future = future

        def done(finished: asyncio.Future[Outcome]) -> None:
            outcome = failed(job_id) if finished.cancelled() else finished.result()  # cancelled: shut down
            self._on_outcome(handle, outcome)
            if entry.future is finished:  # it went no further here: over, or back to the painter
                if entry.timer is not None:
                    entry.timer.cancel()
                if self._jobs.get(job_id) is entry:
                    del self._jobs[job_id]

        future.add_done_callback(done)

    def _find(self, handle: JobHandle, job: FaceJob, watch: Watch) -> Outcome:
        """On the faces thread: the faces stage; a crash fails this job alone."""
        if handle.result.done():  # told it timed out while it waited behind a stuck face: no work
            return timed_out(job.job_id, self.job_timeout_s)
        assert self.route.faces is not None
        try:
            return self.route.faces.find(job, watch)
        except Exception:
            log.exception("finding the face of job %s failed", job.job_id)
            return failed(job.job_id)

    def _write(self, handle: JobHandle, job: FaceJob) -> Outcome:
        """On a files thread: the files stage, unless the job was cancelled or timed out before it began."""
        job_id = job.job_id
        if handle.result.done():  # told it timed out while it queued behind a stuck export: no files
            return timed_out(job.job_id, self.job_timeout_s)
        with self._lock:
            if job_id in self._cancelled:
                return JobResult(job_id, JobStatus.CANCELLED, user_message=CANCELLED)
            self._writing.add(job_id)
        try:
            return self.route.files.write(job)
        except Exception:
            log.exception("writing the files of job %s failed", job_id)
            return failed(job_id)

    def _overdue(self, entry: InFlight) -> None:
        handle = entry.handle
        if entry.future is not None and not entry.future.done() and not handle.result.done():
            log.error(
                "job %s still had no face or files %.0f s after painting; a faces or files thread may be stuck",
                handle.job.job_id,
                self.job_timeout_s,
            )
            self._on_overdue(handle)
