"""Who may ask for a face, where and how often: every check that runs before any GPU work.

Each refusal is a :class:`Refused` (or another :class:`~t2f.errors.T2FError`) whose ``user_message``
says why and what to do. The order is fixed: the request itself, channel, ban, prompt filter (prompt
and negative prompt, with the server's choice on suggestive words), cooldown, pending jobs, daily
quota, queue space. A prompt the filter refuses is written to the audit log (its category, language and
field, never the prompt) and to the bot's log, before the member is answered.

Admission is atomic. :meth:`Policy.admit` checks and *reserves* a slot (cooldown stamp, one pending
job, one of today's quota, one queue place) under the member's lock, so simultaneous requests cannot
all pass the same check. :meth:`Policy.enqueue` writes the job's row, then queues it, and turns the
reservation into the real thing; if either step fails, or the caller :meth:`Policy.release`s the
admission, nothing of it remains in the counters. A server whose moderators paused it still accepts
jobs (they wait for the moderators to resume it). :meth:`Policy.standing` shows a member the same counts
the checks read (faces left today, cooldown, faces on the way), from the same code.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from t2f.bounds import COOLDOWN_S, check_face_request
from t2f.errors import T2FError
from t2f.faces import FaceRequest
from t2f.serve.jobs import JobRequest, JobStatus
from t2f.serve.moderation import PromptFilter, PromptRejected, Verdict
from t2f.serve.queue import JobHandle
from t2f.serve.records import GuildSettings, JobRecord, RefusalRecord
from t2f.serve.service import JobService

if TYPE_CHECKING:  # the store is passed in; importing it here would pull SQLite into every importer
    from t2f.serve.store import Store

log = logging.getLogger(__name__)
PRUNE_EVERY_S = 60.0
LOCK_WAIT_S = 2.0  # a member's earlier request still being set up: answer within Discord's 3 s, do not wait on
FILTER_CACHE = 256  # compiled filters kept for servers with their own terms (compiling one takes ~20 ms)


class Refused(T2FError):
    """A request this server's rules do not allow right now; ``retry_after_s``: when it may be, if known."""

    def __init__(self, user_message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(user_message)
        self.retry_after_s = retry_after_s


class WrongChannel(Refused):
    """The server allows requests only in ``channels`` (ids; the chat front-end shows them its own way)."""

    def __init__(self, channels: tuple[int, ...]) -> None:
        super().__init__("Faces are not enabled in this channel.")
        self.channels = channels


@dataclass(frozen=True)
class Limits:
    """Bot-wide defaults; a server's own settings override them."""

    cooldown_s: float = 20.0
    daily_quota: int = 30
    user_pending: int = 2
    queue_capacity: int = 50

    def on(self, settings: GuildSettings) -> Limits:
        """The limits on a server: its own settings where it has them, these defaults elsewhere."""
        return Limits(
            cooldown_s=self.cooldown_s if settings.cooldown_s is None else settings.cooldown_s,
            daily_quota=self.daily_quota if settings.daily_quota is None else settings.daily_quota,
            user_pending=self.user_pending,
            queue_capacity=self.queue_capacity if settings.queue_cap is None else settings.queue_cap,
        )


def utc_midnight(now: float) -> float:
    """The start (Unix seconds) of the UTC day ``now`` is in: the daily quota counts from there."""
    return datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


@dataclass(frozen=True)
class Standing:
    """Where a member stands against a server's limits now: what admission checks, and what they are shown.

    ``made_today`` counts the faces asked for since ``day_started`` (UTC midnight, Unix seconds), reserved
    ones included; ``cooldown_left_s`` is how long until the next request may be admitted (0: now);
    ``pending`` counts the member's faces waiting, being made or just admitted, on every server.
    """

    limits: Limits
    made_today: int
    day_started: float
    cooldown_left_s: float
    pending: int

    @property
    def faces_left(self) -> int:
        return max(0, self.limits.daily_quota - self.made_today)

    @property
    def quota_resets_at(self) -> float:
        return self.day_started + 86400.0


@dataclass
class Admission:
    """A reserved slot: the request passed every check, and counts as pending until enqueued or released."""

    guild_id: int | None
    user_id: int
    settings: GuildSettings
    previous_stamp: float | None  # the member's cooldown stamp before this request (restored on release)
    active: bool = True

    @property
    def key(self) -> tuple[int | None, int]:
        return (self.guild_id, self.user_id)


class Policy:
    """Admission checks and slot reservations for ``/face`` (and rerolls, and the web page)."""

    def __init__(
        self,
        *,
        store: Store,
        service: JobService,
        prompt_filter: PromptFilter,
        limits: Limits,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.service = service
        self.prompt_filter = prompt_filter
        self.limits = limits
        self.clock = clock  # cooldowns
        self.wall_clock = wall_clock  # Unix seconds: the quota's day, as the jobs' rows are stamped
        self._last_request: dict[tuple[int | None, int], float] = {}  # (guild, user) -> last admitted time
        self._pruned_at = clock()
        self._locks: dict[tuple[int | None, int], asyncio.Lock] = {}
        self._reserved: Counter[tuple[int | None, int]] = Counter()  # admitted, not yet queued
        self._filters: dict[tuple[str, ...], PromptFilter] = {}

    async def admit(
        self,
        *,
        guild_id: int | None,
        channel_id: int | None,
        user_id: int,
        request: FaceRequest,
        parent_id: int | None = None,
    ) -> Admission:
        """Check the request against every rule and reserve its slot.

        ``parent_id`` is the channel a thread belongs to: a thread of an allowed channel is allowed too.

        Raises
        ------
        InvalidRequest
            When the request itself cannot be painted (a blank prompt, a value out of range).
        Refused
            With the first rule the request breaks.
        """
        check_face_request(request)
        key = (guild_id, user_id)
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            await asyncio.wait_for(lock.acquire(), LOCK_WAIT_S)
        except TimeoutError:
            raise Refused("Your previous request is still being set up; try again in a moment.") from None
        try:
            return await self._check_and_reserve(key, (channel_id, parent_id), request)
        finally:
            lock.release()

    async def standing(self, *, guild_id: int | None, user_id: int) -> Standing:
        """Where a member stands on a server now, counted as :meth:`admit` counts it."""
        return await self._standing((guild_id, user_id), await self._settings(guild_id))

    async def _settings(self, guild_id: int | None) -> GuildSettings:
        return await self.store.guild_settings(guild_id) if guild_id is not None else GuildSettings(guild_id=0)

    async def _standing(self, key: tuple[int | None, int], settings: GuildSettings) -> Standing:
        """The member's standing; nothing awaits after the faces of today are counted, so a caller that checks
        it at once sees the same state its reservation will change."""
        guild_id, user_id = key
        midnight = utc_midnight(self.wall_clock())
        made_today = await self.store.jobs_since(guild_id, user_id, midnight)
        limits = self.limits.on(settings)
        previous = self._last_request.get(key)
        waited = self.clock() - (float("-inf") if previous is None else previous)
        reserved_by_member = sum(n for (_, user), n in self._reserved.items() if user == user_id)
        return Standing(
            limits=limits,
            made_today=made_today + self._reserved[key],
            day_started=midnight,
            cooldown_left_s=max(0.0, limits.cooldown_s - waited),
            pending=self.service.pending_for(user_id) + reserved_by_member,
        )

    async def _check_and_reserve(
        self, key: tuple[int | None, int], channels: tuple[int | None, int | None], request: FaceRequest
    ) -> Admission:
        guild_id, user_id = key
        settings = await self._settings(guild_id)
        if settings.allowed_channels and not any(c in settings.allowed_channels for c in channels if c is not None):
            raise WrongChannel(settings.allowed_channels)
        if guild_id is not None and await self.store.is_banned(guild_id, user_id):
            raise Refused("You are not allowed to use /face on this server.")
        prompt_filter = self._filter_for(settings.blocked_terms)
        suggestive = settings.allow_suggestive is not False
        verdict = prompt_filter.judge(request.prompt, request.negative_prompt, suggestive=suggestive)
        if not verdict.allowed:
            await self._audit(key, channels[0], verdict)  # the channel it was asked in (a thread's own id)
            raise PromptRejected(verdict)
        standing = await self._standing(key, settings)
        # From here on nothing awaits: the checks and the reservation are one step for the event loop.
        limits = standing.limits
        if standing.cooldown_left_s > 0:
            raise Refused(
                f"Slow down: you can ask for another face in {standing.cooldown_left_s:.0f} s.",
                retry_after_s=standing.cooldown_left_s,
            )
        if standing.pending >= limits.user_pending:
            raise Refused(f"You already have {standing.pending} faces on the way; wait for one to finish.")
        if standing.faces_left == 0:
            raise Refused(
                f"You have reached today's limit of {limits.daily_quota} faces on this server; it resets at "
                "midnight UTC.",
                retry_after_s=standing.quota_resets_at - self.wall_clock(),
            )
        capacity = limits.queue_capacity
        waiting = len(self.service.queued()) + sum(self._reserved.values())
        if waiting >= capacity:
            raise Refused(f"The queue is full ({waiting} faces waiting); please try again in a few minutes.")
        now, previous = self.clock(), self._last_request.get(key)
        self._last_request[key] = now
        self._reserved[key] += 1
        self._prune(now)
        return Admission(guild_id, user_id, settings, previous)

    async def enqueue(self, admission: Admission, job: JobRequest, record: JobRecord) -> JobHandle:
        """Write the job's row, then queue it; the row exists before any GPU work can start.

        The reservation ends either way. On failure the admission leaves no trace (cooldown restored).

        Raises
        ------
        StoreUnavailable
            When the row cannot be written (the database is locked or gone); nothing was queued.
        QueueFull
            When the service refuses the job; its row is marked refused and does not count.
        """
        lock = self._locks.setdefault(admission.key, asyncio.Lock())
        async with lock:  # a concurrent admit of this member must see the row or the reservation, not neither
            try:
                await self.store.add_job(record)
                try:
                    return self.service.submit(job)
                except T2FError:
                    await self._mark_refused(job.job_id)
                    raise
            except T2FError:
                self._restore_cooldown(admission)
                raise
            finally:
                self._end(admission)

    def release(self, admission: Admission) -> None:
        """Give a reserved slot back without queueing anything (the caller gave up on the request)."""
        if admission.active:
            self._restore_cooldown(admission)
            self._end(admission)

    @property
    def remembered_members(self) -> int:
        """How many (server, member) pairs the cooldown still tracks."""
        return len(self._last_request)

    @property
    def reserved(self) -> int:
        """Admitted requests not yet queued (nor released)."""
        return sum(self._reserved.values())

    async def _audit(self, key: tuple[int | None, int], channel_id: int | None, verdict: Verdict) -> None:
        """Write a refused prompt to the audit log and the bot's log; a busy database only costs the row."""
        guild_id, user_id = key
        category, language = str(verdict.category), verdict.language or ""
        log.info(
            "prompt refused: %s (%s) in the %s, matching %r; server %s, member %s",
            category,
            language or "server word",
            verdict.field,
            verdict.reason,
            guild_id,
            user_id,
        )
        record = RefusalRecord(guild_id, channel_id, user_id, category, language, str(verdict.field), time.time())
        try:
            await self.store.add_refusal(record)
        except T2FError:
            log.warning("could not record a refused prompt of member %s (the database is busy)", user_id)

    def _filter_for(self, terms: tuple[str, ...]) -> PromptFilter:
        if not terms:
            return self.prompt_filter
        if terms not in self._filters:
            if len(self._filters) >= FILTER_CACHE:
                self._filters.clear()
            self._filters[terms] = self.prompt_filter.with_terms(list(terms))
        return self._filters[terms]

    def _end(self, admission: Admission) -> None:
        if admission.active:
            admission.active = False
            self._reserved[admission.key] -= 1
            if self._reserved[admission.key] <= 0:
                del self._reserved[admission.key]

    def _restore_cooldown(self, admission: Admission) -> None:
        if admission.previous_stamp is None:
            self._last_request.pop(admission.key, None)
        else:
            self._last_request[admission.key] = admission.previous_stamp

    async def _mark_refused(self, job_id: str) -> None:
        try:
            await self.store.finish_job(job_id, status=JobStatus.REFUSED, outcome="queue refused the job")
        except T2FError:
            log.warning("could not mark job %s as refused", job_id)

    def _prune(self, now: float) -> None:
        if now - self._pruned_at < PRUNE_EVERY_S:  # a long-running bot meets many members once each
            return
        # A request older than the longest possible cooldown can never block anyone again.
        self._last_request = {k: t for k, t in self._last_request.items() if now - t < COOLDOWN_S.high}
        self._locks = {k: lock for k, lock in self._locks.items() if lock.locked() or k in self._reserved}
        self._pruned_at = now
