"""``/forget``: a member has everything t2f keeps about their faces deleted, after confirming with a button.

The button (:class:`ForgetButton`) carries who asked, whose faces, where and until when it may be pressed in
its ``custom_id``, so it works after a restart and only for the person who asked (a moderator's, from
``/faceadmin forget``, only while they still moderate that server). Pressing it stops the member's faces still
being made, deletes their rows (with an audit entry that keeps no prompt), files, 3D pages and kept photos
(:class:`t2f.serve.forget.Forgetting`), then the faces the bot posted for them.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
from datetime import timedelta
from typing import Any, cast

import discord
from discord import app_commands
from discord.ext import commands

from cogs.base import FaceBot, bot_of
from cogs.replies import NO_PINGS
from cogs.texts import say
from t2f.errors import T2FError
from t2f.serve.forget import Forgetting
from t2f.serve.records import JobRecord

log = logging.getLogger(__name__)
CONFIRM_S = 300  # how long a confirmation button works
EVERY_SERVER = 0  # the ``guild`` of a member's own request: their faces everywhere


class ForgetButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"t2f:forget:(?P<actor>\d+):(?P<subject>\d+):(?P<guild>\d+):(?P<expires>\d+)",
):
    """Confirms forgetting ``subject``'s faces (on ``guild``, or everywhere for 0), pressed by ``actor`` alone."""

    def __init__(
        self, actor: int, subject: int, guild: int, expires: int, locale: discord.Locale | None = None
    ) -> None:
        label = say("forget.button" if actor == subject else "forget.button_member", locale)
        custom_id = f"t2f:forget:{actor}:{subject}:{guild}:{expires}"
        super().__init__(discord.ui.Button(label=label, style=discord.ButtonStyle.danger, custom_id=custom_id))
        self.actor, self.subject, self.guild, self.expires = actor, subject, guild, expires

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> ForgetButton:
        return cls(int(match["actor"]), int(match["subject"]), int(match["guild"]), int(match["expires"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        locale = interaction.locale
        refusal = None
        if interaction.user.id != self.actor:
            refusal = say("forget.not_yours", locale)
        elif discord.utils.utcnow().timestamp() > self.expires:
            refusal = say("forget.expired", locale)
        elif self.guild != EVERY_SERVER and not (
            interaction.guild_id == self.guild and interaction.permissions.manage_guild
        ):
            refusal = say("forget.not_yours", locale)  # no longer a moderator there
        if refusal is not None:
            await interaction.response.send_message(refusal, ephemeral=True, allowed_mentions=NO_PINGS)
            return
        # The button goes at once, so a second press cannot start it twice.
        await interaction.response.edit_message(content=say("forget.working", locale), view=None)
        try:
            text = await self._forget(bot_of(interaction), locale)
        except T2FError as exc:  # the database stayed busy: nothing was deleted, and the member can ask again
            text = exc.user_message
        except Exception:  # discord.py would only log it; the member must read that it did not happen
            error_id = secrets.token_hex(4)
            log.exception("forgetting member %s failed (error %s)", self.subject, error_id)
            text = f"Something went wrong (error {error_id}). Please try again later."
        await interaction.edit_original_response(content=text, allowed_mentions=NO_PINGS)

    async def _forget(self, bot: FaceBot, locale: discord.Locale) -> str:
        forgetting = cast(ForgetCog, bot.get_cog("ForgetCog")).forgetting
        where = None if self.guild == EVERY_SERVER else self.guild
        forgotten = await forgetting.forget_member(self.subject, guild_id=where, actor_id=self.actor)
        deleted = await delete_posted(bot, forgotten.jobs)
        values = {"faces": len(forgotten.jobs), "stopped": forgotten.stopped, "messages": deleted}
        if self.actor == self.subject:
            return say("forget.done", locale, **values)
        return say("forget.done_member", locale, member=f"<@{self.subject}>", **values)


def confirmation(actor: int, subject: int, guild: int, locale: discord.Locale | None = None) -> discord.ui.View:
    """The view with the one button that confirms forgetting, working for :data:`CONFIRM_S` seconds."""
    expires = int((discord.utils.utcnow() + timedelta(seconds=CONFIRM_S)).timestamp())
    return discord.ui.View(timeout=None).add_item(ForgetButton(actor, subject, guild, expires, locale))


async def delete_posted(bot: FaceBot, jobs: list[JobRecord]) -> int:
    """Delete the messages the bot posted with these faces (its own: no permission needed); returns how many.

    A message already gone, in a channel the bot no longer sees, or sent by DM is skipped.
    """
    deleted = 0
    for job in jobs:
        if job.message_id is None or job.channel_id is None:
            continue
        message = bot.get_partial_messageable(job.channel_id).get_partial_message(job.message_id)
        with contextlib.suppress(discord.HTTPException):
            await message.delete()
            deleted += 1
    return deleted


class ForgetCog(commands.Cog):
    """``/forget``, and the :class:`~t2f.serve.forget.Forgetting` that ``/faceadmin forget`` and the upkeep use."""

    def __init__(self, bot: FaceBot, forgetting: Forgetting) -> None:
        self.bot = bot
        self.forgetting = forgetting

    @app_commands.command(
        name="forget", description="Delete everything t2f keeps about your faces (you confirm first)."
    )
    async def forget(self, interaction: discord.Interaction) -> None:
        """Works in DMs too: a member who left every server with the bot can still be forgotten."""
        user = interaction.user.id
        await interaction.response.send_message(
            say("forget.ask", interaction.locale),
            view=confirmation(user, user, EVERY_SERVER, interaction.locale),
            ephemeral=True,
            allowed_mentions=NO_PINGS,
        )
