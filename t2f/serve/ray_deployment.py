"""The Ray Serve side of the Ray backend: one :class:`FaceWorker` replica per GPU.

A replica builds the route's local stages once (models loaded and warmed up in ``__init__``) from a
picklable factory: in production ``t2f.build.load_replica_stages`` bound to the bot's settings, in tests
a factory with tiny stand-in models. Each call takes one micro-batch of the service, paints it and finds
each job's face, and streams :class:`WorkerUpdate` records back: step progress as it happens, then each
job as soon as its face is found (ready for its files, which the bot writes, with its page, like any
other face), sent back to be painted again, or ended. Ray is imported only inside
:func:`face_deployment`, so this module costs nothing where Ray is not installed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from t2f.serve.jobs import FaceJob, JobProgress, Outcome, Stage, failed
from t2f.serve.warmup import LocalStages

log = logging.getLogger(__name__)
DEPLOYMENT = "FaceWorker"
StagesFactory = Callable[[], LocalStages]  # picklable: it travels to every replica


@dataclass(frozen=True)
class WorkerUpdate:
    """What a replica streams back for one call: everything that happened since its last update.

    The first update of a call carries neither progress nor outcomes: it says a replica took the batch.
    ``replica`` is ``host:pid``, so the operator's log says where each job ran.
    """

    replica: str
    progress: tuple[JobProgress, ...] = ()
    outcomes: tuple[Outcome, ...] = ()


class ReplicaWatch:
    """The replica's :class:`~t2f.serve.route.Watch`: progress and outcomes go into the call's stream; the
    whole call stops when the bot cancels it; previews are made at most once per ``preview_interval_s``
    (the bot edits its messages no more often, and the replica cannot see who is watching)."""

    def __init__(self, put: Callable[[JobProgress | Outcome | None], None], stop: threading.Event, interval_s: float):
        self._put = put
        self._stop = stop
        self._interval_s = interval_s
        self._last_preview = time.monotonic()

    def report(self, progress: JobProgress) -> None:
        self._put(progress)

    def cancelled(self, job_id: str) -> bool:
        return self._stop.is_set()

    def previews_due(self, job_ids: Sequence[str]) -> bool:
        now = time.monotonic()
        if now - self._last_preview < self._interval_s:
            return False
        self._last_preview = now
        return True

    def hand_on(self, outcome: Outcome) -> None:
        self._put(outcome)


class FaceWorker:
    """Paint and faces on one GPU, one micro-batch at a time (``max_ongoing_requests=1``).

    Parameters
    ----------
    make_stages : builds the local stages on the replica: models load and warm up here, once.
    preview_interval_s : least seconds between two step previews of a call.
    """

    def __init__(self, make_stages: StagesFactory, preview_interval_s: float = 2.5) -> None:
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.stages = make_stages()
        self.preview_interval_s = preview_interval_s
        self.gpu = threading.Lock()  # one batch on the GPU even if Serve hands over a second call
        log.info("face worker %s ready", self.name)

    def ready(self) -> str:
        """This replica's ``host:pid`` (the client's warm-up waits on it)."""
        return self.name

    async def run(self, jobs: Sequence[FaceJob]) -> AsyncIterator[WorkerUpdate]:
        """Paint ``jobs`` and find their faces; stream progress and each job's outcome as it comes.

        The work runs on a thread so the replica's event loop keeps answering health checks. When the
        caller cancels the stream (every job cancelled or timed out), the batch stops at its next step.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[JobProgress | Outcome | None] = asyncio.Queue()
        stop = threading.Event()

        def put(item: JobProgress | Outcome | None) -> None:
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
                    outcomes=tuple(i for i in items if i is not None and not isinstance(i, JobProgress)),
                )
            await work
        finally:
            stop.set()  # a cancelled stream: the batch stops at its next denoising step

    def _work(
        self, jobs: list[FaceJob], put: Callable[[JobProgress | Outcome | None], None], stop: threading.Event
    ) -> None:
        """On a worker thread: the batch painted under the GPU lock, then each face found; a crash fails the
        jobs not yet sent, never the replica."""
        watch = ReplicaWatch(put, stop, self.preview_interval_s)
        sent: set[str] = set()
        try:
            with self.gpu:
                painted = self.stages.painter.paint(jobs, watch)
            for outcome in painted:
                if isinstance(outcome, FaceJob) and outcome.next_stage is Stage.FACES:
                    outcome = self._find(outcome, watch)
                put(outcome)
                sent.add(outcome.job_id)
        except Exception:  # mirrors the service: a crash fails the batch's jobs, never the replica
            log.exception("batch %s failed on %s", [job.job_id for job in jobs], self.name)
            for job in jobs:
                if job.job_id not in sent:
                    put(failed(job.job_id))
        finally:
            put(None)

    def _find(self, job: FaceJob, watch: ReplicaWatch) -> Outcome:
        try:
            return self.stages.faces.find(job, watch)
        except Exception:
            log.exception("finding the face of job %s failed", job.job_id)
            return failed(job.job_id)


def face_deployment(
    make_stages: StagesFactory,
    *,
    min_replicas: int,
    max_replicas: int,
    num_gpus: float = 1.0,
    preview_interval_s: float = 2.5,
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
    return deployment.bind(make_stages, preview_interval_s)
