"""Members' data: refused prompts' audit (never the prompt), forgetting a member, retention, a server the bot
left."""

from __future__ import annotations

from dataclasses import fields

from t2f.serve.jobs import UNFINISHED
from t2f.serve.records import JobRecord, RefusalRecord
from t2f.serve.store.base import StoreBase, job_row
from t2f.serve.store.jobs import COUNTS

INSERT_REFUSAL = """
INSERT INTO refusals (guild_id, channel_id, user_id, category, language, field, created_at)
VALUES (:guild_id, :channel_id, :user_id, :category, :language, :field, :created_at)
"""
RECENT_REFUSALS = "SELECT * FROM refusals WHERE guild_id = ? ORDER BY created_at DESC, id DESC LIMIT ?"
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
SCHEDULE_REMOVAL_ONCE = "INSERT OR IGNORE INTO guild_removals (guild_id, due_at) VALUES (?, ?) RETURNING guild_id"
GUILDS_WITH_DATA = """
SELECT guild_id FROM guild_settings UNION SELECT guild_id FROM bans
UNION SELECT guild_id FROM jobs WHERE guild_id IS NOT NULL ORDER BY guild_id
"""
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


class PrivacyRows(StoreBase):
    """The ``refusals``, ``audit`` and ``guild_removals`` tables, and deleting from ``jobs``."""

    async def add_refusal(self, record: RefusalRecord) -> None:
        """Record a refused prompt: one try (up to the busy timeout), since a member waits on the answer."""
        values = {f.name: getattr(record, f.name) for f in fields(RefusalRecord)}
        await self._run(INSERT_REFUSAL, values, retries=0)

    async def recent_refusals(self, guild_id: int, limit: int = 10) -> list[RefusalRecord]:
        """The server's last refused prompts, newest first."""
        rows = await self._run(RECENT_REFUSALS, (guild_id, limit))
        return [RefusalRecord(**{f.name: row[f.name] for f in fields(RefusalRecord)}) for row in rows]

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
        return [record for row in deleted if (record := job_row(row)) is not None]

    async def prune(self, before: float) -> list[str]:
        """Delete finished jobs and audit entries created before ``before`` (Unix seconds); returns the jobs' ids."""
        pruned, _ = await self._transaction([(PRUNE_JOBS, (before,)), (PRUNE_AUDIT, (before,))])
        return [row[0] for row in pruned]

    async def schedule_guild_removal(self, guild_id: int, due_at: float) -> None:
        await self._run(SCHEDULE_REMOVAL, (guild_id, due_at))

    async def schedule_guild_removal_once(self, guild_id: int, due_at: float) -> bool:
        """Schedule a server's removal unless one is pending (whose date stays); False when one was."""
        return bool(await self._run(SCHEDULE_REMOVAL_ONCE, (guild_id, due_at)))

    async def guilds_with_data(self) -> list[int]:
        """Every server with settings, bans or jobs kept."""
        return [int(row[0]) for row in await self._run(GUILDS_WITH_DATA)]

    async def cancel_guild_removal(self, guild_id: int) -> bool:
        """Keep a server's data after all (the bot is back); False when none was to be removed."""
        return bool(await self._run(CANCEL_REMOVAL, (guild_id,)))

    async def due_guild_removals(self, now: float) -> list[int]:
        return [int(row[0]) for row in await self._run(DUE_REMOVALS, (now,))]

    async def forget_guild(self, guild_id: int) -> list[JobRecord]:
        """Delete everything of a server: its jobs (returned), settings, bans, audit entries and pending removal."""
        deleted, *_ = await self._transaction([(sql, {"guild": guild_id}) for sql in FORGET_GUILD])
        return [record for row in deleted if (record := job_row(row)) is not None]

    async def truncate_log(self) -> None:
        """Copy the write-ahead log into the database and empty it, so deleted rows live on in neither."""
        await self._run(TRUNCATE_LOG)
