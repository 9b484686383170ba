"""Forgetting members' data: when they ask (or a moderator does), when it is old, and when a server removes the bot.

What t2f keeps about a face is its job's row in the store (member, server, channel, prompt, outcome), its
files and 3D page (``T2F_OUTPUT_DIR/<job>/``, with the web server on) and, only with ``T2F_KEEP_UPLOADS=on``,
the member's original photo (``T2F_OUTPUT_DIR/uploads/<job>.<format>``). :class:`Forgetting` removes all of
it for a member (:meth:`~Forgetting.forget_member`: their jobs still under way are stopped first, so no face
of theirs is posted afterwards), removes records past ``T2F_RETENTION_DAYS`` (:meth:`~Forgetting.prune`), and
removes a server's data a grace period after the bot was removed from it (:meth:`~Forgetting.guild_left`,
then :meth:`~Forgetting.remove_left_guilds`), so that a re-invite within it keeps the server's settings. The
pending removals live in the store: a restart does not lose them. File work runs on worker threads and
every query through the store's, so none of it blocks the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from t2f.files.download import remove_uploads
from t2f.serve.deliveries import SavedResults
from t2f.serve.policy import utc_midnight
from t2f.serve.records import JobRecord
from t2f.serve.service import JobService

if TYPE_CHECKING:  # the store is passed in; importing it here would pull SQLite into the cogs
    from t2f.serve.store import Store

log = logging.getLogger(__name__)
GUILD_GRACE_S = 3 * 86400.0  # a server's data outlives the bot's removal by this long (a re-invite keeps it)
STOP_WAIT_S = 60.0  # how long forgetting waits for a member's jobs under way to stop (a painting one: one step)


class FileKeeper(Protocol):
    """What keeps a face's files and page (:class:`t2f.web.pages.FacePages`)."""

    async def remove(self, job_id: str) -> bool: ...


@dataclass(frozen=True)
class Forgotten:
    """What forgetting removed: the jobs' rows (their posted messages are the chat's to delete), how many of
    them were still under way and were stopped, and how many kept photos went."""

    jobs: list[JobRecord]
    stopped: int
    uploads: int


