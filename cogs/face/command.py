"""``/face``: validate, enqueue, show progress, deliver. No model code here: it talks to ``bot.service``.

The cog owns its jobs' lives: it follows each job it queued (:mod:`cogs.face.follow`), delivers it
(:mod:`cogs.face.delivery`), and on load queues again the jobs a previous run left unfinished
(:mod:`cogs.face.resume`).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time

import discord
import numpy as np
from discord import app_commands
from discord.ext import commands

from cogs.base import FaceBot, parent_channel_id
from cogs.buttons import CancelButton
from cogs.face.delivery import Delivery
from cogs.face.follow import Deliver, EditMessage, Followers, record
from cogs.face.resume import resume_jobs
from cogs.replies import MAX_SEED, NO_PINGS, queued_text, refusal_text, upload_budget
from t2f.bounds import MEMBER_GUIDANCE, MEMBER_NEGATIVE_CHARS, MEMBER_PROMPT_CHARS, MEMBER_STEPS
from t2f.errors import T2FError
from t2f.faces import FaceRequest
from t2f.serve.jobs import JobRequest, JobResult, JobStatus, new_job_id
from t2f.serve.queue import JobHandle
from t2f.serve.records import JobRecord, job_record

log = logging.getLogger(__name__)
SHUTDOWN_WAIT_S = 15.0  # how long unloading waits for results still being delivered
ACK_WARNING_S = 2.5  # Discord allows 3 s to answer an interaction; past this the answer was nearly lost
ANSWER_WITHIN_S = 2.0  # what the checks may take before the member is answered anyway (the answer needs the rest)
SLOW_DATABASE = "The bot's database is slow to answer right now; please try again in a minute."
NOT_ANSWERED = "the interaction expired before the bot answered"


class MeshFormat(enum.Enum):
    """What the mesh is delivered as."""

    obj = "obj"
    textured = "textured"
    glb = "glb"


class Profile(enum.Enum):
    """How the face is painted (:data:`t2f.bounds.PROFILES`)."""

    quality = "quality"
    fast = "fast"


class FaceCog(commands.Cog):
    """The ``/face`` command and the life of each job's message."""

    def __init__(self, bot: FaceBot) -> None:
        self.bot = bot
        self.delivery = Delivery(bot)
        self.followers = Followers(bot)

    async def cog_load(self) -> None:
        await resume_jobs(self.bot, self.followers, self.deliver)

    async def cog_unload(self) -> None:
        """Let results that are on their way be delivered (the service has stopped taking jobs by now)."""
        await self.followers.wait(SHUTDOWN_WAIT_S)

    async def deliver(
        self, job: JobRequest, result: JobResult, edit: EditMessage | None, started_at: float
    ) -> int | None:
        """Post a finished job (see :meth:`Delivery.deliver`); the photo cog wraps it. A job withdrawn because its
        member asked to be forgotten posts nothing (``/forget`` deletes its message)."""
        if result.withdrawn:
            return None
        return await self.delivery.deliver(job, result, edit, started_at)

    @app_commands.command(name="face", description="Paint a face from your words and get it as a 3D mesh.")
    @app_commands.guild_only()
    @app_commands.describe(  # the limits in brief (as /help says them); cogs.texts translates these
        prompt=f"What the face looks like ({MEMBER_PROMPT_CHARS.low} to {MEMBER_PROMPT_CHARS.high} characters), "
        "e.g. 'a smiling woman with curly hair'",
        negative_prompt=f"What the picture should not show, e.g. 'glasses, blur' (up to {MEMBER_NEGATIVE_CHARS.high} "
        "characters)",
        seed="Same prompt + same seed = same face; leave empty for a surprise",
        steps=f"Denoising steps, {MEMBER_STEPS.low} to {MEMBER_STEPS.high}: more is slower and finer",
        guidance=f"How closely to follow your words, {MEMBER_GUIDANCE.low:g} to {MEMBER_GUIDANCE.high:g} "
        "(higher is stricter)",
        mesh="File format of the 3D mesh",
        repaint="Paint again with the next seed when the image has no usable face (default: on, off with a seed)",
        profile="Quality paints every step; fast may take shortcuts and lose a little detail (default: the bot's)",
    )
    async def face(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, MEMBER_PROMPT_CHARS.low, MEMBER_PROMPT_CHARS.high],
        negative_prompt: app_commands.Range[str, MEMBER_NEGATIVE_CHARS.low, MEMBER_NEGATIVE_CHARS.high] = "",
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        steps: app_commands.Range[int, MEMBER_STEPS.low, MEMBER_STEPS.high] | None = None,
        guidance: app_commands.Range[float, MEMBER_GUIDANCE.low, MEMBER_GUIDANCE.high] | None = None,
        mesh: MeshFormat = MeshFormat.obj,
        repaint: bool | None = None,
        profile: Profile | None = None,
    ) -> None:
        """Paint a face and reconstruct it in 3D."""
        await self.start_job(
            interaction,
            prompt=prompt,
            negative_prompt=negative_prompt,
            seed=seed,
            steps=steps,
            guidance=guidance,
            output=mesh.value,
            repaint=repaint,
            profile=None if profile is None else profile.value,
        )

    async def start_job(
        self,
        interaction: discord.Interaction,
        *,
        prompt: str,
        negative_prompt: str = "",
        seed: int | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        output: str = "obj",
        repaint: bool | None = None,
        profile: str | None = None,
    ) -> None:
        """Admit, defer, enqueue and follow one job (used by /face and the Reroll button).

        ``repaint`` (None: on unless the member chose the seed, so a chosen seed paints that seed only)
        lets the job try the next seeds when an image has no usable face.

        Every check (the request's values, the filter on both prompts, the limits) and the job's row
        (written before the job can be painted) come before the deferral, so every refusal is private.
        """
        bot = self.bot
        received = time.monotonic()
        admitted = asyncio.create_task(
            self._admit(
                interaction,
                prompt=prompt,
                negative_prompt=negative_prompt,
                seed=seed,
                steps=steps,
                guidance=guidance,
                output=output,
                repaint=repaint,
                profile=profile,
            )
        )
        done, _ = await asyncio.wait({admitted}, timeout=ANSWER_WITHIN_S)
        if not done:  # the database is slow: answer now, and undo whatever the admission still does
            admitted.add_done_callback(self._abandon)
            await interaction.response.send_message(SLOW_DATABASE, ephemeral=True, allowed_mentions=NO_PINGS)
            return
        try:
            job, handle, place = admitted.result()
        except T2FError as refusal:
            await interaction.response.send_message(refusal_text(refusal), ephemeral=True, allowed_mentions=NO_PINGS)
            self._count_late(received)
            return
        try:
            await interaction.response.defer(thinking=True)
        except BaseException:  # the interaction is gone (too late, a dropped connection, a shutdown): unseen
            bot.service.cancel(job.job_id)
            ended = bot.store.finish_job(job.job_id, status=JobStatus.CANCELLED, outcome=NOT_ANSWERED)
            await record(ended, job.job_id)  # so no restart paints it for a member who saw nothing
            raise
        self._count_late(received)
        await self.announce(interaction, job, handle, place=place)

    async def _admit(
        self,
        interaction: discord.Interaction,
        *,
        prompt: str,
        negative_prompt: str,
        seed: int | None,
        steps: int | None,
        guidance: float | None,
        output: str,
        repaint: bool | None,
        profile: str | None = None,
    ) -> tuple[JobRequest, JobHandle, tuple[int, float]]:
        """The request with its defaults, every check, then its row written and the job queued, with its place
        in the queue and its ETA at that moment (or a :class:`T2FError` saying why not)."""
        bot = self.bot
        face = bot.defaults.request(
            prompt, negative_prompt=negative_prompt, seed=seed, steps=steps, guidance=guidance, profile=profile
        )
        admission = await bot.policy.admit(
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            user_id=interaction.user.id,
            request=face,
            parent_id=parent_channel_id(interaction),
        )
        job, row = interaction_job(
            interaction, face, output=output, repaints_left=bot.defaults.repaints(seed=seed, repaint=repaint)
        )
        # the row is written (within about a second, or refused) before anything can paint it
        handle = await bot.policy.enqueue(admission, job, row)
        position = bot.service.position(job.job_id)  # before any await: the worker may take it at once
        return job, handle, (position, bot.service.eta_seconds(position))

    def _abandon(self, admitted: asyncio.Task[tuple[JobRequest, JobHandle, tuple[int, float]]]) -> None:
        """A request already answered "slow database" whose admission went through after all: its job is
        cancelled and recorded so, so nothing is painted or posted for a member who was told to try again."""
        if admitted.cancelled() or admitted.exception() is not None:  # refused, or gave its slot back
            return
        job, _, _ = admitted.result()
        self.bot.service.cancel(job.job_id)
        store = self.bot.store
        store.eventually(
            lambda: store.finish_job(job.job_id, status=JobStatus.CANCELLED, outcome=NOT_ANSWERED),
            f"cancelling job {job.job_id}",
        )

    async def announce(
        self,
        interaction: discord.Interaction,
        job: JobRequest,
        handle: JobHandle,
        *,
        deliver: Deliver | None = None,
        place: tuple[int, float] | None = None,
    ) -> None:
        """Show a queued job's place in the queue (``place``: its place and ETA when it was queued), then follow
        it whatever that edit did.

        A failed edit is logged, not raised: the job is on its way, and its progress edits and its
        delivery try the message again. Its id is kept so that a restart edits this message.
        """
        bot = self.bot
        if place is None:  # before any await: the worker may take it at once
            position = bot.service.position(job.job_id)
            place = (position, bot.service.eta_seconds(position))
        text = queued_text(job.job_id, *place)
        if bot.service.is_paused(job.guild_id):
            text += " · the moderators paused the queue; it starts when they resume it"
        try:
            queued = await interaction.edit_original_response(
                content=text,
                view=discord.ui.View(timeout=None).add_item(CancelButton(job.job_id)),
                allowed_mentions=NO_PINGS,
            )
            await record(bot.store.set_message(job.job_id, queued.id), job.job_id)
        except Exception as exc:
            log.warning("job %s: showing its place in the queue failed (%s: %s)", job.job_id, type(exc).__name__, exc)
        finally:  # even when this task is cancelled: a queued job is always followed to its end
            self.followers.follow(
                handle,
                edit=interaction.edit_original_response,
                started_at=time.monotonic(),
                deliver=deliver or self.deliver,
            )

    def _count_late(self, received: float) -> None:
        """Discord drops an interaction not answered within 3 s: count the ones this bot came close to."""
        if time.monotonic() - received > ACK_WARNING_S:
            self.bot.service.metrics.acknowledged_late()


def interaction_job(
    interaction: discord.Interaction,
    face: FaceRequest,
    *,
    output: str,
    repaints_left: int = 0,
    photo: np.ndarray | None = None,
    show_photo: bool = False,
) -> tuple[JobRequest, JobRecord]:
    """The job an interaction asks for (who, where, the upload budget of its channel) and its row, with the
    token that lets a restart edit its message."""
    job = JobRequest(
        job_id=new_job_id(),
        user_id=interaction.user.id,
        face=face,
        output=output,
        guild_id=interaction.guild_id,
        channel_id=interaction.channel_id,
        upload=upload_budget(interaction.filesize_limit),
        repaints_left=repaints_left,
        photo=photo,
        show_photo=show_photo,
    )
    row = job_record(
        job, created_at=time.time(), interaction_token=interaction.token, application_id=interaction.application_id
    )
    return job, row


async def setup(bot: FaceBot) -> None:
    await bot.add_cog(FaceCog(bot))
