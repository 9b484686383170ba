"""``/help`` and ``/limits``: what the bot does and this server's rules, and where a member stands against them.

Both answer privately. The limits shown are the ones admission enforces (:meth:`t2f.serve.policy.Policy.standing`
and :meth:`~t2f.serve.policy.Limits.on`), never counted again here.
"""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from cogs.base import FaceBot
from cogs.members.answers import Keeping, help_text, limits_text
from cogs.replies import NO_PINGS


def keeping(bot: FaceBot) -> Keeping:
    """How long this bot keeps what, from its settings (pages only exist with the web server)."""
    settings = bot.settings
    return Keeping(
        record_days=settings.retention_days,
        page_days=settings.keep_days if bot.pages is not None else 0,
        keeps_photos=settings.keep_uploads,
        privacy_url=settings.privacy_url,
    )


class HelpCog(commands.Cog):
    def __init__(self, bot: FaceBot) -> None:
        self.bot = bot

    async def _reply(self, interaction: discord.Interaction, text: str) -> None:
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_PINGS)

    @app_commands.command(
        name="help", description="What t2f does, this server's rules and limits, and what is kept about you."
    )
    @app_commands.guild_only()
    async def help(self, interaction: discord.Interaction) -> None:
        bot = self.bot
        assert interaction.guild_id is not None
        server = await bot.store.guild_settings(interaction.guild_id)
        photos = bot.settings.photo_input if server.photo_input is None else server.photo_input
        text = help_text(
            server,
            bot.policy.limits.on(server),
            keeping(bot),
            photos=photos,
            paused=bot.service.is_paused(interaction.guild_id),
            locale=interaction.locale,
        )
        help_card = discord.Embed(description=text, colour=discord.Colour.blurple())  # room for a long allow-list
        await interaction.response.send_message(embed=help_card, ephemeral=True, allowed_mentions=NO_PINGS)

    @app_commands.command(
        name="limits", description="How many faces you have left today, your cooldown and your faces on the way."
    )
    @app_commands.guild_only()
    async def limits(self, interaction: discord.Interaction) -> None:
        bot, guild_id, user_id = self.bot, interaction.guild_id, interaction.user.id
        assert guild_id is not None
        standing = await bot.policy.standing(guild_id=guild_id, user_id=user_id)
        banned = await bot.store.is_banned(guild_id, user_id)
        text = limits_text(standing, banned=banned, now=bot.policy.wall_clock(), locale=interaction.locale)
        await self._reply(interaction, text)
