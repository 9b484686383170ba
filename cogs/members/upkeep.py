"""The clean-up that runs by itself: records past their retention every hour, and the data of servers that
removed the bot once their grace period is over (:class:`t2f.serve.forget.Forgetting`).

Removal from a server is noted when Discord says so (``on_guild_remove``: the bot was kicked or the server
deleted, not an outage), or by the sweep for a server with data that the bot is no longer in (it was removed
while the bot was offline, which sends no event), and called off when the bot joins it again; the pending
removals are in the store,
so they survive restarts. Every query runs on the store's thread and every file is deleted on a worker
thread: the event loop never waits on the disk.
"""

from __future__ import annotations

import logging

import discord
from discord.ext import commands, tasks

from cogs.base import FaceBot
from t2f.errors import T2FError
from t2f.serve.forget import Forgetting

log = logging.getLogger(__name__)
SWEEP_EVERY_S = 3600.0


class UpkeepCog(commands.Cog):
    def __init__(self, bot: FaceBot, forgetting: Forgetting) -> None:
        self.bot = bot
        self.forgetting = forgetting

    async def cog_load(self) -> None:
        self.sweeper.start()

    async def cog_unload(self) -> None:
        self.sweeper.cancel()

    def present(self, guild_id: int) -> bool:
        """Whether the bot is in a server now."""
        return self.bot.get_guild(guild_id) is not None

    @tasks.loop(seconds=SWEEP_EVERY_S)
    async def sweeper(self) -> None:
        try:
            await self.forgetting.sweep(present=self.present)
        except (T2FError, OSError) as exc:  # the database was busy, a disk failed: the next hour tries again
            log.warning("the hourly clean-up failed (%s: %s)", type(exc).__name__, exc)
        except Exception:  # a bug must not end the loop: nothing would be cleaned up again until a restart
            log.exception("the hourly clean-up failed; it runs again in an hour")

    @sweeper.before_loop
    async def _after_ready(self) -> None:
        # Before the gateway says which servers the bot is in, every server would look left.
        await self.bot.wait_until_ready()

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        await self.forgetting.guild_left(guild.id)

    @commands.Cog.listener()
    async def on_guild_join(self, guild: discord.Guild) -> None:
        if await self.forgetting.guild_back(guild.id):
            log.info("back in server %s within its grace period: its settings are kept", guild.id)
