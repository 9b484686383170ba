"""What a server set (its settings), who it banned, and the bot's own notes (``meta``)."""

from __future__ import annotations

import json
import time

from t2f.serve.records import GuildSettings
from t2f.serve.store.base import StoreBase, optional_bool

GET_GUILD = "SELECT * FROM guild_settings WHERE guild_id = ?"
UPSERT_GUILD = """
INSERT INTO guild_settings (guild_id, allowed_channels, cooldown_s, daily_quota, queue_cap, blocked_terms, photo_input,
                            allow_suggestive)
VALUES (:guild_id, :allowed_channels, :cooldown_s, :daily_quota, :queue_cap, :blocked_terms, :photo_input,
        :allow_suggestive)
ON CONFLICT (guild_id) DO UPDATE SET allowed_channels = excluded.allowed_channels, cooldown_s = excluded.cooldown_s,
    daily_quota = excluded.daily_quota, queue_cap = excluded.queue_cap, blocked_terms = excluded.blocked_terms,
    photo_input = excluded.photo_input, allow_suggestive = excluded.allow_suggestive
"""
BAN = "INSERT OR REPLACE INTO bans (guild_id, user_id, banned_by, created_at) VALUES (?, ?, ?, ?)"
UNBAN = "DELETE FROM bans WHERE guild_id = ? AND user_id = ?"
IS_BANNED = "SELECT 1 FROM bans WHERE guild_id = ? AND user_id = ?"
GET_META = "SELECT value FROM meta WHERE key = ?"
SET_META = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"
BANNED = "SELECT user_id FROM bans WHERE guild_id = ? ORDER BY created_at"
# Forgetting (t2f.serve.forget): a member's jobs on one server (every server when :guild is NULL), or one job.


class ServerRows(StoreBase):
    """The ``guild_settings``, ``bans`` and ``meta`` tables."""

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
            photo_input=optional_bool(row["photo_input"]),
            allow_suggestive=optional_bool(row["allow_suggestive"]),
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
                "allow_suggestive": None if settings.allow_suggestive is None else int(settings.allow_suggestive),
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
