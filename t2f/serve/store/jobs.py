"""Jobs' rows: written when a job is accepted, updated as it runs, finished with how it ended."""

from __future__ import annotations

import json
import time
from dataclasses import fields

from t2f.report import FaceReport
from t2f.serve.jobs import JobStatus
from t2f.serve.records import JobRecord
from t2f.serve.store.base import StoreBase, job_row

INSERT_JOB = """
INSERT INTO jobs (id, user_id, guild_id, channel_id, prompt, negative_prompt, seed, steps, guidance, size, output,
                  status, created_at, interaction_token, application_id, source, profile)
VALUES (:id, :user_id, :guild_id, :channel_id, :prompt, :negative_prompt, :seed, :steps, :guidance, :size, :output,
        :status, :created_at, :interaction_token, :application_id, :source, :profile)
"""
FINISH_JOB = """
UPDATE jobs SET status = :status, outcome = :outcome, timings = :timings, finished_at = :finished_at,
                message_id = COALESCE(:message_id, message_id), interaction_token = NULL,
                report = COALESCE(:report, report)
WHERE id = :id
"""
SET_STATUS = "UPDATE jobs SET status = ? WHERE id = ?"
SET_MESSAGE = "UPDATE jobs SET message_id = ? WHERE id = ?"
GET_JOB = "SELECT * FROM jobs WHERE id = ?"
JOBS_WITH_STATUS = "SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY created_at"
RECENT_JOBS = "SELECT * FROM jobs WHERE guild_id = ? ORDER BY created_at DESC LIMIT ?"
COUNTS = "status != 'refused'"  # a job that counts towards the daily quota (a refused one never ran)
# Faces since a time: the member's rows, and the faces whose rows were forgotten while they still counted.
COUNT_SINCE = f"""
SELECT (SELECT COUNT(*) FROM jobs WHERE guild_id IS :guild AND user_id = :user AND created_at >= :since AND {COUNTS})
     + (SELECT COALESCE(SUM(counted_today), 0) FROM audit
        WHERE guild_id IS :guild AND subject_id = :user AND created_at >= :since)
"""


class JobRows(StoreBase):
    """The ``jobs`` table."""

    async def add_job(self, record: JobRecord) -> None:
        """Insert a new job's row: one try (up to the busy timeout), since a member waits on it."""
        values = {f.name: getattr(record, f.name) for f in fields(JobRecord)}
        await self._run(INSERT_JOB, values, retries=0)

    async def set_status(self, job_id: str, status: JobStatus) -> None:
        await self._run(SET_STATUS, (status, job_id))

    async def set_message(self, job_id: str, message_id: int) -> None:
        await self._run(SET_MESSAGE, (message_id, job_id))

    async def finish_job(
        self,
        job_id: str,
        *,
        status: JobStatus,
        outcome: str,
        report: FaceReport | None = None,
        message_id: int | None = None,
    ) -> None:
        """Record how a job ended; the interaction token is dropped (it is useless after 15 minutes anyway)."""
        await self._run(
            FINISH_JOB,
            {
                "id": job_id,
                "status": status,
                "outcome": outcome,
                "timings": json.dumps(dict(report.timings_s) if report is not None else {}),
                "report": None if report is None else json.dumps(report.to_json()),
                "finished_at": time.time(),
                "message_id": message_id,
            },
        )

    async def get_job(self, job_id: str) -> JobRecord | None:
        rows = await self._run(GET_JOB, (job_id,))
        return job_row(rows[0] if rows else None)

    async def jobs_with_status(self, *statuses: JobStatus) -> list[JobRecord]:
        rows = await self._run(JOBS_WITH_STATUS.format(marks=",".join("?" * len(statuses))), statuses)
        return [record for row in rows if (record := job_row(row)) is not None]

    async def recent_jobs(self, guild_id: int, limit: int = 10) -> list[JobRecord]:
        rows = await self._run(RECENT_JOBS, (guild_id, limit))
        return [record for row in rows if (record := job_row(row)) is not None]

    async def jobs_since(self, guild_id: int | None, user_id: int, since: float) -> int:
        """Faces a member asked for on a server since ``since`` (Unix seconds) that count towards the daily quota,
        forgotten ones included."""
        rows = await self._run(COUNT_SINCE, {"guild": guild_id, "user": user_id, "since": since})
        return int(rows[0][0])
