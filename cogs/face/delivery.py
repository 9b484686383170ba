"""Delivering a finished job: into its message while the interaction token lives, else to the channel, or
by DM when the channel refuses it."""

from __future__ import annotations

import logging
import time
from typing import Any

import discord

from cogs.base import FaceBot
from cogs.buttons import job_view, page_url
from cogs.face.follow import EditMessage
from cogs.replies import MAX_CONTENT_CHARS, NO_PINGS, TOKEN_LIFETIME_S, as_files, result_embed, too_large
from t2f.serve.jobs import JobRequest, JobResult, JobStatus

log = logging.getLogger(__name__)


class Delivery:
    """Where a finished job's reply goes, and what it says."""

    def __init__(self, bot: FaceBot) -> None:
        self.bot = bot

    async def deliver(
        self, job: JobRequest, result: JobResult, edit: EditMessage | None, started_at: float
    ) -> int | None:
        """Post the result into the job's message while its token lives, else as a channel message; returns
        the id of the message that carries it."""
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
