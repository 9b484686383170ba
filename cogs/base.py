"""What every cog needs from its bot, declared here so that no cog imports ``bot.py``, not even for types.

``bot.T2FBot`` is a :class:`FaceBot`; the cogs, buttons and views type their bot as one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import discord
from discord.ext import commands

if TYPE_CHECKING:
    from collections.abc import Callable

    from t2f.config import Settings
    from t2f.serve.deliveries import SavedResults
    from t2f.serve.policy import Policy
    from t2f.serve.requests import RequestDefaults
    from t2f.serve.service import JobService
    from t2f.serve.store import Store
    from t2f.web.pages import FacePages


class FaceBot(commands.Bot):
    """A Discord bot with the serving stack the cogs talk to (see ``bot.T2FBot``, which fills these in)."""

    settings: Settings
    store: Store
    service: JobService
    policy: Policy
    defaults: RequestDefaults  # what a /face leaves out
    saved: SavedResults  # results kept until their delivery is recorded
    warm_up: Callable[[], object] | None
    pages: FacePages | None  # the 3D pages (T2F_WEB_PORT), or None


def bot_of(interaction: discord.Interaction) -> FaceBot:
    """The bot an interaction reached (a button's, a menu's)."""
    return cast(FaceBot, interaction.client)


def parent_channel_id(interaction: discord.Interaction) -> int | None:
    """The channel a thread belongs to, when the interaction came from a thread (its rules are the channel's)."""
    channel = interaction.channel
    return channel.parent_id if isinstance(channel, discord.Thread) else None
