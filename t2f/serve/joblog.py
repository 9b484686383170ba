"""One structured log line per job at each state change: queued, started, exporting, finished.

The fields (``job_id``, ``guild_id``, ``event``, ``status``, ``seconds``, ``batch_size``) travel as
``extra=`` on the record, so ``T2F_LOG_FORMAT=json`` writes them as JSON keys and a log collector can
count and time jobs without parsing text. The prompt is logged only at DEBUG, and never a token (the
service never sees one).
"""

from __future__ import annotations

import logging
from enum import StrEnum

from t2f.serve.jobs import JobRequest, JobStatus

log = logging.getLogger("t2f.jobs")
PROMPT_LOG_CHARS = 1000  # a DEBUG line, not a dump: CLI prompts have no length limit
# Outcomes an operator should look at; the others are a member's own doing or normal.
_WARN = (JobStatus.FAILED, JobStatus.TIMEOUT, JobStatus.UNDELIVERED)


class JobEvent(StrEnum):
    """The state changes of a job that get a log line."""

    QUEUED = "queued"  # accepted (or resumed after a restart); waiting for the worker
    STARTED = "started"  # the worker took it, in a batch of ``batch_size``
    EXPORTING = "exporting"  # painted and reconstructed; its files are being written
    FINISHED = "finished"  # over, with ``status`` saying how


def log_job(
    job: JobRequest,
    event: JobEvent,
    *,
    seconds: float,
    status: JobStatus | None = None,
    batch_size: int | None = None,
    resumed: bool = False,
) -> None:
    """Log ``event`` for ``job``.

    Parameters
    ----------
    job : the job.
    event : which state change.
    seconds : time in the previous state: 0 when queued, the wait when started, the work when exporting,
        queued-to-end when finished.
    status : how it ended (``FINISHED`` only).
    batch_size : how many jobs share its denoising loop (``STARTED`` only).
    resumed : queued again after a restart.
    """
    fields: dict[str, object] = {
        "job_id": job.job_id,
        "guild_id": job.guild_id,
        "event": str(event),
        "seconds": round(seconds, 3),
    }
    detail = f"{seconds:.1f} s"
    if status is not None:
        fields["status"] = str(status)
        detail = f"{status}, {detail}"
    if batch_size is not None:
        fields["batch_size"] = batch_size
        detail += f", batch of {batch_size}"
    if resumed:
        fields["resumed"] = True
        detail += ", resumed"
    where = f"guild {job.guild_id}" if job.guild_id is not None else "no guild"
    level = logging.WARNING if status in _WARN else logging.INFO
    log.log(level, "job %s %s (%s; %s)", job.job_id, event, where, detail, extra=fields)
    if event is JobEvent.QUEUED and log.isEnabledFor(logging.DEBUG):
        prompt, negative = job.face.prompt[:PROMPT_LOG_CHARS], job.face.negative_prompt[:PROMPT_LOG_CHARS]
        log.debug(
            "job %s prompt %r negative %r",
            job.job_id,
            prompt,
            negative,
            extra={"job_id": job.job_id, "event": "prompt", "prompt": prompt, "negative": negative},
        )
