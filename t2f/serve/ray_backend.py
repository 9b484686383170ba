"""The Ray backend: the route's paint and faces stages on a Ray Serve cluster of GPU workers.

:class:`RayFaceBackend` is the route's painter (:class:`~t2f.serve.route.PaintStage`) on the service's GPU
thread, and it finds the faces too: each batch is split across the replicas (one chunk per replica at
most), every chunk is one streaming call to a :class:`~t2f.serve.ray_deployment.FaceWorker`, progress is
reported as updates arrive, and each job is handed on the moment its face comes back, to have its files
(and its page) written on this machine like any other face.

Serve keeps no queue of its own that survives a replica: a call on a replica that dies fails. So the
client retries here, by job id: a job whose result has arrived is never sent again, and each job
gets exactly one result. A chunk that reached a replica and lost it counts one attempt
(``max_attempts`` at most); a call that reached no replica (cluster unreachable, no worker yet)
waits with backoff, and its members see ``JobPhase.WAITING_FOR_WORKER``. Both stop at the retry
window, inside the interaction's 15-minute lifetime. Ray is imported inside functions only.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from t2f.errors import ConfigError
from t2f.serve.jobs import CANCELLED, FaceJob, JobPhase, JobProgress, JobResult, JobStatus, Outcome, failed
from t2f.serve.ray_deployment import DEPLOYMENT, StagesFactory, WorkerUpdate, face_deployment
from t2f.serve.route import Watch

log = logging.getLogger(__name__)
APP = "t2f"
WORKER_LOST = (
    "The GPU worker making your face stopped {attempts} times (job {job_id}); please try again in a few minutes."
)
NO_WORKER = "No GPU worker was free for {minutes:g} minutes (job {job_id}); please try again later."
UNREACHABLE = (
    "T2F_RAY_ADDRESS={address!r}: no Ray cluster answers there; start the head node (`ray start --head`) "
    "or leave T2F_RAY_ADDRESS empty for a local cluster."
)
RETRY_WINDOW_S = 12 * 60.0  # a job's retries end here: its interaction token lives 15 minutes
REMEMBERED_JOBS = 1000  # how many jobs' replica histories are kept for the log and tests


def check_reachable(address: str, *, timeout_s: float = 5.0) -> None:
    """Fail fast when nothing listens at ``host:port`` (``ray.init`` would retry forever).

    ``auto`` and ``ray://`` addresses are left to Ray. Raises :class:`ConfigError` naming the address.
    """
    if not address or address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"T2F_RAY_ADDRESS={address!r} is not host:port (for example 10.0.0.5:6379).")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError:
        raise ConfigError(UNREACHABLE.format(address=address)) from None


class RayFaceBackend:
    """The service's backend on a Ray Serve deployment (see the module docstring for the retry rules).

    Parameters
    ----------
    handle : the Serve ``DeploymentHandle`` of :class:`~t2f.serve.ray_deployment.FaceWorker` (or a stand-in
        with the same ``options(stream=True).run.remote(jobs)``).
    chunks : most replicas one batch is spread over (the replica count's upper bound).
    max_attempts : calls per chunk that may lose their replica before its jobs fail.
    window_s : seconds after which a batch's unfinished jobs fail instead of retrying.
    backoff_s : (first, longest) wait between calls that reached no replica; doubles each time.
    """

    def __init__(
        self,
        handle: Any,
        *,
        chunks: int = 1,
        max_attempts: int = 3,
        window_s: float = RETRY_WINDOW_S,
        backoff_s: tuple[float, float] = (1.0, 30.0),
    ) -> None:
        self.handle = handle
        self.chunks = chunks
        self.max_attempts = max_attempts
        self.window_s = window_s
        self.backoff_s = backoff_s
        self.poll_s = 0.2  # how often a running call checks for cancelled jobs
        self.replicas_seen: OrderedDict[str, list[str]] = OrderedDict()  # job id -> replicas it ran on, in order

    @classmethod
    def connect(
        cls,
        make_stages: StagesFactory,
        *,
        address: str,
        min_replicas: int,
        max_replicas: int,
        num_gpus: float = 1.0,
        preview_interval_s: float = 2.5,
    ) -> RayFaceBackend:
        """Join the cluster at ``address`` (empty: start a local one), deploy the workers, wait until they are up.

        Raises
        ------
        ConfigError
            When nothing answers at ``address``, in one line that names it.
        """
        import os

        check_reachable(address)
        import ray
        from ray import serve

        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no reports to Ray's usage server
        if not ray.is_initialized():
            try:
                ray.init(address=address or None, log_to_driver=False)
            except ConnectionError:  # `auto` with no node started on this machine
                raise ConfigError(UNREACHABLE.format(address=address)) from None
        serve.start(proxy_location="Disabled")  # the bot calls through handles; no HTTP ingress
        app = face_deployment(
            make_stages,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            num_gpus=num_gpus,
            preview_interval_s=preview_interval_s,
        )
        handle = serve.run(app, name=APP, route_prefix=None)
        log.info("Ray Serve app %r: %d to %d %s replicas", APP, min_replicas, max_replicas, DEPLOYMENT)
        return cls(handle, chunks=max_replicas)

    def warm_up(self) -> None:
        """Wait until a replica answers (replicas load and warm their models up when they start)."""
        log.info("first face worker ready: %s", self.handle.ready.remote().result())

    def paint(self, jobs: Sequence[FaceJob], watch: Watch) -> list[Outcome]:
        """On the service's GPU thread: the batch on the cluster, one outcome per job, in order; each job is
        also handed on (``watch.hand_on``) as soon as it comes back."""
        return asyncio.run(self._run(list(jobs), watch))

    # -- on this thread's own event loop -----------------------------------------------------------
    async def _run(self, jobs: list[FaceJob], watch: Watch) -> list[Outcome]:
        deadline = time.monotonic() + self.window_s
        results: dict[str, Outcome] = {}
        size = -(-len(jobs) // min(self.chunks, len(jobs)))
        chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
        await asyncio.gather(*(self._run_chunk(chunk, watch, results, deadline) for chunk in chunks))
        return [results[job.job_id] for job in jobs]

    async def _run_chunk(self, jobs: list[FaceJob], watch: Watch, results: dict[str, Outcome], deadline: float) -> None:
        """Call a replica until every job of the chunk has its one result (see the module docstring)."""
        attempts, wait_s = 0, self.backoff_s[0]
        while pending := [job for job in jobs if job.job_id not in results]:
            if all(watch.cancelled(job.job_id) for job in pending):
                for job in pending:
                    results[job.job_id] = JobResult(job.job_id, JobStatus.CANCELLED, user_message=CANCELLED)
                return
            if time.monotonic() >= deadline:
                self._fail(pending, results, NO_WORKER, minutes=round(self.window_s / 60, 1))
                return
            reached = False
            try:
                async for update in self._call(pending, watch.cancelled):
                    reached = True
                    self._take(update, watch, results)
            except Exception as exc:  # Ray's errors: a replica died, none is reachable, the call was cancelled
                if all(watch.cancelled(job.job_id) for job in pending):
                    continue
                if reached:
                    attempts += 1
                    lost = [job.job_id for job in pending]
                    log.warning(
                        "jobs %s lost their replica (%s): attempt %d of %d",
                        lost,
                        type(exc).__name__,
                        attempts,
                        self.max_attempts,
                    )
                    if attempts >= self.max_attempts:
                        self._fail(pending, results, WORKER_LOST, attempts=attempts)
                        return
                else:
                    log.warning("no face worker reachable (%s); retrying in %.1f s", type(exc).__name__, wait_s)
                    for job in pending:
                        watch.report(JobProgress(job.job_id, JobPhase.WAITING_FOR_WORKER))
                    await self._sleep(min(wait_s, max(0.0, deadline - time.monotonic())), pending, watch.cancelled)
                    wait_s = min(2 * wait_s, self.backoff_s[1])
                continue
            for job in pending:  # the stream ended cleanly without this job's result: a replica bug
                if job.job_id not in results:
                    log.error("job %s ended without a result on its replica", job.job_id)
                    results[job.job_id] = failed(job.job_id)
                    watch.hand_on(results[job.job_id])

    async def _call(self, jobs: list[FaceJob], cancelled: Callable[[str], bool]) -> AsyncIterator[WorkerUpdate]:
        """One streaming call; cancelled once every one of ``jobs`` is (the replica stops at its next step)."""
        stream = self.handle.options(stream=True).run.remote(jobs)

        async def watch() -> None:
            while not all(cancelled(job.job_id) for job in jobs):
                await asyncio.sleep(self.poll_s)
            stream.cancel()

        watcher = asyncio.create_task(watch())
        try:
            async for update in stream:
                yield update
        finally:
            watcher.cancel()

    def _take(self, update: WorkerUpdate, watch: Watch, results: dict[str, Outcome]) -> None:
        """Record where the jobs run, pass progress on, keep and hand on each job's first outcome only."""
        if not update.progress and not update.outcomes:  # a replica took the chunk
            return
        for progress in update.progress:
            self._seen(progress.job_id, update.replica)
            if progress.job_id not in results:
                watch.report(progress)
        for outcome in update.outcomes:
            job_id = outcome.job_id
            self._seen(job_id, update.replica)
            if job_id in results:
                continue  # idempotent by job id: a job goes on once
            if watch.cancelled(job_id) and not (
                isinstance(outcome, JobResult) and outcome.status == JobStatus.CANCELLED
            ):
                outcome = JobResult(job_id, JobStatus.CANCELLED, user_message=CANCELLED)
            results[job_id] = outcome
            watch.hand_on(outcome)

    def _seen(self, job_id: str, replica: str) -> None:
        history = self.replicas_seen.setdefault(job_id, [])
        if not history or history[-1] != replica:
            history.append(replica)
        self.replicas_seen.move_to_end(job_id)
        while len(self.replicas_seen) > REMEMBERED_JOBS:
            self.replicas_seen.popitem(last=False)

    @staticmethod
    def _fail(jobs: list[FaceJob], results: dict[str, Outcome], message: str, **values: object) -> None:
        for job in jobs:
            log.error("job %s failed: %s", job.job_id, message.format(job_id=job.job_id, **values))
            results[job.job_id] = JobResult(
                job.job_id, JobStatus.FAILED, user_message=message.format(job_id=job.job_id, **values)
            )

    @staticmethod
    async def _sleep(seconds: float, jobs: list[FaceJob], cancelled: Callable[[str], bool]) -> None:
        """Wait ``seconds``, or less once every job is cancelled."""
        end = time.monotonic() + seconds
        while time.monotonic() < end and not all(cancelled(job.job_id) for job in jobs):
            await asyncio.sleep(min(0.2, end - time.monotonic()))
