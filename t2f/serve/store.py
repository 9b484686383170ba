"""SQLite storage for jobs (which double as the audit log), guild settings and bans.

The only module with SQL. The database runs in WAL mode; every query runs on a worker thread
(``asyncio.to_thread``) behind one lock, so the event loop never waits on disk. Rows come back as
dataclasses. Another process holding the write lock (a backup, an admin's sqlite3 shell) makes a
query wait ``busy_timeout_s`` and retry a few times; after that it raises :class:`StoreUnavailable`,
whose message asks the member to try again (or says the disk is full, when it is). A write that must
land whatever happens (how a job ended) goes through :meth:`Store.eventually`, which keeps trying in the
background until it does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from t2f.errors import T2FError
from t2f.report import FaceReport
from t2f.serve.jobs import JobStatus
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
    source TEXT NOT NULL DEFAULT 'text',
    profile TEXT NOT NULL DEFAULT 'quality'
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
"""
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
COUNT_SINCE = (
    "SELECT COUNT(*) FROM jobs WHERE guild_id IS ? AND user_id = ? AND created_at >= ? AND status != 'refused'"
)
BUSY = "The bot's database is busy right now; please try again in a minute."
DISK_FULL = "The bot's disk is full, so it cannot take new faces right now; its operator has been told."
RETRY_LATER_S = (1.0, 60.0)  # a write that must land: first wait, longest wait between tries
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


class StoreUnavailable(T2FError):
    """The database could not be read or written (locked by another process for too long, or gone)."""


def _job(row: sqlite3.Row | None) -> JobRecord | None:
    if row is None:
        return None
    values = {f.name: row[f.name] for f in fields(JobRecord)}
    return JobRecord(**{**values, "status": JobStatus(values["status"])})


def _migrate(db: sqlite3.Connection) -> None:
    """Bring an older database up to :data:`SCHEMA_VERSION` (version 1 had no report column, version 2 no
    job source nor a server's photo switch, version 3 no painting profile: its jobs were all ``quality``)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    if "report" not in columns:
        db.execute("ALTER TABLE jobs ADD COLUMN report TEXT")
    if "source" not in columns:
        db.execute("ALTER TABLE jobs ADD COLUMN source TEXT NOT NULL DEFAULT 'text'")
    if "profile" not in columns:
        db.execute("ALTER TABLE jobs ADD COLUMN profile TEXT NOT NULL DEFAULT 'quality'")
    if "photo_input" not in {row[1] for row in db.execute("PRAGMA table_info(guild_settings)")}:
        db.execute("ALTER TABLE guild_settings ADD COLUMN photo_input INTEGER")


class Store:
    """Async facade over one SQLite connection. Open with :meth:`open`, close with :meth:`close`."""

    def __init__(self, connection: sqlite3.Connection, *, retries: int = 3, retry_wait_s: float = 0.5) -> None:
        self._db = connection
        self._lock = threading.Lock()
        self.retries = retries
        self.retry_wait_s = retry_wait_s
        self.retry_later_s = RETRY_LATER_S
        self._later: set[asyncio.Task[None]] = set()

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
            db.executescript(SCHEMA)
            _migrate(db)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            return db

        return cls(await asyncio.to_thread(connect), retries=retries, retry_wait_s=retry_wait_s)

    async def close(self, *, settle_s: float = 10.0) -> None:
        """Close, after giving the writes still being retried ``settle_s`` to land (the rest are logged)."""
        if self._later:
            _, left = await asyncio.wait(set(self._later), timeout=settle_s)
            for task in left:
                task.cancel()
            if left:
                log.error("closing the database with %d writes that never landed", len(left))
        await asyncio.to_thread(self._db.close)

    def eventually(self, write: Callable[[], Awaitable[None]], what: str) -> asyncio.Task[None]:
        """Run ``write`` now and, while the database refuses it (locked, a full disk), again in the background,
        waiting longer each time, until it lands. For writes that must not be lost: how a job ended, so a
        restart neither repaints nor re-sends it.

        Parameters
        ----------
        write : makes the write (called again for each try, so it must be safe to repeat).
        what : what it is, for the log.
        """

        async def keep_trying() -> None:
            wait, longest = self.retry_later_s
            while True:
                try:
                    await write()
                except StoreUnavailable as exc:
                    log.warning("%s did not land (%s); trying again in %.0f s", what, exc.user_message, wait)
                    await asyncio.sleep(wait)
                    wait = min(2 * wait, longest)
                    continue
                return

        task = asyncio.get_running_loop().create_task(keep_trying(), name=f"t2f-store: {what}")
        self._later.add(task)
        task.add_done_callback(self._later.discard)
        return task

    @property
    def writes_waiting(self) -> int:
        """Writes still being retried (:meth:`eventually`)."""
        return len(self._later)

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
                if "full" in str(exc):  # SQLITE_FULL: no retry helps until the operator frees space
                    log.error("the database's disk is full: %s", exc)
                    raise StoreUnavailable(DISK_FULL) from exc
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or attempt == retries:
                    log.warning("database query failed (%s, attempt %d): %s", type(exc).__name__, attempt + 1, exc)
                    raise StoreUnavailable(BUSY) from exc
                await asyncio.sleep(self.retry_wait_s * (attempt + 1))
        raise AssertionError("unreachable")

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
        rows = await self._run(COUNT_SINCE, (guild_id, user_id, since))
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
