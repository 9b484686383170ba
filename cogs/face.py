"""``/face``: validate, enqueue, show progress, deliver. No model code here: it talks to ``bot.service``.

The cog owns its jobs' lives: it follows each job it queued, and on load it queues again (and
follows) the jobs a previous run left unfinished.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import io
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from cogs.buttons import CancelButton, job_view, page_url
from cogs.replies import (
    MAX_CONTENT_CHARS,
    MAX_SEED,
    NO_PINGS,
    TOKEN_LIFETIME_S,
    as_files,
    progress_text,
    queued_text,
    refusal_text,
    result_embed,
    too_large,
    upload_budget,
)
from t2f.bounds import MEMBER_GUIDANCE, MEMBER_NEGATIVE_CHARS, MEMBER_PROMPT_CHARS, MEMBER_STEPS
from t2f.errors import T2FError
from t2f.faces import FaceRequest
from t2f.files.outputs import png_bytes
from t2f.serve.jobs import UNFINISHED, JobRequest, JobResult, JobStatus
from t2f.serve.queue import JobHandle
from t2f.serve.records import JobRecord, job_record, job_request

if TYPE_CHECKING:
    from bot import T2FBot

log = logging.getLogger(__name__)
EditMessage = Callable[..., Awaitable[discord.Message]]
# How a finished job reaches the channel: FaceCog.deliver, or a cog's own (cogs.photo) around it.
Deliver = Callable[[JobRequest, JobResult, "EditMessage | None", float], Awaitable[int | None]]
SHUTDOWN_WAIT_S = 15.0  # how long unloading waits for results still being delivered
ACK_WARNING_S = 2.5  # Discord allows 3 s to answer an interaction; past this the answer was nearly lost
NOT_ANSWERED = "the interaction expired before the bot answered"
PHOTO_LOST = "The bot restarted before your photo became a face, and photos are not kept; please send it again."


def log_crash(job_id: str, task: asyncio.Task[None]) -> None:
    """A follower that ended by an error nothing caught: say so with its traceback (asyncio alone would only
    warn when the task is collected)."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("following job %s failed", job_id, exc_info=error)


class MeshFormat(enum.Enum):
    """What the mesh is delivered as."""

    obj = "obj"
    textured = "textured"
    glb = "glb"


