"""The job service: a fair queue in front of one GPU worker thread.

``submit`` -> progress -> result is the whole interface, so another backend (a distributed engine)
can replace :class:`~t2f.serve.backend.LocalFaceBackend`. Jobs wait in per-member lines served round
robin (:class:`~t2f.serve.queue.JobQueue`); the worker takes up to ``max_batch`` waiting jobs of the
same shape at once. GPU work runs on one executor thread; a finished face's files are written on a
second (CPU) thread while the GPU paints the next batch. Progress and results come back to the event
loop with ``call_soon_threadsafe``. No task waits while the queue is empty: a drain task exists only
while there is work, which also makes shutdown simple.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from t2f.errors import T2FError
from t2f.serve.eta import BatchTimes
from t2f.serve.joblog import JobEvent, log_job
from t2f.serve.jobs import (
    MESH_FORMATS,
    FinishedFace,
    JobPhase,
    JobProgress,
    JobRequest,
    JobResult,
    JobStatus,
    Outcome,
    Pending,
    QueueFull,
    Repaint,
    failed,
    timed_out,
)
from t2f.serve.metrics import ServiceMetrics
from t2f.serve.queue import JobHandle, JobQueue, PastGpu

log = logging.getLogger(__name__)


class FaceBackend(Protocol):
    """Runs a batch on the worker thread. Must call ``report`` for progress and honour ``cancelled``.

    A job's entry is its final :class:`JobResult`, a :class:`FinishedFace` whose files the service then
    asks :meth:`export` for on its CPU thread, a :class:`Repaint` that the service queues again, or a
    :class:`Pending` face still being found on the backend's own thread (the worker goes on meanwhile).
    """

    def run_batch(
        self, jobs: Sequence[JobRequest], report: Callable[[JobProgress], None], cancelled: Callable[[str], bool]
    ) -> Sequence[Outcome | Pending]: ...

    def export(self, finished: FinishedFace) -> JobResult: ...


class JobService:
    """Queue, fairness, batching, timeouts and cancellation around a :class:`FaceBackend`."""

    def __init__(
        self,
        backend: FaceBackend,
        *,
        max_batch: int = 4,
        capacity: int = 50,
        job_timeout_s: float = 600.0,
        executor: ThreadPoolExecutor | None = None,
        metrics: ServiceMetrics | None = None,
        export_threads: int = 1,
    ) -> None:
        self.metrics = metrics or ServiceMetrics()  # a private registry nobody scrapes, when none is given
        self.metrics.watch_queue(self.queued)
        self.backend = backend
        self.max_batch = max_batch
        self.capacity = capacity
        self.job_timeout_s = job_timeout_s
        self.executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="t2f-gpu")
        # files are written here while the GPU paints: several threads keep up with a fast GPU's bursts
        self.cpu_executor = ThreadPoolExecutor(max_workers=export_threads, thread_name_prefix="t2f-cpu")
        self.batch_times = BatchTimes()  # seeded by the warm-up, then measured as batches finish
        self._queue = JobQueue()
        # jobs past the GPU, until their future is done (also after the member was told it timed out)
        self._past_gpu_jobs: dict[str, PastGpu] = {}
        self.stuck_margin_s = 60.0  # past its timeout by this much, a batch or a face means a stuck thread
        self._handles: dict[str, JobHandle] = {}
        self._running: list[JobHandle] = []
        self._cancel: set[str] = set()
        self._drain: asyncio.Task[None] | None = None
        self._closing = False
        self.warmed = False  # the models ran once (warm-up or a first batch): see health()
        self._batch_started = 0.0  # monotonic time the running batch started

    # -- queries -----------------------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        """Every server's jobs held (shutdown, or an operator)."""
        return self._queue.paused

    def queued(self) -> list[JobHandle]:
        """Waiting jobs in the order the worker will start them (round robin across members)."""
        return self._queue.ordered()

    def runnable(self) -> list[JobHandle]:
        """Waiting jobs that may start now (their server is not paused), in the order they will."""
        return self._queue.runnable()

    def is_paused(self, guild_id: int | None) -> bool:
        """Whether this server's waiting jobs are held (by its moderators, or by a service-wide pause)."""
        return self._queue.is_paused(guild_id)

    def running(self) -> list[JobHandle]:
        return list(self._running)

    def pending_for(self, user_id: int) -> int:
        """Jobs of this member waiting, running or writing their files."""
        busy = [*self._running, *(p.handle for p in self._past_gpu_jobs.values() if not p.handle.result.done())]
        return self._queue.waiting_for(user_id) + sum(h.job.user_id == user_id for h in busy)

    def position(self, job_id: str) -> int:
        """1-based place in the queue (0 once running or finished).

        Held jobs of other servers do not count; a held job counts its place as if its server resumed now.
        """
        handle = self._handles.get(job_id)
        if handle is None:
            return 0
        order = self.queued() if self.is_paused(handle.job.guild_id) else self.runnable()
        return next((index for index, queued in enumerate(order, start=1) if queued is handle), 0)

    def health(self, *, require_warm: bool = True) -> tuple[bool, str]:
        """Whether the worker can take a face now, and why not: ``(True, "ok")`` or ``(False, reason)``.

        Unhealthy while shutting down, after the drain task died of an unexpected error, and (with
        ``require_warm``) until :meth:`warm_up` or a first batch has run the models once. A batch that
        outlives the job timeout by a minute means the worker thread is stuck (the timeout stops a
        batch at its next denoising step, so a live worker never gets there); so does a face still being
        found, or its files written, a minute past the timeout (the faces or an export thread is stuck).
        """
        if self._closing:
            return False, "shutting down"
        drain = self._drain
        if drain is not None and drain.done() and not drain.cancelled() and drain.exception() is not None:
            return False, "the worker stopped after an unexpected error"
        busy_s = time.monotonic() - self._batch_started if self._running and self._batch_started else 0.0
        if busy_s > self.job_timeout_s + self.stuck_margin_s:
            return False, f"the worker has been on one batch for {busy_s:.0f} s"
        past_s = time.monotonic() - min((p.since for p in self._past_gpu_jobs.values()), default=time.monotonic())
        if past_s > self.job_timeout_s + self.stuck_margin_s:
            return False, f"a face has waited {past_s:.0f} s for its face or its files"
        if require_warm and not self.warmed:
            return False, "warming up"
        return True, "ok"

    def eta_seconds(self, position: int) -> float:
        """Rough wait for the job at ``position``: the running batch, full batches ahead, then its own.

        Each batch counts what batches of its size took (:meth:`BatchTimes.estimate`).
        """
        full, rest = divmod(position, self.max_batch)
        estimate = self.batch_times.estimate
        total = full * estimate(self.max_batch) + (estimate(rest) if rest else 0.0)
        return total + (estimate(len(self._running)) if self._running else 0.0)

    # -- commands ----------------------------------------------------------------------------------
    def submit(self, job: JobRequest, *, resumed: bool = False) -> JobHandle:
        """Queue a job and start the worker if idle.

        ``resumed`` jobs (accepted before a restart) are queued whatever the capacity.

        Raises
        ------
        QueueFull
            When ``capacity`` jobs are already waiting, or the service is shutting down.
        """
        if self._closing:
            raise QueueFull("The bot is restarting; please try again in a minute.")
        if not resumed and len(self._queue) >= self.capacity:
            raise QueueFull(f"The queue is full ({self.capacity} faces waiting); please try again in a few minutes.")
        if job.output not in MESH_FORMATS:
            raise T2FError(f"Unknown output format {job.output!r}; use one of {', '.join(MESH_FORMATS)}.")
        handle = JobHandle(job, asyncio.get_running_loop())
        self._handles[job.job_id] = handle
        self._queue.add(handle)
        log_job(job, JobEvent.QUEUED, seconds=0.0, resumed=resumed)
        self._kick()
        return handle

    def cancel(self, job_id: str) -> bool:
        """Cancel a waiting job at once, or a running one at its next denoising step. False if unknown or over."""
        handle = self._handles.get(job_id)
        if handle is None or handle.result.done():
            return False
        if self._queue.remove(handle):
            self._finish(handle, JobResult(job_id, JobStatus.CANCELLED, user_message="Cancelled."))
            return True
        self._cancel.add(job_id)
        return True

    def pause(self, guild_id: int | None = None) -> None:
        """Hold the waiting jobs of one server, or of every server when ``guild_id`` is None.

        Running jobs finish; new ones are accepted and wait until :meth:`resume`. Other servers'
        jobs go on: one server's moderators cannot stop the bot for everyone.
        """
        self._queue.hold(guild_id)

    def resume(self, guild_id: int | None = None) -> None:
        """Undo :meth:`pause` for the same ``guild_id`` (None: the service-wide pause)."""
        self._queue.release(guild_id)
        self._kick()

    async def warm_up(self, run: Callable[[], object]) -> float:
        """Run ``run`` once on the worker thread (model warm-up); returns its seconds.

        When ``run`` returns batch size -> seconds (``LocalFaceBackend.warm_up`` does), those seed the
        per-size ETA estimates until real batches of each size replace them; otherwise the warm-up's
        whole time seeds the overall estimate.
        """
        started = time.perf_counter()
        timings = await asyncio.get_running_loop().run_in_executor(self.executor, run)
        seconds = time.perf_counter() - started
        self.batch_times.seed(timings, seconds)
        self.warmed = True
        self.metrics.warmup_seconds.set(seconds)
        return seconds

    async def shutdown(self, *, timeout_s: float = 30.0) -> list[JobRequest]:
        """Stop taking jobs, let the running batch finish (or cancel it after ``timeout_s``).

        Returns the jobs still waiting, for the caller to persist; their futures are left pending.
        """
        self._closing = True
        self._queue.hold(None)
        if self._drain is not None and not self._drain.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._drain), timeout_s)
            except TimeoutError:
                self._cancel.update(h.job.job_id for h in self._running)
                await self._drain
        deadline = time.monotonic() + timeout_s
        while self._past_gpu_jobs and (left := deadline - time.monotonic()) > 0:  # a found face then writes files
            await asyncio.wait([past.future for past in self._past_gpu_jobs.values()], timeout=left)
        waiting = [h.job for h in self.queued()]
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.cpu_executor.shutdown(wait=False, cancel_futures=True)
        return waiting

    # -- worker ------------------------------------------------------------------------------------
    def _kick(self) -> None:
        if self.runnable() and (self._drain is None or self._drain.done()):
            self._drain = asyncio.get_running_loop().create_task(self._drain_queue(), name="t2f-drain")

    async def _drain_queue(self) -> None:
        loop = asyncio.get_running_loop()
        while batch := self._queue.take_batch(self.max_batch):
            self._running = batch
            for handle in batch:
                handle.start()
                waited = time.monotonic() - handle.queued_at
                log_job(handle.job, JobEvent.STARTED, seconds=waited, batch_size=len(batch))
            self.metrics.batch_started(batch)
            for handle in batch:
                handle.update(JobProgress(handle.job.job_id, JobPhase.STARTING, note=handle.repaint_note))
            by_id = {h.job.job_id: h for h in batch}

            def report(progress: JobProgress, by_id: dict[str, JobHandle] = by_id) -> None:
                handle = by_id.get(progress.job_id)
                if handle is not None:
                    if progress.note is None and handle.repaint_note is not None:  # a repaint says why throughout
                        progress = dataclasses.replace(progress, note=handle.repaint_note)
                    loop.call_soon_threadsafe(handle.update, progress)

            started = time.perf_counter()
            self._batch_started = time.monotonic()
            jobs = [h.job for h in batch]
            future = loop.run_in_executor(self.executor, self._run_batch, jobs, report)
            overran = False
            try:
                results = await asyncio.wait_for(asyncio.shield(future), self.job_timeout_s)
            except TimeoutError:
                overran = True
                self._cancel.update(by_id)  # the backend stops at its next step
                results = await future
            self.batch_times.record(len(batch), time.perf_counter() - started)
            self.warmed = True
            for handle, result in zip(batch, results, strict=True):
                if overran and not (isinstance(result, JobResult) and result.status == JobStatus.DONE):
                    self._finish(handle, timed_out(handle.job.job_id, self.job_timeout_s))
                else:
                    self._dispatch(handle, result)
            self._running = []

    def _dispatch(self, handle: JobHandle, outcome: Outcome | Pending) -> None:
        """Send a job on from what its batch gave: files to write, a repaint, a face still being found, or its end."""
        if isinstance(outcome, FinishedFace):
            self._export_later(handle, outcome)
        elif isinstance(outcome, Repaint):
            self._repaint(handle, outcome)
        elif isinstance(outcome, Pending):
            self._await_face(handle, outcome)
        else:
            self._finish(handle, outcome)

    def _await_face(self, handle: JobHandle, pending: Pending) -> None:
        """Wait, off the worker, for a face the backend is still finding; meanwhile the GPU paints on."""
        job_id = handle.job.job_id
        future = asyncio.wrap_future(pending.outcomes)

        def done(finished_future: asyncio.Future[dict[str, Outcome]]) -> None:
            if handle.result.done() or finished_future.cancelled():  # timed out, or shut down: nothing more
                return
            try:
                outcome: Outcome = finished_future.result()[job_id]
            except Exception:
                log.exception("finding the face of job %s failed", job_id)
                outcome = failed(job_id)
            self._dispatch(handle, outcome)

        self._track_past_gpu(handle, future, done)

    def _track_past_gpu(self, handle: JobHandle, future: asyncio.Future[Any], done: Callable[[Any], None]) -> None:
        """Track a job the GPU is done with until ``future`` ends (then ``done``); after the job timeout the
        member is told it timed out, and the entry stays, for :meth:`health`, until the thread lets go."""
        job_id = handle.job.job_id
        past = PastGpu(handle, future, time.monotonic())
        self._past_gpu_jobs[job_id] = past

        def overdue() -> None:
            if not future.done() and not handle.result.done():
                log.error(
                    "job %s still had no face or files %.0f s after painting; a faces or export thread may be stuck",
                    job_id,
                    self.job_timeout_s,
                )
                self._finish(handle, timed_out(job_id, self.job_timeout_s))

        timer = asyncio.get_running_loop().call_later(self.job_timeout_s, overdue)

        def finished(finished_future: asyncio.Future[Any]) -> None:
            timer.cancel()
            if self._past_gpu_jobs.get(job_id) is past:
                del self._past_gpu_jobs[job_id]
            done(finished_future)

        future.add_done_callback(finished)

    def _repaint(self, handle: JobHandle, repaint: Repaint) -> None:
        """Queue the job again with its next seed; it joins the next batch, beside other members' jobs."""
        handle.job = repaint.job
        handle.repaint_note = repaint.note
        self.metrics.repainted(repaint.note)
        handle.update(JobProgress(handle.job.job_id, JobPhase.REPAINTING, note=repaint.note))
        self._queue.add_front(handle)
        self._kick()  # a repaint from the faces thread may come after the worker found the queue empty

    def _export_later(self, handle: JobHandle, finished: FinishedFace) -> None:
        """Write a job's files on the CPU thread; the GPU worker goes on with the next batch meanwhile."""
        handle.update(JobProgress(handle.job.job_id, JobPhase.EXPORTING))
        log_job(handle.job, JobEvent.EXPORTING, seconds=time.monotonic() - (handle.started_at or handle.queued_at))
        job_id = handle.job.job_id

        def run() -> JobResult:
            if handle.result.done():  # told it timed out while it queued behind a stuck export: no files
                return timed_out(job_id, self.job_timeout_s)
            try:
                return self.backend.export(finished)
            except Exception:
                log.exception("writing the files of job %s failed", job_id)
                return failed(job_id)

        future = asyncio.get_running_loop().run_in_executor(self.cpu_executor, run)

        def done(finished_future: asyncio.Future[JobResult]) -> None:  # cancelled: shut down before it ran
            self._finish(handle, failed(job_id) if finished_future.cancelled() else finished_future.result())

        self._track_past_gpu(handle, future, done)

    def _run_batch(self, jobs: list[JobRequest], report: Callable[[JobProgress], None]) -> list[Outcome | Pending]:
        """On the worker thread: run the backend; a crash fails the batch's jobs, never the worker."""
        try:
            return list(self.backend.run_batch(jobs, report, self._cancel.__contains__))
        except Exception:
            log.exception("batch %s failed", [j.job_id for j in jobs])
            return [failed(j.job_id) for j in jobs]

    def _finish(self, handle: JobHandle, result: JobResult) -> None:
        self._cancel.discard(handle.job.job_id)
        self._handles.pop(handle.job.job_id, None)
        if not handle.result.done():
            log_job(handle.job, JobEvent.FINISHED, seconds=time.monotonic() - handle.queued_at, status=result.status)
            self.metrics.job_finished(result)
        handle.finish(result)
