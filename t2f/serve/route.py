"""The route every job takes: paint -> faces -> files, and where each stage runs.

A stage takes a :class:`~t2f.serve.jobs.FaceJob` and gives back the job, further along, or its final
:class:`~t2f.serve.jobs.JobResult`; nothing else crosses a stage. The job itself says which stage it
needs next (:attr:`FaceJob.next_stage`), so a repaint (the job with its next seed and nothing painted)
goes back to the painter by the same rule that sends a painted job on to the faces stage.

The painter works on batches on the one GPU thread; the faces stage and the files stage work on one
job at a time, so each face moves on the moment its own work is done. Where the faces stage runs is
configuration (:attr:`Route.faces_thread`), not a flag inside a stage: beside the painter on a GPU, or
queued behind it on the same thread on a CPU, where both halves want the same cores. A painter may also
find the faces itself (the Ray backend does both on its replicas): its jobs then come back ready for
their files, and :attr:`Route.faces` is never asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from t2f.serve.jobs import FaceJob, JobProgress, JobResult, Outcome


class Watch(Protocol):
    """What a stage sees of the service while it works: where to report, what was cancelled, who watches."""

    def report(self, progress: JobProgress) -> None:
        """Pass a job's progress to the event loop (callable from any thread)."""

    def cancelled(self, job_id: str) -> bool:
        """Whether the job's member (or the service's timeout) asked for it to stop."""

    def previews_due(self, job_ids: Sequence[str]) -> bool:
        """Whether someone will see a preview of any of these jobs if one is made now (and, if so, that one
        is being made): previews cost a decode on the GPU thread, so they are made only to be shown."""

    def hand_on(self, outcome: Outcome) -> None:
        """Send one job on before the rest of its batch is done (a painter whose faces finish one by one)."""


class PaintStage(Protocol):
    """Paints a batch in one denoising loop, on the GPU thread.

    Jobs that need no painting (a member's photo) come back as they are. Must report progress through
    ``watch`` and stop at the next step once every job of the batch is cancelled.
    """

    def paint(self, jobs: Sequence[FaceJob], watch: Watch) -> list[Outcome]: ...


class FacesStage(Protocol):
    """Finds and rebuilds one job's face: the safety check, the detector's verdict, PRNet and the mesh.

    Gives the job with its face, the job again with its next seed (a repaint), or its final result.
    """

    def find(self, job: FaceJob, watch: Watch) -> Outcome: ...


class FilesStage(Protocol):
    """Writes one face's files (and anything kept beside them, such as its page): its final result."""

    def write(self, job: FaceJob) -> JobResult: ...


@dataclass(frozen=True)
class Route:
    """The three stages of the route and where the middle one runs.

    Parameters
    ----------
    paint : the painter, on the GPU thread.
    faces : the faces stage; ``None`` when the painter finds the faces itself.
    files : the files stage, on ``files_threads`` threads of their own.
    faces_thread : run the faces stage on a thread of its own, so the GPU paints the next batch while
        faces are found (a GPU); ``False`` queues it behind the painting on the GPU thread (a CPU).
    files_threads : threads writing faces' files at once.
    """

    paint: PaintStage
    faces: FacesStage | None
    files: FilesStage
    faces_thread: bool = False
    files_threads: int = 1
