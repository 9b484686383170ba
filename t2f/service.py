"""The job service: a fair queue in front of one GPU worker thread.

``submit`` -> progress -> result is the whole interface, so another backend (a distributed engine)
can replace :class:`~t2f.backend.LocalFaceBackend`. Jobs wait in per-user queues served round
robin; the worker takes up to ``max_batch`` waiting jobs of the same shape at once. GPU work runs
on one executor thread; progress and results come back to the event loop with
``call_soon_threadsafe``. No task waits while the queue is empty: a drain task exists only while
there is work, which also makes shutdown simple.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from t2f.errors import T2FError
from t2f.text2img import FaceRequest

log = logging.getLogger(__name__)
OUTPUTS = ("obj", "textured", "glb")
FAILED = "Something went wrong while making your face (job {job_id}). The team has been told; please try again."


class QueueFull(T2FError):
    """The queue is at capacity."""


@dataclass(frozen=True)
class JobRequest:
    """A face to make: the generation request plus who asked and what they want back."""

    job_id: str
    user_id: int
    face: FaceRequest
    output: str = "obj"  # one of OUTPUTS
    guild_id: int | None = None
    channel_id: int | None = None
    max_file_bytes: int = 25 * 1024 * 1024  # the chat's per-file upload limit


@dataclass(frozen=True)
class JobProgress:
    """Where a job is: ``phase`` is painting or reconstructing; ``preview`` is a small (h, w, 3) uint8 image."""

    job_id: str
    phase: str
    step: int = 0
    total: int = 0
    preview: np.ndarray | None = None


@dataclass(frozen=True)
class JobResult:
    """How a job ended.

    ``status`` is done, withheld, failed, cancelled or timeout; ``files`` maps names to bytes (only
    when done); ``user_message`` is a sentence for the user when it did not finish.
    """

    job_id: str
    status: str
    files: dict[str, bytes] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    user_message: str | None = None
    seconds: float = 0.0
    # The CPU-side rest of a job (writing files), run off the GPU thread while the next batch paints.
    export: Callable[[], JobResult] | None = field(default=None, compare=False, repr=False)


class FaceBackend(Protocol):
    """Runs a batch on the worker thread. Must call ``report`` for progress and honour ``cancelled``."""

    def run_batch(
        self, jobs: Sequence[JobRequest], report: Callable[[JobProgress], None], cancelled: Callable[[str], bool]
    ) -> list[JobResult]: ...


class JobHandle:
    """The caller's view of one job: its result future and its latest progress."""

    def __init__(self, job: JobRequest, loop: asyncio.AbstractEventLoop) -> None:
        self.job = job
        self.result: asyncio.Future[JobResult] = loop.create_future()
        self.latest: JobProgress | None = None
        self.started = False
        self.changed = asyncio.Event()
        self._on_start: list[Callable[[], None]] = []

    def when_active(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on the event loop when the worker takes this job, or when it ends without
        starting (cancelled while waiting); at once if either already happened.

        Followers of a job start here, so nothing waits on a job that is only queued.
        """
        if self.started or self.result.done():
            callback()
        else:
            self._on_start.append(callback)

    def _activate(self) -> None:
        callbacks, self._on_start = self._on_start, []
        for callback in callbacks:
            callback()

    def _start(self) -> None:
        self.started = True
        self._activate()

    def _update(self, progress: JobProgress) -> None:
        self.latest = progress
        self.changed.set()

    def _finish(self, result: JobResult) -> None:
        if not self.result.done():
            self.result.set_result(result)
        self.changed.set()
        self._activate()


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
    ) -> None:
        self.backend = backend
        self.max_batch = max_batch
        self.capacity = capacity
        self.job_timeout_s = job_timeout_s
        self.executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="t2f-gpu")
        self.cpu_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="t2f-cpu")
        self._exporting: dict[str, tuple[JobHandle, asyncio.Future[JobResult]]] = {}
        self.paused = False  # every server's jobs held (shutdown, or an operator)
        self._paused_guilds: set[int] = set()  # servers whose moderators hold their own jobs
        self.seconds_per_batch = 10.0  # replaced by measurements (moving average) as batches finish
        self._queues: dict[int, deque[JobHandle]] = {}
        self._turns: deque[int] = deque()  # users in round-robin order
        self._handles: dict[str, JobHandle] = {}
        self._running: list[JobHandle] = []
        self._cancel: set[str] = set()
        self._drain: asyncio.Task[None] | None = None
        self._closing = False

    # -- queries -----------------------------------------------------------------------------------
    def queued(self) -> list[JobHandle]:
        """Waiting jobs in the order the worker will start them (round robin across users)."""
        queues = {user: list(q) for user, q in self._queues.items()}
        order, turns = [], deque(self._turns)
        while turns:
            user = turns.popleft()
            if queues.get(user):
                order.append(queues[user].pop(0))
                turns.append(user)
        return order

    def runnable(self) -> list[JobHandle]:
        """Waiting jobs that may start now (their server is not paused), in the order they will."""
        return [handle for handle in self.queued() if not self.is_paused(handle.job.guild_id)]

    def is_paused(self, guild_id: int | None) -> bool:
        """Whether this server's waiting jobs are held (by its moderators, or by a service-wide pause)."""
        return self.paused or (guild_id is not None and guild_id in self._paused_guilds)

    def running(self) -> list[JobHandle]:
        return list(self._running)

    def pending_for(self, user_id: int) -> int:
        """Jobs of this user waiting, running or writing their files."""
        busy = [*self._running, *(h for h, _ in self._exporting.values())]
        return len(self._queues.get(user_id, ())) + sum(h.job.user_id == user_id for h in busy)

    def position(self, job_id: str) -> int:
        """1-based place in the queue (0 once running or finished).

        Held jobs of other servers do not count; a held job counts its place as if its server resumed now.
        """
        handle = self._handles.get(job_id)
        if handle is None:
            return 0
        order = self.queued() if self.is_paused(handle.job.guild_id) else self.runnable()
        return next((index for index, queued in enumerate(order, start=1) if queued is handle), 0)

    def eta_seconds(self, position: int) -> float:
        """Rough wait for the job at ``position``: batches ahead (its own included) x the measured batch time."""
        batches = -(-position // self.max_batch) + (1 if self._running else 0)
        return batches * self.seconds_per_batch

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
        if not resumed and len(self.queued()) >= self.capacity:
            raise QueueFull(f"The queue is full ({self.capacity} faces waiting); please try again in a few minutes.")
        if job.output not in OUTPUTS:
            raise T2FError(f"Unknown output format {job.output!r}; use one of {', '.join(OUTPUTS)}.")
        handle = JobHandle(job, asyncio.get_running_loop())
        self._handles[job.job_id] = handle
        if job.user_id not in self._queues or not self._queues[job.user_id]:
            self._queues.setdefault(job.user_id, deque())
            if job.user_id not in self._turns:
                self._turns.append(job.user_id)
        self._queues[job.user_id].append(handle)
        self._kick()
        return handle

    def cancel(self, job_id: str) -> bool:
        """Cancel a waiting job at once, or a running one at its next denoising step. False if unknown or over."""
        handle = self._handles.get(job_id)
        if handle is None or handle.result.done():
            return False
        queue = self._queues.get(handle.job.user_id)
        if queue is not None and handle in queue:
            queue.remove(handle)
            self._finish(handle, JobResult(job_id, "cancelled", user_message="Cancelled."))
            return True
        self._cancel.add(job_id)
        return True

    def pause(self, guild_id: int | None = None) -> None:
        """Hold the waiting jobs of one server, or of every server when ``guild_id`` is None.

        Running jobs finish; new ones are accepted and wait until :meth:`resume`. Other servers'
        jobs go on: one server's moderators cannot stop the bot for everyone.
        """
        if guild_id is None:
            self.paused = True
        else:
            self._paused_guilds.add(guild_id)

    def resume(self, guild_id: int | None = None) -> None:
        """Undo :meth:`pause` for the same ``guild_id`` (None: the service-wide pause)."""
        if guild_id is None:
            self.paused = False
        else:
            self._paused_guilds.discard(guild_id)
        self._kick()

    async def warm_up(self, run: Callable[[], object]) -> float:
        """Run ``run`` once on the worker thread (model warm-up); its time seeds the ETA estimate."""
        started = time.perf_counter()
        await asyncio.get_running_loop().run_in_executor(self.executor, run)
        self.seconds_per_batch = time.perf_counter() - started
        return self.seconds_per_batch

    async def shutdown(self, *, timeout_s: float = 30.0) -> list[JobRequest]:
        """Stop taking jobs, let the running batch finish (or cancel it after ``timeout_s``).

        Returns the jobs still waiting, for the caller to persist; their futures are left pending.
        """
        self._closing = True
        self.paused = True
        if self._drain is not None and not self._drain.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._drain), timeout_s)
            except TimeoutError:
                self._cancel.update(h.job.job_id for h in self._running)
                await self._drain
        if self._exporting:
            await asyncio.wait([future for _, future in self._exporting.values()], timeout=timeout_s)
        waiting = [h.job for h in self.queued()]
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.cpu_executor.shutdown(wait=False, cancel_futures=True)
        return waiting

    # -- worker ------------------------------------------------------------------------------------
    def _kick(self) -> None:
        if self.runnable() and (self._drain is None or self._drain.done()):
            self._drain = asyncio.get_running_loop().create_task(self._drain_queue(), name="t2f-drain")

    def _take_batch(self) -> list[JobHandle]:
        """The next job in round-robin order plus up to max_batch - 1 more of the same shape, fairly."""
        order = self.runnable()
        shape = _shape(order[0].job)
        batch = [h for h in order if _shape(h.job) == shape][: self.max_batch]
        for handle in batch:
            self._queues[handle.job.user_id].remove(handle)
        # The users served go to the back of the line.
        for user in dict.fromkeys(h.job.user_id for h in batch):
            self._turns.remove(user)
            if self._queues[user]:
                self._turns.append(user)
            else:
                del self._queues[user]
        return batch

    async def _drain_queue(self) -> None:
        loop = asyncio.get_running_loop()
        while self.runnable():
            batch = self._take_batch()
            self._running = batch
            for handle in batch:
                handle._start()
                handle._update(JobProgress(handle.job.job_id, "starting"))
            by_id = {h.job.job_id: h for h in batch}

            def report(progress: JobProgress, by_id: dict[str, JobHandle] = by_id) -> None:
                handle = by_id.get(progress.job_id)
                if handle is not None:
                    loop.call_soon_threadsafe(handle._update, progress)

            started = time.perf_counter()
            jobs = [h.job for h in batch]
            future = loop.run_in_executor(self.executor, self._run_batch, jobs, report)
            timed_out = False
            try:
                results = await asyncio.wait_for(asyncio.shield(future), self.job_timeout_s)
            except TimeoutError:
                timed_out = True
                self._cancel.update(by_id)  # the backend stops at its next step
                results = await future
            elapsed = time.perf_counter() - started
            self.seconds_per_batch = 0.7 * self.seconds_per_batch + 0.3 * elapsed
            for handle, result in zip(batch, results, strict=True):
                if timed_out and result.status != "done":
                    minutes = self.job_timeout_s / 60
                    message = f"Your face took longer than {minutes:g} minutes and was stopped. Try again."
                    result = JobResult(handle.job.job_id, "timeout", user_message=message)
                if result.export is not None and not timed_out:
                    self._export_later(handle, result.export)
                else:
                    self._finish(handle, result)
            self._running = []

    def _export_later(self, handle: JobHandle, export: Callable[[], JobResult]) -> None:
        """Write a job's files on the CPU thread; the GPU worker goes on with the next batch meanwhile."""
        handle._update(JobProgress(handle.job.job_id, "exporting"))
        job_id = handle.job.job_id

        def run() -> JobResult:
            try:
                return export()
            except Exception:
                log.exception("writing the files of job %s failed", job_id)
                return JobResult(job_id, "failed", user_message=FAILED.format(job_id=job_id))

        future = asyncio.get_running_loop().run_in_executor(self.cpu_executor, run)
        self._exporting[job_id] = (handle, future)

        def done(finished: asyncio.Future[JobResult]) -> None:
            self._exporting.pop(job_id, None)
            self._finish(handle, finished.result())

        future.add_done_callback(done)

    def _run_batch(self, jobs: list[JobRequest], report: Callable[[JobProgress], None]) -> list[JobResult]:
        """On the worker thread: run the backend; a crash fails the batch's jobs, never the worker."""
        try:
            return self.backend.run_batch(jobs, report, self._cancel.__contains__)
        except Exception:
            log.exception("batch %s failed", [j.job_id for j in jobs])
            return [JobResult(j.job_id, "failed", user_message=FAILED.format(job_id=j.job_id)) for j in jobs]

    def _finish(self, handle: JobHandle, result: JobResult) -> None:
        self._cancel.discard(handle.job.job_id)
        self._handles.pop(handle.job.job_id, None)
        handle._finish(result)


def _shape(job: JobRequest) -> tuple[int, float, int]:
    """Jobs share a denoising loop only when steps, guidance and size match."""
    return (job.face.steps, job.face.guidance, job.face.size)
