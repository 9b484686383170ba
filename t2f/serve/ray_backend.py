"""The Ray backend: the service's batches run on a Ray Serve cluster of GPU workers.

:class:`RayFaceBackend` implements the service's ``FaceBackend`` on its worker thread. Each batch is
split across the replicas (one chunk per replica at most), every chunk is one streaming call to a
:class:`~t2f.serve.ray_deployment.FaceWorker`, and progress is reported as updates arrive.

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
from t2f.serve.jobs import (
    CANCELLED,
    FinishedFace,
    JobPhase,
    JobProgress,
    JobRequest,
    JobResult,
    JobStatus,
    Repaint,
    failed,
    job_id_of,
)
from t2f.serve.ray_deployment import DEPLOYMENT, BackendFactory, WorkerUpdate, face_deployment

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
        cls, make_backend: BackendFactory, *, address: str, min_replicas: int, max_replicas: int, num_gpus: float = 1.0
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
        app = face_deployment(make_backend, min_replicas=min_replicas, max_replicas=max_replicas, num_gpus=num_gpus)
        handle = serve.run(app, name=APP, route_prefix=None)
        log.info("Ray Serve app %r: %d to %d %s replicas", APP, min_replicas, max_replicas, DEPLOYMENT)
        return cls(handle, chunks=max_replicas)

    def warm_up(self, size: int = 512, *, max_batch: int = 1, compiled: bool = False, steps: int = 2) -> None:
        """Wait until a replica answers (replicas load and warm their models up when they start)."""
        log.info("first face worker ready: %s", self.handle.ready.remote().result())

    def export(self, finished: FinishedFace) -> JobResult:
        """Never called: replicas write the files and return finished results."""
        raise NotImplementedError("the Ray backend returns finished results")

    def run_batch(
        self, jobs: Sequence[JobRequest], report: Callable[[JobProgress], None], cancelled: Callable[[str], bool]
    ) -> list[JobResult | FinishedFace | Repaint]:
        """On the service's worker thread: the batch on the cluster, one result per job, in order."""
        return asyncio.run(self._run(list(jobs), report, cancelled))

    # -- on this thread's own event loop -----------------------------------------------------------
    async def _run(
        self, jobs: list[JobRequest], report: Callable[[JobProgress], None], cancelled: Callable[[str], bool]
    ) -> list[JobResult | FinishedFace | Repaint]:
        deadline = time.monotonic() + self.window_s
        results: dict[str, JobResult | Repaint] = {}
        size = -(-len(jobs) // min(self.chunks, len(jobs)))
        chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
        await asyncio.gather(*(self._run_chunk(chunk, report, cancelled, results, deadline) for chunk in chunks))
        return [results[job.job_id] for job in jobs]

    async def _run_chunk(
        self,
        jobs: list[JobRequest],
        report: Callable[[JobProgress], None],
        cancelled: Callable[[str], bool],
        results: dict[str, JobResult | Repaint],
        deadline: float,
    ) -> None:
        """Call a replica until every job of the chunk has its one result (see the module docstring)."""
        attempts, wait_s = 0, self.backoff_s[0]
        while pending := [job for job in jobs if job.job_id not in results]:
            if all(cancelled(job.job_id) for job in pending):
                results.update(
                    {job.job_id: JobResult(job.job_id, JobStatus.CANCELLED, user_message=CANCELLED) for job in pending}
                )
                return
            if time.monotonic() >= deadline:
                self._fail(pending, results, NO_WORKER, minutes=round(self.window_s / 60, 1))
                return
            reached = False
            try:
                async for update in self._call(pending, cancelled):
                    reached = True
                    self._take(update, report, cancelled, results)
            except Exception as exc:  # Ray's errors: a replica died, none is reachable, the call was cancelled
                if all(cancelled(job.job_id) for job in pending):
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
                        report(JobProgress(job.job_id, JobPhase.WAITING_FOR_WORKER))
                    await self._sleep(min(wait_s, max(0.0, deadline - time.monotonic())), pending, cancelled)
                    wait_s = min(2 * wait_s, self.backoff_s[1])
                continue
            for job in pending:  # the stream ended cleanly without this job's result: a replica bug
                if job.job_id not in results:
                    log.error("job %s ended without a result on its replica", job.job_id)
                    results[job.job_id] = failed(job.job_id)

    async def _call(self, jobs: list[JobRequest], cancelled: Callable[[str], bool]) -> AsyncIterator[WorkerUpdate]:
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

    def _take(
        self,
        update: WorkerUpdate,
        report: Callable[[JobProgress], None],
        cancelled: Callable[[str], bool],
        results: dict[str, JobResult | Repaint],
    ) -> None:
        """Record where the jobs run, pass progress on, keep each job's first result only."""
        if not update.progress and not update.results:  # a replica took the chunk
            return
        for progress in update.progress:
            self._seen(progress.job_id, update.replica)
            if progress.job_id not in results:
                report(progress)
        for result in update.results:
            job_id = job_id_of(result)
            self._seen(job_id, update.replica)
            if job_id in results:
                continue  # idempotent by job id: a result is delivered once
            if cancelled(job_id) and not (isinstance(result, JobResult) and result.status == JobStatus.CANCELLED):
                result = JobResult(job_id, JobStatus.CANCELLED, user_message=CANCELLED)
            results[job_id] = result

    def _seen(self, job_id: str, replica: str) -> None:
        history = self.replicas_seen.setdefault(job_id, [])
        if not history or history[-1] != replica:
            history.append(replica)
        self.replicas_seen.move_to_end(job_id)
        while len(self.replicas_seen) > REMEMBERED_JOBS:
            self.replicas_seen.popitem(last=False)

    @staticmethod
    def _fail(jobs: list[JobRequest], results: dict[str, JobResult | Repaint], message: str, **values: object) -> None:
        for job in jobs:
            log.error("job %s failed: %s", job.job_id, message.format(job_id=job.job_id, **values))
            results[job.job_id] = JobResult(
                job.job_id, JobStatus.FAILED, user_message=message.format(job_id=job.job_id, **values)
            )

    @staticmethod
    async def _sleep(seconds: float, jobs: list[JobRequest], cancelled: Callable[[str], bool]) -> None:
        """Wait ``seconds``, or less once every job is cancelled."""
        end = time.monotonic() + seconds
        while time.monotonic() < end and not all(cancelled(job.job_id) for job in jobs):
            await asyncio.sleep(min(0.2, end - time.monotonic()))