class FaceCog(commands.Cog):
    """The ``/face`` command and the life of each job's message."""

    def __init__(self, bot: T2FBot) -> None:
        self.bot = bot
        self.followers: set[asyncio.Task[None]] = set()

    async def cog_load(self) -> None:
        await self.resume_jobs()

    async def cog_unload(self) -> None:
        """Let results that are on their way be delivered (the service has stopped taking jobs by now)."""
        if self.followers:
            await asyncio.wait(self.followers, timeout=SHUTDOWN_WAIT_S)

    async def resume_jobs(self) -> None:
        """Queue again what a previous run left unfinished; results go to the original message or the channel."""
        store = self.bot.store
        for record in await store.jobs_with_status(*UNFINISHED):
            guild = self.bot.get_guild(record.guild_id) if record.guild_id else None
            job = job_request(record, upload=upload_budget(guild.filesize_limit if guild else None))
            age = time.time() - record.created_at
            edit = self._token_edit(record, age)
            if record.source == "photo":  # its photo was never stored (cogs.photo): say so instead of resuming
                await self._record(
                    self.bot.store.finish_job(record.id, status=JobStatus.FAILED, outcome=PHOTO_LOST), record.id
                )
                if edit is not None:
                    with contextlib.suppress(discord.HTTPException):
                        await edit(content=PHOTO_LOST, allowed_mentions=NO_PINGS)
                continue
            await store.set_status(record.id, JobStatus.QUEUED)
            handle = self.bot.service.submit(job, resumed=True)
            self.follow(handle, edit=edit, started_at=time.monotonic() - age)
            log.info("resumed job %s (%.0f s old, via %s)", record.id, age, "token" if edit else "channel")

    def _token_edit(self, record: JobRecord, age: float) -> EditMessage | None:
        """An edit of the job's original message while its interaction token lives, else ``None``."""
        if not (record.interaction_token and record.application_id and record.message_id and age < TOKEN_LIFETIME_S):
            return None
        webhook = discord.Webhook.partial(record.application_id, record.interaction_token, client=self.bot)
        return functools.partial(webhook.edit_message, record.message_id)

    @app_commands.command(name="face", description="Paint a face from your words and get it as a 3D mesh.")
    @app_commands.guild_only()
    @app_commands.describe(
        prompt="What the face looks like, e.g. 'a smiling woman with curly hair'",
        negative_prompt="What the picture should not show, e.g. 'glasses, blur'",
        seed="Same prompt + same seed = same face; leave empty for a surprise",
        steps="Denoising steps: more is slower and finer",
        guidance="How closely to follow your words (higher is stricter)",
        mesh="File format of the 3D mesh",
        repaint="Paint again with the next seed when the image has no usable face (default: on, off with a seed)",
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
    ) -> None:
        """Admit, defer, enqueue and follow one job (used by /face and the Reroll button).

        ``repaint`` (None: on unless the member chose the seed, so a chosen seed paints that seed only)
        lets the job try the next seeds when an image has no usable face.

        Every check (the request's values, the filter on both prompts, the limits) and the job's row
        (written before the job can be painted) come before the deferral, so every refusal is private.
        """
        bot, settings = self.bot, self.bot.settings
        received = time.monotonic()
        face = FaceRequest(
            prompt=prompt,
            negative_prompt=negative_prompt,
            seed=secrets.randbelow(2**32) if seed is None else seed,
            steps=settings.steps if steps is None else steps,
            guidance=settings.guidance if guidance is None else guidance,
            size=settings.image_size,
        )
        try:
            admission = await bot.policy.admit(
                guild_id=interaction.guild_id,
                channel_id=interaction.channel_id,
                user_id=interaction.user.id,
                request=face,
            )
        except T2FError as refusal:
            await interaction.response.send_message(refusal_text(refusal), ephemeral=True, allowed_mentions=NO_PINGS)
            self._count_late(received)
            return
        job = JobRequest(
            job_id=secrets.token_hex(6),
            user_id=interaction.user.id,
            face=face,
            output=output,
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            upload=upload_budget(interaction.filesize_limit),
            repaints_left=settings.max_repaints if (seed is None if repaint is None else repaint) else 0,
        )
        record = job_record(
            job, created_at=time.time(), interaction_token=interaction.token, application_id=interaction.application_id
        )
        try:  # the row is written (within about a second, or refused) before anything can paint it
            handle = await bot.policy.enqueue(admission, job, record)
        except T2FError as refusal:  # the database was busy, or the queue filled up meanwhile
            await interaction.response.send_message(refusal_text(refusal), ephemeral=True, allowed_mentions=NO_PINGS)
            self._count_late(received)
            return
        try:
            await interaction.response.defer(thinking=True)
        except BaseException:  # the interaction is gone (too late, a dropped connection, a shutdown): unseen
            bot.service.cancel(job.job_id)
            ended = bot.store.finish_job(job.job_id, status=JobStatus.CANCELLED, outcome=NOT_ANSWERED)
            await self._record(ended, job.job_id)  # so no restart paints it for a member who saw nothing
            raise
        self._count_late(received)
        await self.announce(interaction, job, handle)

    async def announce(
        self, interaction: discord.Interaction, job: JobRequest, handle: JobHandle, *, deliver: Deliver | None = None
    ) -> None:
        """Show a queued job's place in the queue, then follow it (:meth:`follow`) whatever that edit did.

        A failed edit is logged, not raised: the job is on its way, and its progress edits and its
        delivery try the message again. Its id is kept so that a restart edits this message.
        """
        bot = self.bot
        position = bot.service.position(job.job_id)  # before any await: the worker may take it at once
        text = queued_text(job.job_id, position, bot.service.eta_seconds(position))
        if bot.service.is_paused(job.guild_id):
            text += " · the moderators paused the queue; it starts when they resume it"
        try:
            queued = await interaction.edit_original_response(
                content=text,
                view=discord.ui.View(timeout=None).add_item(CancelButton(job.job_id)),
                allowed_mentions=NO_PINGS,
            )
            await self._record(bot.store.set_message(job.job_id, queued.id), job.job_id)
        except Exception as exc:
            log.warning("job %s: showing its place in the queue failed (%s: %s)", job.job_id, type(exc).__name__, exc)
        finally:  # even when this task is cancelled: a queued job is always followed to its end
            self.follow(handle, edit=interaction.edit_original_response, started_at=time.monotonic(), deliver=deliver)

    def _count_late(self, received: float) -> None:
        """Discord drops an interaction not answered within 3 s: count the ones this bot came close to."""
        if time.monotonic() - received > ACK_WARNING_S:
            self.bot.service.metrics.acknowledged_late()

    async def _record(self, write: Awaitable[None], job_id: str) -> None:
        """A store write that must not stop the job: the face is made and delivered even if it fails."""
        try:
            await write
        except T2FError as exc:
            log.warning("job %s: could not update its record (%s)", job_id, exc.user_message)

    def follow(
        self, handle: JobHandle, *, edit: EditMessage | None, started_at: float, deliver: Deliver | None = None
    ) -> None:
        """Edit progress into the job's message and deliver its result, in a task of its own.

        ``edit`` edits the job's original message through its interaction token; ``None`` (a job
        resumed after its token expired) means the result goes to the channel as a new message.
        ``deliver`` replaces :meth:`deliver` (photo jobs: progress private, the face public).
        """
        loop = asyncio.get_running_loop()

        def spawn() -> None:
            task = loop.create_task(self._follow(handle, edit, started_at, deliver or self.deliver))
            self.followers.add(task)
            task.add_done_callback(self.followers.discard)
            task.add_done_callback(functools.partial(log_crash, handle.job.job_id))

        handle.when_active(spawn)

    async def _follow(self, handle: JobHandle, edit: EditMessage | None, started_at: float, deliver: Deliver) -> None:
        # Throttle without timers: a progress event edits the message only when the interval has passed
        # since the last edit, and always shows the latest state; the final edit supersedes whatever was
        # skipped. perf_counter measures real elapsed time, which is what Discord's rate limits count.
        interval = self.bot.settings.progress_interval_s
        last_edit, shown = float("-inf"), ""
        if handle.started:  # (a job cancelled while waiting never started)
            await self._record(self.bot.store.set_status(handle.job.job_id, JobStatus.RUNNING), handle.job.job_id)
        while edit is not None and not handle.result.done():
            await handle.changed.wait()
            handle.changed.clear()
            latest = handle.latest
            if handle.result.done() or latest is None or time.perf_counter() - last_edit < interval:
                continue
            if time.monotonic() - started_at >= TOKEN_LIFETIME_S:
                edit = None  # the token has expired: no more edits; the result goes to the channel
                break
            text = progress_text(latest)
            if text == shown:
                continue
            try:
                extra: dict[str, list[discord.File]] = {}
                if latest.preview is not None:  # encoded off the event loop (~30 ms for 512 px)
                    preview = await asyncio.to_thread(png_bytes, latest.preview)
                    extra = {"attachments": [discord.File(io.BytesIO(preview), "progress.png")]}
                await edit(content=text, allowed_mentions=NO_PINGS, **extra)
            except Exception as exc:  # refused, or the connection dropped: the job and its message go on
                log.warning("progress edit for job %s failed (%s: %s)", handle.job.job_id, type(exc).__name__, exc)
            last_edit, shown = time.perf_counter(), text
        result = await handle.result
        job_id = handle.job.job_id
        await self._record(self.bot.store.set_status(job_id, JobStatus.DELIVERING), job_id)
        delivering = time.monotonic()
        try:
            message_id = await deliver(handle.job, result, edit, started_at)
            self.bot.service.metrics.delivered(time.monotonic() - delivering)
        except Exception:  # e.g. a lost permission or connection: record it, never retry forever
            log.exception("delivering job %s failed", handle.job.job_id)
            undelivered = self.bot.store.finish_job(
                job_id, status=JobStatus.UNDELIVERED, outcome="delivery failed", report=result.report
            )
            await self._record(undelivered, job_id)
            return
        finished = self.bot.store.finish_job(
            job_id,
            status=result.status,
            outcome=result.user_message or "ok",
            report=result.report,
            message_id=message_id,
        )
        await self._record(finished, job_id)

    async def deliver(
        self, job: JobRequest, result: JobResult, edit: EditMessage | None, started_at: float
    ) -> int | None:
        """Post the result into the job's message while its token lives, else as a channel message."""
        reply: dict[str, Any] = {"allowed_mentions": NO_PINGS}
        if result.status == JobStatus.DONE:
            reply.update(
                content=None,
                embed=result_embed(job, result),
                view=job_view(job.job_id, await page_url(self.bot, job.job_id), reroll=not job.is_photo),
            )
        else:
            note = f"{result.user_message or 'This face could not be made.'} · job `{job.job_id}`"
            reply.update(content=note[:MAX_CONTENT_CHARS], view=None)
        files = result.files
        if edit is not None and time.monotonic() - started_at < TOKEN_LIFETIME_S:
            try:
                message = await edit(attachments=as_files(files), **reply)
                return message.id
            except discord.NotFound:
                log.info("token of job %s expired; delivering by channel message", job.job_id)
            except discord.HTTPException as exc:
                if exc.status != 413:
                    raise
                message = await edit(attachments=[], **too_large(job, reply, exc.code))
                return message.id
        if job.is_photo and result.status != JobStatus.DONE:  # a photo's refusals stay private, as its progress
            return await self._send_to_member(job, files, reply, reply.get("content") or "")
        return await self._send_to_channel(job, files, reply)

    async def _send_to_channel(self, job: JobRequest, files: dict[str, bytes], reply: dict[str, Any]) -> int | None:
        said = reply.get("content") or ""
        channel = self.bot.get_channel(job.channel_id or 0)
        if channel is None and job.channel_id:
            try:
                channel = await self.bot.fetch_channel(job.channel_id)
            except discord.HTTPException:
                channel = None
        if not isinstance(channel, discord.abc.Messageable):
            log.error("job %s finished but its channel %s is gone; result not delivered", job.job_id, job.channel_id)
            return None
        mention = f"<@{job.user_id}>" + (" your face is ready." if reply.get("embed") else "")
        reply = {
            **reply,
            "content": f"{mention} {reply.get('content') or ''}".strip()[:MAX_CONTENT_CHARS],
            "allowed_mentions": discord.AllowedMentions(
                users=[discord.Object(job.user_id)], roles=False, everyone=False
            ),
        }
        if reply.get("view") is None:
            reply.pop("view", None)
        try:
            message = await channel.send(files=as_files(files), **reply)
        except discord.HTTPException as exc:  # a channel message needs Send Messages and Attach Files there
            if exc.status == 413:  # over this server's upload size: the note without the files, as an edit does
                return (await channel.send(**too_large(job, reply, exc.code, f"<@{job.user_id}> "))).id
            if exc.status != 403:
                raise
            log.warning("job %s: its channel refused the result (%s); sending it to the member", job.job_id, exc)
            return await self._send_to_member(
                job, files, reply, f"I could not post this in <#{job.channel_id}>, so here it is. {said}"
            )
        return message.id

    async def _send_to_member(self, job: JobRequest, files: dict[str, bytes], reply: dict[str, Any], text: str) -> int:
        """The result as a DM to the member who asked for it (no Reroll: a DM has no server's rules)."""
        member = self.bot.get_user(job.user_id) or await self.bot.fetch_user(job.user_id)
        reply = {**reply, "content": text.strip()[:MAX_CONTENT_CHARS], "allowed_mentions": NO_PINGS}
        if reply.get("view") is None:
            reply.pop("view", None)
        else:
            reply["view"] = job_view(job.job_id, await page_url(self.bot, job.job_id), reroll=False)
        message = await member.send(files=as_files(files), **reply)
        return message.id


async def setup(bot: T2FBot) -> None:
    await bot.add_cog(FaceCog(bot))
