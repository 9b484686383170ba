"""What the serving layer passes around: job requests, jobs on the route, progress, results and statuses.

Numpy-only and free of I/O, so the Discord cogs can import it without pulling in torch or SQLite.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from t2f.errors import T2FError
from t2f.faces import FaceImage, FaceRequest, FaceResult
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
    (``face`` then only titles it and sizes nothing); it lives in memory for the job's life alone, and appears
    in the result (``image.png``, the preview strip's first panel) only with ``show_photo``: the member's choice.
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
    show_photo: bool = False

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
    ``withdrawn``: its member asked to be forgotten while it was under way, so nothing of it may be posted.
    """

    job_id: str
    status: JobStatus
    files: dict[str, bytes] = field(default_factory=dict)
    report: FaceReport | None = None
    user_message: str | None = None
    seconds: float = 0.0
    withdrawn: bool = False


class Stage(StrEnum):
    """The route a job takes, in order: painted on the GPU thread, its face found, its files written."""

    PAINT = "paint"
    FACES = "faces"
    FILES = "files"


@dataclass(frozen=True)
class FaceJob:
    """A job on its way along the route: the request and what has been made of it so far.

    Where it goes next follows from what it holds (:attr:`next_stage`): nothing painted yet, to the
    painter; an image (painted, or the member's photo), to the faces stage; a face, to the files. A
    repaint is the same job with its next seed and nothing painted, so it goes back to the painter.

    ``report`` describes the face as far as it got; ``seconds`` is the time spent painting and finding
    it; ``repaint_note`` says why the job is being painted again, in a member's words.
    """

    request: JobRequest
    painting: FaceImage | None = None
    face: FaceResult | None = None
    report: FaceReport | None = None
    seconds: float = 0.0
    repaint_note: str | None = None

    @property
    def job_id(self) -> str:
        return self.request.job_id

    @property
    def image(self) -> np.ndarray | None:
        """(H, W, 3) uint8 RGB: the member's photo, else the painted image; ``None`` before painting."""
        if self.request.photo is not None:
            return self.request.photo
        return None if self.painting is None else self.painting.image

    @property
    def next_stage(self) -> Stage:
        if self.face is not None:
            return Stage.FILES
        return Stage.PAINT if self.image is None else Stage.FACES


Outcome = FaceJob | JobResult  # what a stage makes of a job: the job, further along, or how it ended


class CancelAnswer(StrEnum):
    """What :meth:`~t2f.serve.service.JobService.cancel` did: the same four answers at every stage."""

    STOPPED = "stopped"  # it was waiting (or its face not yet begun): it is over, cancelled
    STOPPING = "stopping"  # it is being painted: it stops at the next step
    TOO_LATE = "too late"  # its files are being written: it will be delivered
    UNKNOWN = "unknown"  # no such job, or it is already over


def new_job_id() -> str:
    """A new job's id: 12 hex digits (48 random bits), short enough for a button's id and a page's link."""
    return secrets.token_hex(6)


def failed(job_id: str) -> JobResult:
    """The result of a job that broke in a way the member cannot fix (the log has the details)."""
    return JobResult(job_id, JobStatus.FAILED, user_message=FAILED.format(job_id=job_id))


def timed_out(job_id: str, timeout_s: float) -> JobResult:
    """The result of a job stopped by the service's job timeout."""
    message = f"Your face took longer than {timeout_s / 60:g} minutes and was stopped. Try again."
    return JobResult(job_id, JobStatus.TIMEOUT, user_message=message)
