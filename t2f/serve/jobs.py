"""What the serving layer passes around: job requests, progress, results, statuses and phases.

Numpy-only and free of I/O, so the Discord cogs can import it without pulling in torch or SQLite.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from t2f.errors import T2FError
from t2f.faces import FaceRequest, FaceResult
from t2f.report import FaceReport

MESH_FORMATS = ("obj", "textured", "glb")
FAILED = "Something went wrong while making your face (job {job_id}). The team has been told; please try again."
CANCELLED = "Cancelled."


class JobStatus(StrEnum):
    """Where a job's record stands, from queued to how it ended."""

    QUEUED = "queued"  # accepted, waiting for the worker
    RUNNING = "running"  # the worker took it
    DELIVERING = "delivering"  # finished; its message is being sent
    DONE = "done"
    WITHHELD = "withheld"  # the safety checker flagged the image
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    UNDELIVERED = "undelivered"  # finished, but the chat refused the message
    REFUSED = "refused"  # its row was written, then the queue refused it: it never counts


UNFINISHED = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.DELIVERING)  # resumed after a restart


class JobPhase(StrEnum):
    """What the worker is doing with a running job."""

    STARTING = "starting"
    PAINTING = "painting"
    REPAINTING = "repainting"  # the last image had no usable face; waiting to be painted with the next seed
    RECONSTRUCTING = "reconstructing"
    EXPORTING = "exporting"
    WAITING_FOR_WORKER = "waiting"  # no GPU worker reachable (Ray backend): retried with backoff


class QueueFull(T2FError):
    """The queue is at capacity (or the service is shutting down)."""


@dataclass(frozen=True)
class UploadBudget:
    """How many bytes the result may take where it is delivered: per file and all files together."""

    per_file: int
    total: int


@dataclass(frozen=True)
class JobRequest:
    """A face to make: the generation request plus who asked, where, and what they want back.

    ``upload`` is the delivery's byte budget; ``None`` (the CLI, a web page) keeps the files whole.
    ``repaints_left`` is how many more seeds may be painted when an image has no usable face;
    ``seeds_tried`` the seeds already painted (the current one, ``face.seed``, is not among them).
    ``photo`` is a member's photo, (H, W, 3) uint8 RGB: the job skips painting and only reconstructs
    (``face`` then only titles it and sizes nothing); it lives in memory for the job's life alone.
    """

    job_id: str
    user_id: int
    face: FaceRequest
    output: str = "obj"  # one of MESH_FORMATS
    guild_id: int | None = None
    channel_id: int | None = None
    upload: UploadBudget | None = None
    repaints_left: int = 0
    seeds_tried: tuple[int, ...] = ()
    photo: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def is_photo(self) -> bool:
        """A reconstruction of a member's photo (no painting, no seed, no reroll)."""
        return self.photo is not None


@dataclass(frozen=True)
class JobProgress:
    """Where a running job is; ``preview`` is a small (h, w, 3) uint8 image of the painting so far."""

    job_id: str
    phase: JobPhase
    step: int = 0
    total: int = 0
    preview: np.ndarray | None = None
    note: str | None = None  # why the job is repainted, in a member's words


@dataclass(frozen=True)
class JobResult:
    """How a job ended.

    ``files`` maps names to bytes (the image alone when no face was found); ``report`` describes the
    face as far as it got; ``user_message`` is a sentence for the member when it did not finish.
    """

    job_id: str
    status: JobStatus
    files: dict[str, bytes] = field(default_factory=dict)
    report: FaceReport | None = None
    user_message: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class FinishedFace:
    """A reconstructed face whose files are still to be written (the service writes them off the GPU thread)."""

    job: JobRequest
    face: FaceResult
    report: FaceReport
    seconds: float  # spent so far, painting and reconstructing


@dataclass(frozen=True)
class Repaint:
    """An image without a usable face: ``job`` is the same job with the next seed, to queue again."""

    job: JobRequest
    note: str  # why, for the member's progress line


Outcome = JobResult | FinishedFace | Repaint  # what became of a job once its face was looked for


@dataclass(frozen=True)
class Pending:
    """A painted job whose face is still being found and rebuilt on the backend's faces thread.

    The GPU thread hands the second half of a batch (detection, PRNet, the mesh) to another thread and
    takes the next batch at once; ``outcomes`` is that half's future, shared by the batch's jobs (job id
    -> :data:`Outcome`).
    """

    job_id: str
    outcomes: Future[dict[str, Outcome]]


def job_id_of(outcome: Outcome | Pending) -> str:
    """The job a batch's outcome belongs to."""
    return outcome.job_id if isinstance(outcome, JobResult | Pending) else outcome.job.job_id


def failed(job_id: str) -> JobResult:
    """The result of a job that broke in a way the member cannot fix (the log has the details)."""
    return JobResult(job_id, JobStatus.FAILED, user_message=FAILED.format(job_id=job_id))


def timed_out(job_id: str, timeout_s: float) -> JobResult:
    """The result of a job stopped by the service's job timeout."""
    message = f"Your face took longer than {timeout_s / 60:g} minutes and was stopped. Try again."
    return JobResult(job_id, JobStatus.TIMEOUT, user_message=message)
