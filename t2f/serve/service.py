"""The job service: a fair queue in front of the route (paint -> faces -> files, :mod:`t2f.serve.route`).

``submit`` -> progress -> result is the whole interface the bot and the web app use. Jobs wait in
per-member lines served round robin (:class:`~t2f.serve.queue.JobQueue`); the GPU thread takes up to
``max_batch`` waiting jobs of one shape and paints them together; then each job goes on alone, to the
faces stage and to a files thread, the moment its own work is done, while the GPU paints the next batch.
The service keeps the queue, fairness, timeouts, cancellation (one meaning at every stage) and health;
what a stage does is the stage's. Progress and results come back to the event loop with
``call_soon_threadsafe``. No task waits while the queue is empty: a drain task exists only while there is
work, which also makes shutdown simple.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from t2f.errors import T2FError
from t2f.serve.after_gpu import AfterGpu
from t2f.serve.eta import BatchTimes
from t2f.serve.joblog import JobEvent, log_job
from t2f.serve.jobs import (
    CANCELLED,
    MESH_FORMATS,
    CancelAnswer,
    FaceJob,
    JobPhase,
    JobProgress,
    JobRequest,
    JobResult,
    JobStatus,
    Outcome,
    QueueFull,
    Stage,
    failed,
    timed_out,
)
from t2f.serve.metrics import ServiceMetrics
from t2f.serve.queue import JobHandle, JobQueue
from t2f.serve.route import Route
from t2f.serve.watch import StageWatch

log = logging.getLogger(__name__)


class JobService:
    """Queue, fairness, batching, timeouts and cancellation around a :class:`~t2f.serve.route.Route`.

    Parameters
    ----------
    route : the stages and where they run.
    max_batch : most jobs painted together.
    capacity : most jobs waiting at once.
    job_timeout_s : a batch painting longer is stopped at its next step; a job still without its face or
        files this long after painting is told it timed out.
    preview_interval_s : least seconds between two step previews of a job (its messages are edited no
        more often than this, so more previews would never be seen).
    """

    def __init__(
        self,
        route: Route,
        *,
        max_batch: int = 4,
        capacity: int = 50,
        job_timeout_s: float = 600.0,
        metrics: ServiceMetrics | None = None,
        preview_interval_s: float = 2.5,
    ) -> None:
        self.metrics = metrics or ServiceMetrics()  # a private registry nobody scrapes, when none is given
        self.metrics.watch_queue(self.queued, self.runnable)
        self.route = route
        self.max_batch = max_batch
        self.capacity = capacity
        self.job_timeout_s = job_timeout_s
        self.preview_interval_s = preview_interval_s
        self.gpu = ThreadPoolExecutor(max_workers=1, thread_name_prefix="t2f-gpu")
        self._cancel: set[str] = set()
        self._withdrawn: set[str] = set()  # jobs whose results must not be delivered (their member was forgotten)
        self.after_gpu = AfterGpu(
            route,
            gpu=self.gpu,
            job_timeout_s=job_timeout_s,
            cancelled=self._cancel,
            on_outcome=self._dispatch,
            on_overdue=lambda handle: self._finish(handle, timed_out(handle.job.job_id, self.job_timeout_s)),
        )
        self.batch_times = BatchTimes()  # seeded by the warm-up, then measured as batches finish
        self.painting_s = 0.0  # seconds the GPU thread spent painting, for its busy fraction
        self.stuck_margin_s = 60.0  # past its timeout by this much, a batch or a face means a stuck thread
        self.warmed = False  # the models ran once (warm-up or a first batch): see health()
        self._queue = JobQueue()
        self._handles: dict[str, JobHandle] = {}
        self._running: list[JobHandle] = []
        self._drain: asyncio.Task[None] | None = None
        self._closing = False
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
        """Jobs of this member waiting, painting, or having their face found or files written."""
        busy = {*self._running, *self.after_gpu.handles()}
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
        outlives the job timeout by a minute means the GPU thread is stuck (the timeout stops a batch at its
        next denoising step, so a live thread never gets there); so does a face still being found, or its
        files written, a minute past the timeout (the faces or a files thread is stuck).
        """
        if self._closing:
            return False, "shutting down"
        drain = self._drain
        if drain is not None and drain.done() and not drain.cancelled() and drain.exception() is not None:
            return False, "the worker stopped after an unexpected error"
        now = time.monotonic()
        busy_s = now - self._batch_started if self._running and self._batch_started else 0.0
        if busy_s > self.job_timeout_s + self.stuck_margin_s:
            return False, f"the worker has been on one batch for {busy_s:.0f} s"
        past_s = now - (self.after_gpu.oldest() or now)
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

    def cancel(self, job_id: str) -> CancelAnswer:
        """Stop a job: at once while it waits, at its next denoising step while painted, before its face or
        files are made after that; once its files are being written it is too late (it will be delivered)."""
        handle = self._handles.get(job_id)
        if handle is None or handle.result.done():
            return CancelAnswer.UNKNOWN
        if self._queue.remove(handle):
            self._finish(handle, JobResult(job_id, JobStatus.CANCELLED, user_message=CANCELLED))
            return CancelAnswer.STOPPED
        return CancelAnswer.STOPPING if self.after_gpu.stop(job_id) else CancelAnswer.TOO_LATE

    def withdraw(self, job_id: str) -> asyncio.Future[JobResult] | None:
        """Cancel a job so that nothing of it is delivered (its member asked to be forgotten); returns its
        result to wait for, or None when no such job is under way.

        The result is cancelled and marked ``withdrawn`` (the chat posts nothing for it); unlike :meth:`cancel`, a
        job whose files are already being written ends so too, its files dropped, when they are done.
        """
        handle = self._handles.get(job_id)
        if handle is None or handle.result.done():
            return None
        self._withdrawn.add(job_id)
        self.cancel(job_id)
        return handle.result

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
        """Run ``run`` once on the GPU thread (model warm-up); returns its seconds.

        When ``run`` returns batch size -> seconds (:func:`t2f.serve.warmup.warm_up` does), those seed the
        per-size ETA estimates until real batches of each size replace them; otherwise the warm-up's
        whole time seeds the overall estimate.
        """
        started = time.perf_counter()
        timings = await asyncio.get_running_loop().run_in_executor(self.gpu, run)
        seconds = time.perf_counter() - started
        self.batch_times.seed(timings, seconds)
        self.warmed = True
        self.metrics.warmup_seconds.set(seconds)
        return seconds

    async def shutdown(self, *, timeout_s: float = 30.0) -> list[JobRequest]:
        """Stop taking jobs, let the running batch finish (or cancel it after ``timeout_s``) and the faces
        past the GPU get their files. Returns the jobs still waiting, for the caller to persist; their
        futures are left pending."""
        self._closing = True
        self._queue.hold(None)
        if self._drain is not None and not self._drain.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._drain), timeout_s)
            except TimeoutError:
                self._cancel.update(h.job.job_id for h in self._running)
                await self._drain
        deadline = time.monotonic() + timeout_s
        while (busy := self.after_gpu.running()) and (left := deadline - time.monotonic()) > 0:
            await asyncio.wait(busy, timeout=left)
        waiting = [h.job for h in self.queued()]
        self.gpu.shutdown(wait=False, cancel_futures=True)
        self.after_gpu.shutdown()
        return waiting

    async def drained(self) -> None:
        """Wait until the GPU thread has no batch (nor a batch's faces, where they share its thread) left."""
        if self._drain is not None:
            await asyncio.shield(self._drain)

    # -- the GPU thread ----------------------------------------------------------------------------
    def _kick(self) -> None:
        if self.runnable() and (self._drain is None or self._drain.done()):
            self._drain = asyncio.get_running_loop().create_task(self._drain_queue(), name="t2f-drain")

    async def _drain_queue(self) -> None:
        loop = asyncio.get_running_loop()
        while batch := self._queue.take_batch(self.max_batch):
            self._running = batch
            for handle in batch:
                handle.start()
                log_job(
                    handle.job, JobEvent.STARTED, seconds=time.monotonic() - handle.queued_at, batch_size=len(batch)
                )
                handle.update(JobProgress(handle.job.job_id, JobPhase.STARTING, note=handle.repaint_note))
            self.metrics.batch_started(batch)
            watch = self._watch(loop, batch)
            started = time.perf_counter()
            self._batch_started = time.monotonic()
            future = loop.run_in_executor(self.gpu, self._paint, [h.face_job for h in batch], watch)
            overran = False
            try:
                outcomes = await asyncio.wait_for(asyncio.shield(future), self.job_timeout_s)
            except TimeoutError:
                overran = True
                self._cancel.update(h.job.job_id for h in batch)  # the painter stops at its next step
                outcomes = await future
            painting_s = time.perf_counter() - started
            self.painting_s += painting_s
            self.metrics.painted(painting_s)
            self.warmed = True
            for handle, outcome in zip(batch, outcomes, strict=True):
                if watch.handed_on(handle.job.job_id):
                    continue
                if overran and not (isinstance(outcome, JobResult) and outcome.status == JobStatus.DONE):
                    self._finish(handle, timed_out(handle.job.job_id, self.job_timeout_s))
                else:
                    self._dispatch(handle, outcome)
            if not self.route.faces_thread:  # faces queued behind the painting: the batch ends with them
                await loop.run_in_executor(self.gpu, time.perf_counter)
            self.batch_times.record(len(batch), time.perf_counter() - started)
            self._running = []

    def _watch(self, loop: asyncio.AbstractEventLoop, handles: list[JobHandle]) -> StageWatch:
        return StageWatch(
            loop,
            handles,
            cancelled=self._cancel.__contains__,
            dispatch=self._dispatch,
            preview_interval_s=self.preview_interval_s,
        )

    def _paint(self, jobs: list[FaceJob], watch: StageWatch) -> list[Outcome]:
        """On the GPU thread: the painter; a crash fails the batch's jobs, never the worker."""
        try:
            return list(self.route.paint.paint(jobs, watch))
        except Exception:
            log.exception("batch %s failed", [job.job_id for job in jobs])
            return [failed(job.job_id) for job in jobs]

    # -- after the GPU: each job alone (t2f.serve.after_gpu runs the stages) ------------------------
    def _dispatch(self, handle: JobHandle, outcome: Outcome) -> None:
        """Send a job where it needs to go next: its end, back to the painter, its face, or its files."""
        if handle.result.done():  # timed out, or cancelled meanwhile: nothing more
            return
        if isinstance(outcome, JobResult):
            self._finish(handle, outcome)
        elif outcome.next_stage is Stage.PAINT:
            self._repaint(handle, outcome)
        elif outcome.next_stage is Stage.FILES or self.route.faces is not None:
            self._after_gpu_step(handle, outcome)
        else:
            log.error("job %s needs a faces stage, and the route has none", handle.job.job_id)
            self._finish(handle, failed(handle.job.job_id))

    def _repaint(self, handle: JobHandle, job: FaceJob) -> None:
        """Queue the job again with its next seed; it joins the next batch, beside other members' jobs."""
        handle.job, handle.repaint_note, handle.stage = job.request, job.repaint_note, None
        note = job.repaint_note or ""
        self.metrics.repainted(note)
        handle.update(JobProgress(handle.job.job_id, JobPhase.REPAINTING, note=note))
        self._queue.add_front(handle)
        self._kick()  # a repaint from the faces thread may come after the worker found the queue empty

    def _after_gpu_step(self, handle: JobHandle, job: FaceJob) -> None:
        """Find the job's face or write its files, on that stage's thread; the GPU paints on meanwhile."""
        if job.next_stage is Stage.FILES:
            handle.update(JobProgress(job.job_id, JobPhase.EXPORTING))
            log_job(handle.job, JobEvent.EXPORTING, seconds=time.monotonic() - (handle.started_at or handle.queued_at))
        self.after_gpu.run(handle, job, self._watch(asyncio.get_running_loop(), [handle]))

    def _finish(self, handle: JobHandle, result: JobResult) -> None:
        job_id = handle.job.job_id
        if job_id in self._withdrawn:
            self._withdrawn.discard(job_id)
            result = JobResult(job_id, JobStatus.CANCELLED, user_message=CANCELLED, withdrawn=True)
        self._cancel.discard(job_id)
        self.after_gpu.forget(job_id)
        self._handles.pop(job_id, None)
        if not handle.result.done():
            log_job(handle.job, JobEvent.FINISHED, seconds=time.monotonic() - handle.queued_at, status=result.status)
            self.metrics.job_finished(result)
        handle.finish(result)
