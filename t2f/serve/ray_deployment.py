"""The Ray Serve side of the Ray backend: one :class:`FaceWorker` replica per GPU.

A replica builds its :class:`~t2f.serve.backend.LocalFaceBackend` once (models loaded and warmed up
in ``__init__``) from a picklable factory: in production ``t2f.build.load_replica_backend`` bound to
the bot's settings, in tests a factory with tiny stand-in models. Each call takes one micro-batch of
the service and streams :class:`WorkerUpdate` records back: step progress as it happens, then each
job's final :class:`~t2f.serve.jobs.JobResult` with its files (written here, on the replica, so only
bytes cross the wire). Ray is imported only inside :func:`face_deployment`, so this module costs
nothing where Ray is not installed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from t2f.serve.backend import LocalFaceBackend
from t2f.serve.jobs import (
    FinishedFace,
    JobPhase,
    JobProgress,
    JobRequest,
    JobResult,
    Pending,
    Repaint,
    failed,
    job_id_of,
)

log = logging.getLogger(__name__)
DEPLOYMENT = "FaceWorker"
BackendFactory = Callable[[], LocalFaceBackend]  # picklable: it travels to every replica


@dataclass(frozen=True)
class WorkerUpdate:
    """What a replica streams back for one call: everything that happened since its last update.

    The first update of a call carries neither progress nor results: it says a replica took the batch.
    ``replica`` is ``host:pid``, so the operator's log says where each job ran.
    """

    replica: str
    progress: tuple[JobProgress, ...] = ()
    results: tuple[JobResult | Repaint, ...] = ()  # a Repaint goes back to the bot's queue


class FaceWorker:
    """The face pipeline on one GPU, serving one micro-batch at a time (``max_ongoing_requests=1``).

    Parameters
    ----------
    make_backend : builds the local backend on the replica: models load and warm up here, once.
    """

    def __init__(self, make_backend: BackendFactory) -> None:
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.backend = make_backend()
        self.backend.defer_exports = True  # files are written after painting, one result streamed per face
        self.gpu = threading.Lock()  # one batch on the GPU even if Serve hands over a second call
        log.info("face worker %s ready", self.name)

    def ready(self) -> str:
        """This replica's ``host:pid`` (the client's warm-up waits on it)."""
        return self.name

    async def run(self, jobs: Sequence[JobRequest]) -> AsyncIterator[WorkerUpdate]:
        """Paint, reconstruct and export ``jobs``; stream progress and results as they come.

        The work runs on a thread so the replica's event loop keeps answering health checks. When the
        caller cancels the stream (every job cancelled or timed out), the batch stops at its next step.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[JobProgress | JobResult | Repaint | None] = asyncio.Queue()
        stop = threading.Event()

        def put(item: JobProgress | JobResult | Repaint | None) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        work = loop.run_in_executor(None, self._work, list(jobs), put, stop)
        yield WorkerUpdate(self.name)
        try:
            finished = False
            while not finished:
                items = [await queue.get()]
                while not queue.empty():  # coalesce: one message per burst of step callbacks
                    items.append(queue.get_nowait())
                finished = items[-1] is None
                yield WorkerUpdate(
                    self.name,
                    progress=tuple(i for i in items if isinstance(i, JobProgress)),
                    results=tuple(i for i in items if isinstance(i, JobResult | Repaint)),
                )
            await work
        finally:
            stop.set()  # a cancelled stream: the batch stops at its next denoising step

    def _work(
        self,
        jobs: list[JobRequest],
        put: Callable[[JobProgress | JobResult | Repaint | None], None],
        stop: threading.Event,
    ) -> None:
        """On a worker thread: the batch under the GPU lock, then each face's files; a crash fails its jobs."""
        sent: set[str] = set()
        try:
            with self.gpu:
                results = self.backend.run_batch(jobs, put, lambda _job_id: stop.is_set())
            for outcome in results:
                # a face found on the backend's own thread (overlap): wait for it here, outside the GPU lock
                result = outcome.outcomes.result()[outcome.job_id] if isinstance(outcome, Pending) else outcome
                if isinstance(result, FinishedFace):
                    put(JobProgress(result.job.job_id, JobPhase.EXPORTING))
                    result = self._export(result)
                put(result)
                sent.add(job_id_of(result))
        except Exception:  # mirrors the service: a crash fails the batch's jobs, never the replica
            log.exception("batch %s failed on %s", [job.job_id for job in jobs], self.name)
            for job in jobs:
                if job.job_id not in sent:
                    put(failed(job.job_id))
        finally:
            put(None)

    def _export(self, finished: FinishedFace) -> JobResult:
        try:
            return self.backend.export(finished)
        except Exception:
            log.exception("writing the files of job %s failed", finished.job.job_id)
            return failed(finished.job.job_id)


def face_deployment(
    make_backend: BackendFactory, *, min_replicas: int, max_replicas: int, num_gpus: float = 1.0
) -> Any:
    """The Serve application: :class:`FaceWorker` with one GPU per replica, autoscaled between the bounds.

    ``min_replicas == max_replicas`` fixes the count. Otherwise Serve adds a replica while more than one
    batch per replica is waiting and removes idle ones down to ``min_replicas``.
    """
    from ray import serve

    scaling: dict[str, Any] = (
        {"num_replicas": min_replicas}
        if min_replicas == max_replicas
        else {
            "autoscaling_config": {
                "min_replicas": min_replicas,
                "max_replicas": max_replicas,
                "target_ongoing_requests": 1,
            }
        }
    )
    deployment = serve.deployment(
        name=DEPLOYMENT,
        ray_actor_options={"num_gpus": num_gpus},
        max_ongoing_requests=1,  # the router sends a batch to an idle replica, never behind another
        **scaling,
    )(FaceWorker)
    return deployment.bind(make_backend)