class Forgetting:
    """Removes members' and servers' data: rows, files, pages and kept photos.

    Parameters
    ----------
    store, service : the bot's; the service stops jobs still under way (:meth:`JobService.withdraw`).
    pages : the faces' files and pages (``None`` without the web server: no files are kept then).
    uploads : the folder of kept photos (``T2F_KEEP_UPLOADS``).
    saved : results kept until they are posted (:class:`~t2f.serve.deliveries.SavedResults`; ``None``: none kept).
    retention_s : how long a job's record lives (``T2F_RETENTION_DAYS``).
    grace_s : how long a server's data outlives the bot's removal from it.
    clock : Unix seconds, as the rows are stamped (a parameter so tests can move time).
    """

    def __init__(
        self,
        *,
        store: Store,
        service: JobService,
        pages: FileKeeper | None,
        uploads: Path,
        retention_s: float,
        saved: SavedResults | None = None,
        grace_s: float = GUILD_GRACE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.service = service
        self.pages = pages
        self.uploads = uploads
        self.saved = saved
        self.retention_s = retention_s
        self.grace_s = grace_s
        self.clock = clock

    async def forget_member(
        self, user_id: int, *, guild_id: int | None, actor_id: int, job_id: str | None = None
    ) -> Forgotten:
        """Delete everything kept about a member's faces on one server (every server with ``guild_id`` None), or
        about their one face ``job_id`` (its Delete button).

        The rows go first, with one audit entry per server (who asked, whose, how many; never a prompt), then
        the jobs still under way are stopped and awaited (a face whose files were being written is dropped
        when they are done), then the files, pages and kept photos; the database's log is emptied last.
        """
        now = self.clock()
        jobs = await self.store.forget_member(
            user_id, guild_id=guild_id, actor_id=actor_id, since=utc_midnight(now), now=now, job_id=job_id
        )
        stopped = await self._stop(job.id for job in jobs)
        uploads = await self._remove_files([job.id for job in jobs])
        await self.store.truncate_log()
        log.info("forgot %d faces of member %s (asked by %s, server %s)", len(jobs), user_id, actor_id, guild_id)
        return Forgotten(jobs, stopped, uploads)

    async def prune(self) -> int:
        """Delete the records (and kept photos) of jobs older than the retention; returns how many went.

        Pages keep their own lifetime (``T2F_KEEP_DAYS``, pruned by the web server).
        """
        pruned = await self.store.prune(self.clock() - self.retention_s)
        if pruned:
            await asyncio.to_thread(remove_uploads, self.uploads, pruned)
            await self.store.truncate_log()
            log.info("pruned %d job records older than %.0f days", len(pruned), self.retention_s / 86400)
        return len(pruned)

    async def guild_left(self, guild_id: int) -> None:
        """The bot was removed from a server: its data goes after the grace period, unless it comes back."""
        await self.store.schedule_guild_removal(guild_id, self.clock() + self.grace_s)
        log.info("removed from server %s; its data is deleted in %.0f days", guild_id, self.grace_s / 86400)

    async def guild_back(self, guild_id: int) -> bool:
        """The bot is in a server again: keep its data. False when none was to be removed."""
        return await self.store.cancel_guild_removal(guild_id)

    async def note_absent_guilds(self, *, present: Callable[[int], bool]) -> list[int]:
        """Schedule, as :meth:`guild_left` does, the removal of every server with data the bot is not in: one
        that removed it while it was offline sent no event. A removal already pending keeps its date (this
        runs every hour). Returns the servers newly scheduled."""
        due_at = self.clock() + self.grace_s
        absent = [guild_id for guild_id in await self.store.guilds_with_data() if not present(guild_id)]
        noted = [guild_id for guild_id in absent if await self.store.schedule_guild_removal_once(guild_id, due_at)]
        for guild_id in noted:
            log.info("not in server %s, which has data: it is deleted in %.0f days", guild_id, self.grace_s / 86400)
        return noted

    async def remove_left_guilds(self, *, present: Callable[[int], bool]) -> list[int]:
        """Delete the data of every server whose grace period is over; returns their ids.

        ``present`` says whether the bot is in a server now (re-invited while it was offline): such a server's
        removal is called off instead.
        """
        removed = []
        for guild_id in await self.store.due_guild_removals(self.clock()):
            if present(guild_id):
                await self.guild_back(guild_id)
                continue
            jobs = await self.store.forget_guild(guild_id)
            await self._stop(job.id for job in jobs)
            await self._remove_files([job.id for job in jobs])
            removed.append(guild_id)
            log.info("deleted the data of server %s (%d faces): the bot left it", guild_id, len(jobs))
        if removed:
            await self.store.truncate_log()
        return removed

    async def sweep(self, *, present: Callable[[int], bool]) -> None:
        """The periodic clean-up: old records, then servers the bot left (seen now, or earlier)."""
        await self.prune()
        await self.note_absent_guilds(present=present)
        await self.remove_left_guilds(present=present)

    async def _stop(self, job_ids: Iterable[str]) -> int:
        """Stop those of these jobs still under way so nothing of them is delivered, and wait (bounded) until
        each has ended; returns how many were under way."""
        ends = [end for job_id in job_ids if (end := self.service.withdraw(job_id)) is not None]
        if ends:
            _, late = await asyncio.wait(ends, timeout=STOP_WAIT_S)
            if late:
                log.warning("%d forgotten jobs had not stopped after %.0f s", len(late), STOP_WAIT_S)
        return len(ends)

    async def _remove_files(self, job_ids: list[str]) -> int:
        """Remove the jobs' pages and files, their results kept for a re-send, and their kept photos; returns how
        many photos there were."""
        if self.pages is not None:
            for job_id in job_ids:
                await self.pages.remove(job_id)
        if self.saved is not None:
            for job_id in job_ids:  # a stopped job's result is never posted now: nothing to re-send
                await asyncio.to_thread(self.saved.drop, job_id)
        return await asyncio.to_thread(remove_uploads, self.uploads, job_ids)
