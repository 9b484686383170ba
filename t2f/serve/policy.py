"""Who may ask for a face, where and how often: every check that runs before any GPU work.

Each refusal is a :class:`Refused` whose ``user_message`` says why and what to do. The order is
fixed: channel, ban, prompt filter, cooldown, pending jobs, daily quota, queue space. A server whose
moderators paused it still accepts jobs (they wait for the moderators to resume it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from t2f.bounds import COOLDOWN_S
from t2f.errors import T2FError
from t2f.serve.moderation import PromptFilter
from t2f.serve.records import GuildSettings
from t2f.serve.service import JobService

if TYPE_CHECKING:  # the store is passed in; importing it here would pull SQLite into every importer
    from t2f.serve.store import Store

PRUNE_EVERY_S = 60.0


class Refused(T2FError):
    """A request this server's rules do not allow right now."""


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


class Policy:
    """Admission checks for ``/face`` (and rerolls)."""

    def __init__(
        self,
        *,
        store: Store,
        service: JobService,
        prompt_filter: PromptFilter,
        limits: Limits,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.service = service
        self.prompt_filter = prompt_filter
        self.limits = limits
        self.clock = clock
        self._last_request: dict[tuple[int | None, int], float] = {}  # (guild, user) -> last admitted time
        self._pruned_at = clock()

    async def admit(self, *, guild_id: int | None, channel_id: int | None, user_id: int, prompt: str) -> GuildSettings:
        """Return the server's settings when the request may be queued.

        Raises
        ------
        Refused
            With the first rule the request breaks.
        """
        settings = await self.store.guild_settings(guild_id) if guild_id is not None else GuildSettings(guild_id=0)
        if settings.allowed_channels and channel_id not in settings.allowed_channels:
            raise WrongChannel(settings.allowed_channels)
        if guild_id is not None and await self.store.is_banned(guild_id, user_id):
            raise Refused("You are not allowed to use /face on this server.")
        self.prompt_filter.with_terms(list(settings.blocked_terms)).check(prompt)
        cooldown = self.limits.cooldown_s if settings.cooldown_s is None else settings.cooldown_s
        key = (guild_id, user_id)
        waited = self.clock() - self._last_request.get(key, float("-inf"))
        if waited < cooldown:
            raise Refused(f"Slow down: you can ask for another face in {cooldown - waited:.0f} s.")
        pending = self.service.pending_for(user_id)
        if pending >= self.limits.user_pending:
            raise Refused(f"You already have {pending} faces on the way; wait for one to finish.")
        quota = self.limits.daily_quota if settings.daily_quota is None else settings.daily_quota
        midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        if await self.store.jobs_since(guild_id, user_id, midnight) >= quota:
            raise Refused(f"You have reached today's limit of {quota} faces on this server; it resets at midnight UTC.")
        capacity = self.limits.queue_capacity if settings.queue_cap is None else settings.queue_cap
        waiting = len(self.service.queued())
        if waiting >= capacity:
            raise Refused(f"The queue is full ({waiting} faces waiting); please try again in a few minutes.")
        now = self.clock()
        self._last_request[key] = now
        if now - self._pruned_at >= PRUNE_EVERY_S:  # a long-running bot meets many members once each
            # A request older than the longest possible cooldown can never block anyone again.
            self._last_request = {k: t for k, t in self._last_request.items() if now - t < COOLDOWN_S.high}
            self._pruned_at = now
        return settings

    @property
    def remembered_members(self) -> int:
        """How many (server, member) pairs the cooldown still tracks."""
        return len(self._last_request)
