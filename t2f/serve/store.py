"""SQLite storage for jobs (which double as the audit log), guild settings, bans, and what was done to members'
data (the ``audit`` table: who had whose faces forgotten, never a prompt).

The only module with SQL. The database runs in WAL mode; every query runs on a worker thread
(``asyncio.to_thread``) behind one lock, so the event loop never waits on disk. Rows come back as
dataclasses. Another process holding the write lock (a backup, an admin's sqlite3 shell) makes a
query wait ``busy_timeout_s`` and retry a few times; after that it raises :class:`StoreUnavailable`,
whose message asks the member to try again. Deleted rows are overwritten (``secure_delete``) and, after
a member's data is forgotten, the write-ahead log is truncated, so a forgotten prompt is nowhere in the files.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from t2f.errors import T2FError
from t2f.report import FaceReport
from t2f.serve.jobs import UNFINISHED, JobStatus
from t2f.serve.records import GuildSettings, JobRecord

log = logging.getLogger(__name__)
SCHEMA_VERSION = 4
SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL,
    guild_id INTEGER,
    channel_id INTEGER,
    prompt TEXT NOT NULL,
    negative_prompt TEXT NOT NULL DEFAULT '',
    seed INTEGER NOT NULL,
    steps INTEGER NOT NULL,
    guidance REAL NOT NULL,
    size INTEGER NOT NULL,
    output TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    finished_at REAL,
    outcome TEXT,
    timings TEXT,
    message_id INTEGER,
    interaction_token TEXT,
    application_id INTEGER,
    report TEXT,
    source TEXT NOT NULL DEFAULT 'text'
);
CREATE INDEX IF NOT EXISTS jobs_by_user ON jobs (guild_id, user_id, created_at);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status);
CREATE TABLE IF NOT EXISTS guild_settings (
    guild_id INTEGER PRIMARY KEY,
    allowed_channels TEXT NOT NULL DEFAULT '[]',
    cooldown_s REAL,
    daily_quota INTEGER,
    queue_cap INTEGER,
    blocked_terms TEXT NOT NULL DEFAULT '[]',
    photo_input INTEGER
);
CREATE TABLE IF NOT EXISTS bans (
    guild_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    banned_by INTEGER NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
    guild_id INTEGER,
    actor_id INTEGER NOT NULL,
    subject_id INTEGER NOT NULL,
    action TEXT NOT NULL,
    faces INTEGER NOT NULL,
    counted_today INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_subject ON audit (guild_id, subject_id, created_at);
CREATE TABLE IF NOT EXISTS guild_removals (guild_id INTEGER PRIMARY KEY, due_at REAL NOT NULL);
"""
INSERT_JOB = """
INSERT INTO jobs (id, user_id, guild_id, channel_id, prompt, negative_prompt, seed, steps, guidance, size, output,
                  status, created_at, interaction_token, application_id, source)
VALUES (:id, :user_id, :guild_id, :channel_id, :prompt, :negative_prompt, :seed, :steps, :guidance, :size, :output,
        :status, :created_at, :interaction_token, :application_id, :source)
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
BUSY = "The bot's database is busy right now; please try again in a minute."
GET_GUILD = "SELECT * FROM guild_settings WHERE guild_id = ?"
UPSERT_GUILD = """
INSERT INTO guild_settings (guild_id, allowed_channels, cooldown_s, daily_quota, queue_cap, blocked_terms, photo_input)
VALUES (:guild_id, :allowed_channels, :cooldown_s, :daily_quota, :queue_cap, :blocked_terms, :photo_input)
ON CONFLICT (guild_id) DO UPDATE SET allowed_channels = excluded.allowed_channels, cooldown_s = excluded.cooldown_s,
    daily_quota = excluded.daily_quota, queue_cap = excluded.queue_cap, blocked_terms = excluded.blocked_terms,
    photo_input = excluded.photo_input
