"""Buttons that survive restarts: ``DynamicItem``s whose ``custom_id`` is ``t2f:<action>:<job_id>``.

They hold no state of their own; the job's row in the store says everything. Every click is
answered, refusals included (ephemerally).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from typing import TYPE_CHECKING, Any, cast

import discord

from cogs.base import FaceBot, bot_of
from cogs.replies import NO_PINGS, answer_privately
from t2f.serve.jobs import CancelAnswer

if TYPE_CHECKING:
    from cogs.face import FaceCog
    from cogs.members import ForgetCog

log = logging.getLogger(__name__)
JOB_ID = r"(?P<job_id>[0-9a-f]{12})"
GONE = "This face is no longer in the records."
REROLL_IN_SERVER = "Reroll works in the server where the face was made."


class JobButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=rf"t2f:(?P<action>[a-z]+):{JOB_ID}"):
    """Base of the job buttons: each subclass has its own ``t2f:<action>:<job_id>`` template and ``run``."""

    action = ""
    label = ""
    emoji = ""
    style = discord.ButtonStyle.secondary

    def __init__(self, job_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                label=self.label, emoji=self.emoji or None, style=self.style, custom_id=f"t2f:{self.action}:{job_id}"
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> JobButton:
        return cls(match["job_id"])

    async def callback(self, interaction: discord.Interaction) -> None:
        # discord.py only logs a failing dynamic-item callback; the user must still get an answer.
        try:
            await self.run(interaction)
        except Exception:
            error_id = secrets.token_hex(4)
            log.exception("button %s on job %s failed (error %s)", self.action, self.job_id, error_id)
            await answer_privately(interaction, f"Something went wrong (error {error_id}). Please try again later.")

    async def run(self, interaction: discord.Interaction) -> None:
        raise NotImplementedError


class RerollButton(JobButton, template=rf"t2f:reroll:{JOB_ID}"):
    action, label, emoji, style = "reroll", "Reroll", "🎲", discord.ButtonStyle.primary

    async def run(self, interaction: discord.Interaction) -> None:
        bot = bot_of(interaction)
        if interaction.guild_id is None:  # a face sent by DM: its server's rules (bans, quota) would not apply
            await interaction.response.send_message(REROLL_IN_SERVER, ephemeral=True)
            return
        record = await bot.store.get_job(self.job_id)
        if record is None:
            await interaction.response.send_message(GONE, ephemeral=True)
            return
        cog = cast("FaceCog", bot.get_cog("FaceCog"))  # loaded with this cog's extension, before any button
        await cog.start_job(
            interaction,
            prompt=record.prompt,
            negative_prompt=record.negative_prompt,
            steps=record.steps,
            guidance=record.guidance,
            output=record.output,
            profile=record.profile,
        )


class InfoButton(JobButton, template=rf"t2f:info:{JOB_ID}"):
    action, label, emoji = "info", "Info", "ℹ️"

    async def run(self, interaction: discord.Interaction) -> None:
        record = await bot_of(interaction).store.get_job(self.job_id)
        if record is None:
            await interaction.response.send_message(GONE, ephemeral=True)
            return
        # A member's words, escaped: an embed renders markdown, so "[free nitro](https://…)" would be a link.
        said = discord.utils.escape_markdown
        embed = discord.Embed(title="Face parameters", description=said(record.prompt)[:4000])
        fields: dict[str, object] = {
            "Negative prompt": said(record.negative_prompt) or "(none)",
            "Seed": record.seed,
            "Steps": record.steps,
            "Guidance": f"{record.guidance:g}",
            "Profile": record.profile,
            "Size": f"{record.size} px",
            "Mesh": record.output,
            "Requested by": f"<@{record.user_id}>",
            "Status": str(record.status),
            "Job": record.id,
        }
        report = record.face_report
        if report is not None:
            if report.request is not None:
                fields["Seed"] = report.request.seed  # the seed that made the face (after any repaints)
            if report.seeds_tried:
                fields["Seeds repainted"] = ", ".join(map(str, report.seeds_tried))
            if report.painted_prompt and report.painted_prompt != record.prompt:
                fields["Painted as"] = said(report.painted_prompt)
            if report.painted_negative and report.painted_negative != record.negative_prompt:
                fields["Painted negative"] = said(report.painted_negative)
            if report.model:
                fields["Model"] = report.model
            if report.face is not None and report.face.pose is not None:
                fields["Pose"] = report.face.pose.text()
            if report.prnet is not None and report.prnet.note:
                fields["Note"] = report.prnet.note
        if record.source == "photo":  # a member's photo: nothing was painted, so no prompt, seed or model
            embed.description = "Made from a photo (not kept)."
            faces = report.face.faces_found if report is not None and report.face is not None else None
            fields = {
                "Faces seen": faces or "?",
                "Mesh": record.output,
                "Requested by": f"<@{record.user_id}>",
                "Status": str(record.status),
                "Job": record.id,
            }
        for name, value in fields.items():
            embed.add_field(name=name, value=str(value)[:1024])
        await interaction.response.send_message(embed=embed, ephemeral=True, allowed_mentions=NO_PINGS)


class DeleteButton(JobButton, template=rf"t2f:delete:{JOB_ID}"):
    action, label, emoji, style = "delete", "Delete", "🗑️", discord.ButtonStyle.danger

    async def run(self, interaction: discord.Interaction) -> None:
        record = await bot_of(interaction).store.get_job(self.job_id)
        permissions = interaction.permissions
        is_moderator = permissions.manage_messages or permissions.manage_guild
        if record is not None and interaction.user.id != record.user_id and not is_moderator:
            await interaction.response.send_message(
                "Only the person who asked for this face or a moderator can delete it.", ephemeral=True
            )
            return
        if record is None and not is_moderator:
            await interaction.response.send_message(GONE, ephemeral=True)
            return
        await interaction.response.send_message("Deleted.", ephemeral=True)
        bot = bot_of(interaction)
        if record is not None:  # its record, 3D page, files and any kept photo go at once too (audited)
            forgetting = cast("ForgetCog", bot.get_cog("ForgetCog")).forgetting
            await forgetting.forget_member(
                record.user_id, guild_id=record.guild_id, actor_id=interaction.user.id, job_id=self.job_id
            )
        elif bot.pages is not None:  # a moderator deleting a face whose record is gone: its page too
            await bot.pages.remove(self.job_id)
        if interaction.message is not None:
            with contextlib.suppress(discord.NotFound):  # a second click, or a moderator, deleted it first
                await interaction.message.delete()


class CancelButton(JobButton, template=rf"t2f:cancel:{JOB_ID}"):
    action, label, emoji = "cancel", "Cancel", "✖️"

    async def run(self, interaction: discord.Interaction) -> None:
        bot = bot_of(interaction)
        record = await bot.store.get_job(self.job_id)
        if record is None or interaction.user.id != record.user_id:
            await interaction.response.send_message(
                "Only the person who asked for this face can cancel it.", ephemeral=True
            )
            return
        answer = bot.service.cancel(self.job_id)
        await interaction.response.send_message(CANCEL_ANSWERS[answer], ephemeral=True)


# One answer per thing a cancel can meet, the same at every stage of the job.
CANCEL_ANSWERS = {
    CancelAnswer.STOPPED: "Cancelled.",
    CancelAnswer.STOPPING: "Cancelling your face…",
    CancelAnswer.TOO_LATE: "Too late to cancel: your face is already being finished and will be posted.",
    CancelAnswer.UNKNOWN: "This face is already finished.",
}
BUTTONS: tuple[type[JobButton], ...] = (RerollButton, InfoButton, DeleteButton, CancelButton)


VIEW_IN_3D = "View in 3D"


def job_view(job_id: str, url: str | None = None, *, reroll: bool = True) -> discord.ui.View:
    """Reroll (not for photos), Info and Delete for a delivered face, and a "View in 3D" link when ``url`` is given."""
    view = discord.ui.View(timeout=None)
    for button in (RerollButton, InfoButton, DeleteButton) if reroll else (InfoButton, DeleteButton):
        view.add_item(button(job_id))
    if url is not None:  # a link button: Discord opens it, no interaction reaches the bot
        view.add_item(discord.ui.Button(label=VIEW_IN_3D, emoji="🧊", url=url))
    return view


async def page_url(bot: FaceBot, job_id: str) -> str | None:
    """The public address of a face's 3D page, or None (no web server, no public URL, or no page)."""
    return None if bot.pages is None else await asyncio.to_thread(bot.pages.public_link, job_id)
