"""``/faceadmin``: moderator controls for ``/face`` on a server (Manage Server required).

The permission is both a default (``default_permissions``, which server admins may relax in
Integrations) and a runtime check in ``interaction_check``, so relaxing the default never opens
the controls to everyone. Every reply is ephemeral and never pings.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from cogs.base import FaceBot
from cogs.members.answers import settings_text
from cogs.members.forget import confirmation
from cogs.members.help import keeping
from cogs.replies import NO_PINGS, answer_privately, fit_lines, quoted
from cogs.texts import say
from t2f.bounds import BLOCKED_TERM_CHARS, COOLDOWN_S, DAILY_QUOTA, QUEUE_CAPACITY
from t2f.serve.moderation import LANGUAGE_NAMES, Category
from t2f.serve.pattern_check import server_pattern_problem
from t2f.serve.records import RefusalRecord

NOT_A_MODERATOR = "Only members with the Manage Server permission can use /faceadmin."
SUGGESTIVE_ON = (
    'Suggestive words on: prompts like "a woman in a bikini" or "a sultry singer" pass here. '
    "Beside a word for a child they are always refused."
)
SUGGESTIVE_OFF = "Suggestive words off: prompts with words like seductive, sultry, lingerie or bikini are refused here."


def refusal_line(refusal: RefusalRecord) -> str:
    """One refused prompt for /faceadmin refused: when, who, which category and language, which field."""
    category = Category(refusal.category)
    language = f" ({LANGUAGE_NAMES[refusal.language]})" if refusal.language in LANGUAGE_NAMES else ""
    where = "negative prompt" if refusal.field == "negative" else "prompt"
    mark = "⚠️ " if category is Category.MINORS else ""
    when = f"<t:{int(refusal.created_at)}:R>"
    return f"{when} <@{refusal.user_id}> {mark}{category.described}{language}, in the {where}"


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class AdminCog(commands.GroupCog, group_name="faceadmin", group_description="Moderate /face on this server"):
    def __init__(self, bot: FaceBot) -> None:
        self.bot = bot
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        # False raises CheckFailure, which cog_app_command_error answers.
        return interaction.guild_id is not None and interaction.permissions.manage_guild

    async def cog_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        """A failed permission check gets this cog's own answer; the tree's handler answers the rest."""
        if isinstance(error, app_commands.CheckFailure) and not isinstance(error, app_commands.NoPrivateMessage):
            interaction.extras["answered"] = True
            await answer_privately(interaction, NOT_A_MODERATOR)

    async def _reply(self, interaction: discord.Interaction, text: str) -> None:
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_PINGS)

    async def _update(self, interaction: discord.Interaction, **changes: Any) -> None:
        assert interaction.guild_id is not None
        current = await self.bot.store.guild_settings(interaction.guild_id)
        await self.bot.store.save_guild_settings(dataclasses.replace(current, **changes))

    @app_commands.command(name="channel", description="Allow or deny /face in a channel.")
    @app_commands.describe(channel="The channel", allow="True: /face works there; False: it no longer does")
    async def channel(self, interaction: discord.Interaction, channel: discord.TextChannel, allow: bool) -> None:
        assert interaction.guild_id is not None
        current = await self.bot.store.guild_settings(interaction.guild_id)
        allowed = [c for c in current.allowed_channels if c != channel.id] + ([channel.id] if allow else [])
        await self._update(interaction, allowed_channels=tuple(allowed))
        where = ", ".join(f"<#{c}>" for c in allowed) if allowed else "every channel"
        await self._reply(interaction, f"/face now works in: {where}.")

    @app_commands.command(name="cooldown", description="Seconds a member waits between two /face.")
    async def cooldown(
        self, interaction: discord.Interaction, seconds: app_commands.Range[float, COOLDOWN_S.low, COOLDOWN_S.high]
    ) -> None:
        await self._update(interaction, cooldown_s=float(seconds))
        await self._reply(interaction, f"Cooldown set to {seconds:g} s.")

    @app_commands.command(name="quota", description="Faces per member per day on this server.")
    async def quota(
        self, interaction: discord.Interaction, per_day: app_commands.Range[int, DAILY_QUOTA.low, DAILY_QUOTA.high]
    ) -> None:
        await self._update(interaction, daily_quota=int(per_day))
        await self._reply(interaction, f"Daily quota set to {per_day} faces per member.")

    @app_commands.command(name="queuecap", description="Most faces waiting before /face says the queue is full.")
    async def queuecap(
        self, interaction: discord.Interaction, jobs: app_commands.Range[int, QUEUE_CAPACITY.low, QUEUE_CAPACITY.high]
    ) -> None:
        await self._update(interaction, queue_cap=int(jobs))
        await self._reply(interaction, f"Queue cap set to {jobs} waiting faces.")

    @app_commands.command(
        name="blockword", description="Add or remove a word (or re:regex) from this server's prompt filter."
    )
    async def blockword(
        self,
        interaction: discord.Interaction,
        word: app_commands.Range[str, BLOCKED_TERM_CHARS.low, BLOCKED_TERM_CHARS.high],
        add: bool,
    ) -> None:
        assert interaction.guild_id is not None
        current = await self.bot.store.guild_settings(interaction.guild_id)
        if add and word.startswith("re:") and word not in current.blocked_terms:
            patterns = sum(term.startswith("re:") for term in current.blocked_terms)
            if (problem := server_pattern_problem(word[3:], patterns)) is not None:  # saved, it would break /face
                await self._reply(interaction, problem)
                return
        terms = [t for t in current.blocked_terms if t != word] + ([word] if add else [])
        await self._update(interaction, blocked_terms=tuple(terms))
        await self._reply(
            interaction,
            f"{'Blocked' if add else 'Unblocked'} {quoted(word, 100)}; {len(terms)} server words in the filter.",
        )

    @app_commands.command(name="photos", description="Allow or deny faces made from members' photos and avatars.")
    @app_commands.describe(allow="True: /face3d and 'Make a 3D face' work here; False: they do not")
    async def photos(self, interaction: discord.Interaction, allow: bool) -> None:
        await self._update(interaction, photo_input=allow)
        await self._reply(
            interaction,
            "Photos on: members can make 3D faces from photos and avatars (/face3d, 'Make a 3D face')."
            if allow
            else "Photos off: /face3d and 'Make a 3D face' now refuse on this server; /face is unchanged.",
        )

    @app_commands.command(name="suggestive", description="Allow or refuse suggestive words (bikini, sultry) alone.")
    @app_commands.describe(allow="True (the default): they pass alone; False: refused. Beside a child: always refused")
    async def suggestive(self, interaction: discord.Interaction, allow: bool) -> None:
        await self._update(interaction, allow_suggestive=allow)
        await self._reply(interaction, SUGGESTIVE_ON if allow else SUGGESTIVE_OFF)

    @app_commands.command(name="refused", description="The last prompts the filter refused here, by category.")
    async def refused(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        refusals = await self.bot.store.recent_refusals(interaction.guild_id, limit=10)
        # The prompts themselves are not kept: the category and language are what moderators act on.
        lines = [refusal_line(refusal) for refusal in refusals]
        await self._reply(interaction, fit_lines("Refused prompts:", lines, empty="none yet"))

    @app_commands.command(name="ban", description="Stop a member from using /face here.")
    async def ban(self, interaction: discord.Interaction, member: discord.Member) -> None:
        assert interaction.guild_id is not None
        await self.bot.store.ban(interaction.guild_id, member.id, by=interaction.user.id)
        await self._reply(interaction, f"{member.mention} can no longer use /face here.")

    @app_commands.command(name="unban", description="Let a member use /face here again.")
    async def unban(self, interaction: discord.Interaction, member: discord.User) -> None:
        assert interaction.guild_id is not None
        was = await self.bot.store.unban(interaction.guild_id, member.id)
        await self._reply(
            interaction, f"{member.mention} can use /face again." if was else f"{member.mention} was not banned."
        )

    @app_commands.command(name="pause", description="Hold this server's faces: new ones wait until you resume.")
    async def pause(self, interaction: discord.Interaction) -> None:
        self.bot.service.pause(interaction.guild_id)
        await self._reply(
            interaction, "Paused on this server: running faces finish; new requests wait in the queue until you resume."
        )

    @app_commands.command(name="resume", description="Start this server's faces again.")
    async def resume(self, interaction: discord.Interaction) -> None:
        self.bot.service.resume(interaction.guild_id)
        await self._reply(interaction, "Resumed.")

    @app_commands.command(name="queue", description="Show this server's running and waiting faces.")
    async def queue(self, interaction: discord.Interaction) -> None:
        service, guild_id = self.bot.service, interaction.guild_id
        # Other servers' prompts and members are theirs: they appear only as a count.
        lines = [
            f"▶️ `{h.job.job_id}` <@{h.job.user_id}> {quoted(h.job.face.prompt)}"
            for h in service.running()
            if h.job.guild_id == guild_id
        ]
        waiting = service.queued()
        lines += [
            f"{i}. `{h.job.job_id}` <@{h.job.user_id}> {quoted(h.job.face.prompt)}"
            for i, h in enumerate(waiting, start=1)
            if h.job.guild_id == guild_id
        ]
        others = sum(h.job.guild_id != guild_id for h in [*service.running(), *waiting])
        state = "paused" if service.is_paused(guild_id) else "running"
        footer = f"…and {others} faces from other servers." if others else ""
        await self._reply(
            interaction, fit_lines(f"Queue on this server ({state}):", lines, footer=footer, empty="empty")
        )

    @app_commands.command(name="recent", description="The last faces made on this server.")
    async def recent(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        jobs = await self.bot.store.recent_jobs(interaction.guild_id, limit=10)
        lines = [f"`{j.id}` {j.status} <@{j.user_id}> seed {j.seed}: {quoted(j.prompt)}" for j in jobs]
        await self._reply(interaction, fit_lines("Recent faces:", lines, empty="none yet"))

    @app_commands.command(name="settings", description="Everything set for /face on this server.")
    async def settings(self, interaction: discord.Interaction) -> None:
        bot, guild_id = self.bot, interaction.guild_id
        assert guild_id is not None
        text = settings_text(
            await bot.store.guild_settings(guild_id),
            bot.policy.limits,
            keeping(bot),
            photos_default=bot.settings.photo_input,
            paused=bot.service.is_paused(guild_id),
            banned=await bot.store.banned(guild_id),
            locale=interaction.locale,
        )
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_PINGS, suppress_embeds=True)

    @app_commands.command(
        name="forget", description="Delete everything t2f keeps about a member's faces on this server."
    )
    @app_commands.describe(member="The member whose faces to forget")
    async def forget(self, interaction: discord.Interaction, member: discord.User) -> None:
        assert interaction.guild_id is not None
        await interaction.response.send_message(
            say("forget.ask_member", interaction.locale, member=member.mention),
            view=confirmation(interaction.user.id, member.id, interaction.guild_id, interaction.locale),
            ephemeral=True,
            allowed_mentions=NO_PINGS,
        )


async def setup(bot: FaceBot) -> None:
    await bot.add_cog(AdminCog(bot))