"""
BAN = "INSERT OR REPLACE INTO bans (guild_id, user_id, banned_by, created_at) VALUES (?, ?, ?, ?)"
UNBAN = "DELETE FROM bans WHERE guild_id = ? AND user_id = ?"
IS_BANNED = "SELECT 1 FROM bans WHERE guild_id = ? AND user_id = ?"
GET_META = "SELECT value FROM meta WHERE key = ?"
SET_META = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"
BANNED = "SELECT user_id FROM bans WHERE guild_id = ? ORDER BY created_at"
# Forgetting (t2f.serve.forget): a member's jobs on one server (every server when :guild is NULL), or one job.
MEMBER = "user_id = :user AND (:guild IS NULL OR guild_id = :guild) AND (:job IS NULL OR id = :job)"
AUDIT_FORGOTTEN = f"""
INSERT INTO audit (guild_id, actor_id, subject_id, action, faces, counted_today, created_at)
SELECT guild_id, :actor, user_id, :action, COUNT(*), SUM(created_at >= :since AND {COUNTS}), :now
FROM jobs WHERE {MEMBER} GROUP BY guild_id
"""
DELETE_MEMBER_JOBS = f"DELETE FROM jobs WHERE {MEMBER} RETURNING *"
UNFINISHED_TEXT = ", ".join(f"'{status}'" for status in UNFINISHED)  # kept: a later start resumes them
PRUNE_JOBS = f"DELETE FROM jobs WHERE created_at < ? AND status NOT IN ({UNFINISHED_TEXT}) RETURNING id"
PRUNE_AUDIT = "DELETE FROM audit WHERE created_at < ?"
SCHEDULE_REMOVAL = "INSERT OR REPLACE INTO guild_removals (guild_id, due_at) VALUES (?, ?)"
CANCEL_REMOVAL = "DELETE FROM guild_removals WHERE guild_id = ? RETURNING guild_id"
DUE_REMOVALS = "SELECT guild_id FROM guild_removals WHERE due_at <= ? ORDER BY due_at"
FORGET_GUILD = (
    "DELETE FROM jobs WHERE guild_id = :guild RETURNING *",
    "DELETE FROM guild_settings WHERE guild_id = :guild",
    "DELETE FROM bans WHERE guild_id = :guild",
    "DELETE FROM audit WHERE guild_id = :guild",
    "DELETE FROM guild_removals WHERE guild_id = :guild",
)
TRUNCATE_LOG = "PRAGMA wal_checkpoint(TRUNCATE)"


class StoreUnavailable(T2FError):
    """The database could not be read or written (locked by another process for too long, or gone)."""


def _job(row: sqlite3.Row | None) -> JobRecord | None:
    if row is None:
        return None
    values = {f.name: row[f.name] for f in fields(JobRecord)}
    return JobRecord(**{**values, "status": JobStatus(values["status"])})


def _migrate(db: sqlite3.Connection) -> None:
    """Bring an older database up to :data:`SCHEMA_VERSION` (version 1 had no report column, version 2 no
    job source nor a server's photo switch, version 3 no audit nor pending server removals: :data:`SCHEMA`
    creates those tables)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    if "report" not in columns:
        db.execute("ALTER TABLE jobs ADD COLUMN report TEXT")
    if "source" not in columns:
        db.execute("ALTER TABLE jobs ADD COLUMN source TEXT NOT NULL DEFAULT 'text'")
    if "photo_input" not in {row[1] for row in db.execute("PRAGMA table_info(guild_settings)")}:
        db.execute("ALTER TABLE guild_settings ADD COLUMN photo_input INTEGER")


