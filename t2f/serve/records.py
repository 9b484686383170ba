"""What the store keeps, as plain dataclasses, and the one converter between job rows and job requests.

Free of SQL (``t2f.serve.store`` runs it), so the cogs can read records without importing sqlite3.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from t2f.faces import FaceRequest
from t2f.report import FaceReport
from t2f.serve.jobs import JobRequest, JobStatus, UploadBudget


@dataclass(frozen=True)
class JobRecord:
    """One job: what was asked, by whom, where, and how it ended (the audit row).

    ``report`` is the face's :class:`~t2f.report.FaceReport` as JSON text once the job finished.
    ``source`` is "text" (painted from the prompt) or "photo" (a member's photo, which is not stored:
    ``prompt`` is then only the face's title). ``profile`` is how it was painted (``quality`` or ``fast``).
    """

    id: str
    user_id: int
    guild_id: int | None
    channel_id: int | None
    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    guidance: float
    size: int
    output: str
    status: JobStatus
    created_at: float
    finished_at: float | None = None
    outcome: str | None = None
    timings: str | None = None
    message_id: int | None = None
    interaction_token: str | None = None
    application_id: int | None = None
    report: str | None = None
    source: str = "text"
    profile: str = "quality"

    @property
    def face_report(self) -> FaceReport | None:
        """The finished face's report, or ``None`` before it finished (or when it made no image)."""
        return None if self.report is None else FaceReport.from_json(json.loads(self.report))


@dataclass(frozen=True)
class GuildSettings:
    """A server's moderation settings; ``None`` means "use the bot-wide default"."""

    guild_id: int
    allowed_channels: tuple[int, ...] = ()  # empty: every channel
    cooldown_s: float | None = None
    daily_quota: int | None = None
    queue_cap: int | None = None
    blocked_terms: tuple[str, ...] = field(default_factory=tuple)
    photo_input: bool | None = None  # members' photos (/face3d) allowed here; None: T2F_PHOTO_INPUT decides
    allow_suggestive: bool | None = None  # suggestive words alone (bikini, sultry) pass here; None: they do


@dataclass(frozen=True)
class RefusalRecord:
    """A prompt the filter refused: who, where, and why (the audit log's own kind; the prompt is not kept).

    ``category`` is a :class:`~t2f.serve.moderation.Category` value ("minors", "sexual", …), ``language``
    the lexicon that matched ("" for a server's own word) and ``field`` "prompt" or "negative".
    """

    guild_id: int | None
    channel_id: int | None
    user_id: int
    category: str
    language: str
    field: str
    created_at: float


def job_record(
    job: JobRequest, *, created_at: float, interaction_token: str | None = None, application_id: int | None = None
) -> JobRecord:
    """The row of a newly accepted job."""
    face = job.face
    return JobRecord(
        id=job.job_id,
        user_id=job.user_id,
        guild_id=job.guild_id,
        channel_id=job.channel_id,
        prompt=face.prompt,
        negative_prompt=face.negative_prompt,
        seed=face.seed,
        steps=face.steps,
        guidance=face.guidance,
        size=face.size,
        output=job.output,
        status=JobStatus.QUEUED,
        created_at=created_at,
        interaction_token=interaction_token,
        application_id=application_id,
        source="photo" if job.is_photo else "text",
        profile=face.profile,
    )


def job_request(record: JobRecord, *, upload: UploadBudget | None = None) -> JobRequest:
    """The job a stored row describes (to run it again after a restart; a photo job cannot be: no photo is kept)."""
    face = FaceRequest(
        prompt=record.prompt,
        negative_prompt=record.negative_prompt,
        seed=record.seed,
        steps=record.steps,
        guidance=record.guidance,
        size=record.size,
        profile=record.profile,
    )
    return JobRequest(
        job_id=record.id,
        user_id=record.user_id,
        face=face,
        output=record.output,
        guild_id=record.guild_id,
        channel_id=record.channel_id,
        upload=upload,
    )