class Store:
    """Async facade over one SQLite connection. Open with :meth:`open`, close with :meth:`close`."""

    def __init__(self, connection: sqlite3.Connection, *, retries: int = 3, retry_wait_s: float = 0.5) -> None:
        self._db = connection
        self._lock = threading.Lock()
        self.retries = retries
        self.retry_wait_s = retry_wait_s

    @classmethod
    async def open(
        cls, path: Path | str, *, busy_timeout_s: float = 1.0, retries: int = 3, retry_wait_s: float = 0.5
    ) -> Store:
        """Open (and create or migrate) the database at ``path``.

        ``busy_timeout_s`` is how long one attempt waits for another connection's write lock; a query
        is tried ``retries`` more times, ``retry_wait_s`` apart, before :class:`StoreUnavailable`.
        """

        def connect() -> sqlite3.Connection:
            if str(path) != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=busy_timeout_s)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA secure_delete=ON")  # a deleted row's bytes are overwritten, not left in free pages
            db.executescript(SCHEMA)
            _migrate(db)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            return db

        return cls(await asyncio.to_thread(connect), retries=retries, retry_wait_s=retry_wait_s)

    async def close(self) -> None:
        await asyncio.to_thread(self._db.close)

    async def _run(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = (), *, retries: int | None = None
    ) -> list[sqlite3.Row]:
        def run() -> list[sqlite3.Row]:
            with self._lock:
                return self._db.execute(sql, params).fetchall()

        retries = self.retries if retries is None else retries
        for attempt in range(retries + 1):
            try:
                return await asyncio.to_thread(run)
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or attempt == retries:
                    log.warning("database query failed (%s, attempt %d): %s", type(exc).__name__, attempt + 1, exc)
                    raise StoreUnavailable(BUSY) from exc
                await asyncio.sleep(self.retry_wait_s * (attempt + 1))
        raise AssertionError("unreachable")

    async def _transaction(
        self, steps: Sequence[tuple[str, Sequence[Any] | dict[str, Any]]]
    ) -> list[list[sqlite3.Row]]:
        """Run ``steps`` (statement, parameters) as one transaction: all of them, or none."""

        def run() -> list[list[sqlite3.Row]]:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    rows = [self._db.execute(sql, params).fetchall() for sql, params in steps]
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
                return rows

        try:
            return await asyncio.to_thread(run)
        except sqlite3.OperationalError as exc:
            log.warning("database transaction failed (%s): %s", type(exc).__name__, exc)
            raise StoreUnavailable(BUSY) from exc

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
        return _job(rows[0] if rows else None)

    async def jobs_with_status(self, *statuses: JobStatus) -> list[JobRecord]:
        rows = await self._run(JOBS_WITH_STATUS.format(marks=",".join("?" * len(statuses))), statuses)
        return [record for row in rows if (record := _job(row)) is not None]

    async def recent_jobs(self, guild_id: int, limit: int = 10) -> list[JobRecord]:
        rows = await self._run(RECENT_JOBS, (guild_id, limit))
        return [record for row in rows if (record := _job(row)) is not None]

    async def jobs_since(self, guild_id: int | None, user_id: int, since: float) -> int:
        """Faces a member asked for on a server since ``since`` (Unix seconds) that count towards the daily quota,
        forgotten ones included."""
        rows = await self._run(COUNT_SINCE, {"guild": guild_id, "user": user_id, "since": since})
        return int(rows[0][0])

    async def guild_settings(self, guild_id: int) -> GuildSettings:
        rows = await self._run(GET_GUILD, (guild_id,))
        if not rows:
            return GuildSettings(guild_id=guild_id)
        row = rows[0]
        return GuildSettings(
            guild_id=guild_id,
            allowed_channels=tuple(json.loads(row["allowed_channels"])),
            cooldown_s=row["cooldown_s"],
            daily_quota=row["daily_quota"],
            queue_cap=row["queue_cap"],
            blocked_terms=tuple(json.loads(row["blocked_terms"])),
            photo_input=None if row["photo_input"] is None else bool(row["photo_input"]),
        )

    async def save_guild_settings(self, settings: GuildSettings) -> None:
        await self._run(
            UPSERT_GUILD,
            {
                "guild_id": settings.guild_id,
                "allowed_channels": json.dumps(list(settings.allowed_channels)),
                "cooldown_s": settings.cooldown_s,
                "daily_quota": settings.daily_quota,
                "queue_cap": settings.queue_cap,
                "blocked_terms": json.dumps(list(settings.blocked_terms)),
                "photo_input": None if settings.photo_input is None else int(settings.photo_input),
            },
        )

    async def ban(self, guild_id: int, user_id: int, *, by: int) -> None:
        await self._run(BAN, (guild_id, user_id, by, time.time()))

    async def unban(self, guild_id: int, user_id: int) -> bool:
        was = await self.is_banned(guild_id, user_id)
        await self._run(UNBAN, (guild_id, user_id))
        return was

    async def is_banned(self, guild_id: int, user_id: int) -> bool:
        return bool(await self._run(IS_BANNED, (guild_id, user_id)))

    async def get_meta(self, key: str) -> str | None:
        rows = await self._run(GET_META, (key,))
        return rows[0][0] if rows else None

    async def set_meta(self, key: str, value: str) -> None:
        await self._run(SET_META, (key, value))

    async def banned(self, guild_id: int) -> list[int]:
        """The members banned from ``/face`` on a server, the earliest first."""
        return [int(row[0]) for row in await self._run(BANNED, (guild_id,))]

    # -- members' data: forgetting, retention, a server the bot left (t2f.serve.forget) ---------------------
    async def forget_member(
        self, user_id: int, *, guild_id: int | None, actor_id: int, since: float, now: float, job_id: str | None = None
    ) -> list[JobRecord]:
        """Delete a member's jobs on one server (every server when ``guild_id`` is None), or their one job
        ``job_id``, and record, per server, an audit entry without their prompts ("forget", or "delete" for one
        job); returns the deleted rows. ``since`` is the start of the quota's day: the entry keeps how many of
        them still counted towards it."""
        member = {"user": user_id, "guild": guild_id, "job": job_id}
        action = "forget" if job_id is None else "delete"
        audit = {**member, "actor": actor_id, "action": action, "since": since, "now": now}
        _, deleted = await self._transaction([(AUDIT_FORGOTTEN, audit), (DELETE_MEMBER_JOBS, member)])
        return [record for row in deleted if (record := _job(row)) is not None]

    async def prune(self, before: float) -> list[str]:
        """Delete finished jobs and audit entries created before ``before`` (Unix seconds); returns the jobs' ids."""
        pruned, _ = await self._transaction([(PRUNE_JOBS, (before,)), (PRUNE_AUDIT, (before,))])
        return [row[0] for row in pruned]

    async def schedule_guild_removal(self, guild_id: int, due_at: float) -> None:
        await self._run(SCHEDULE_REMOVAL, (guild_id, due_at))

    async def cancel_guild_removal(self, guild_id: int) -> bool:
        """Keep a server's data after all (the bot is back); False when none was to be removed."""
        return bool(await self._run(CANCEL_REMOVAL, (guild_id,)))

    async def due_guild_removals(self, now: float) -> list[int]:
        return [int(row[0]) for row in await self._run(DUE_REMOVALS, (now,))]

    async def forget_guild(self, guild_id: int) -> list[JobRecord]:
        """Delete everything of a server: its jobs (returned), settings, bans, audit entries and pending removal."""
        deleted, *_ = await self._transaction([(sql, {"guild": guild_id}) for sql in FORGET_GUILD])
        return [record for row in deleted if (record := _job(row)) is not None]

    async def truncate_log(self) -> None:
        """Copy the write-ahead log into the database and empty it, so deleted rows live on in neither."""
        await self._run(TRUNCATE_LOG)
