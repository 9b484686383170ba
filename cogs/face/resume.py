"""After a restart: the jobs a previous run left unfinished are queued again, found already posted, re-sent
from their kept result, or told why they cannot be."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable

import discord

from cogs.base import FaceBot
from cogs.face.follow import Deliver, EditMessage, Followers, record
from cogs.replies import NO_PINGS, TOKEN_LIFETIME_S, upload_budget
from t2f.serve.jobs import UNFINISHED, JobStatus
from t2f.serve.records import JobRecord, job_request

log = logging.getLogger(__name__)
PHOTO_LOST = "The bot restarted before your photo became a face, and photos are not kept; please send it again."
HISTORY = 100  # recent messages of a channel searched for a result posted just before a restart


PostedMessage = Callable[[FaceBot, JobRecord, float], Awaitable[int | None]]


async def resume_jobs(
    bot: FaceBot, followers: Followers, deliver: Deliver, *, posted: PostedMessage | None = None
) -> None:
    """Finish what a previous run left unfinished, so each member gets their face once.

    Each job is first looked for (``posted``: :meth:`PostedMessages.find`): when its result is already
    posted it is only recorded. Otherwise a job with a kept result is sent from it, never painted
    again, and any other unfinished job is queued again (a photo job is told its photo is gone). Results go
    to the original message while its token lives, else to the channel.
    """
    store, find = bot.store, posted or PostedMessages().find
    rows = await store.jobs_with_status(*UNFINISHED)
    kept = set(await asyncio.to_thread(bot.saved.job_ids))
    for done in kept - {row.id for row in rows}:  # recorded, but the process stopped before it let go of them
        await asyncio.to_thread(bot.saved.drop, done)
    for row in rows:
        age = time.time() - row.created_at
        edit = token_edit(bot, row, age)
        # Any of them may have been sent: on a full disk neither its kept result nor a status may have landed.
        if (message_id := await find(bot, row, age)) is not None:
            log.info("job %s was delivered before the restart (message %s); recorded now", row.id, message_id)
            result = await asyncio.to_thread(bot.saved.load, row.id) if row.id in kept else None
            status, outcome = (JobStatus.DONE, "ok") if result is None else (result.status, result.user_message or "ok")
            followers.record_end(row.id, status=status, outcome=outcome, result=result, message_id=message_id)
            continue
        if row.id in kept:
            await send_kept(bot, followers, deliver, row, edit, age)
            continue
        if row.source == "photo":  # its photo was never stored (cogs.photo): say so instead of resuming
            await record(store.finish_job(row.id, status=JobStatus.FAILED, outcome=PHOTO_LOST), row.id)
            if edit is not None:
                with contextlib.suppress(discord.HTTPException):
                    await edit(content=PHOTO_LOST, allowed_mentions=NO_PINGS)
            continue
        await queue_again(bot, followers, deliver, row, edit, age)


async def queue_again(
    bot: FaceBot, followers: Followers, deliver: Deliver, row: JobRecord, edit: EditMessage | None, age: float
) -> None:
    guild = bot.get_guild(row.guild_id) if row.guild_id else None
    job = job_request(row, upload=upload_budget(guild.filesize_limit if guild else None))
    await bot.store.set_status(row.id, JobStatus.QUEUED)
    handle = bot.service.submit(job, resumed=True)
    followers.follow(handle, edit=edit, started_at=time.monotonic() - age, deliver=deliver)
    log.info("resumed job %s (%.0f s old, via %s)", row.id, age, "token" if edit else "channel")


async def send_kept(
    bot: FaceBot, followers: Followers, deliver: Deliver, row: JobRecord, edit: EditMessage | None, age: float
) -> None:
    """A job painted before the restart and not posted: sent from its kept result, never painted again (or
    queued again when the result turns out unreadable)."""
    result = await asyncio.to_thread(bot.saved.load, row.id)
    if result is None:
        log.warning("job %s: its kept result is unreadable; painting it again", row.id)
        await queue_again(bot, followers, deliver, row, edit, age)
        return
    guild = bot.get_guild(row.guild_id) if row.guild_id else None
    job = job_request(row, upload=upload_budget(guild.filesize_limit if guild else None))
    log.info("job %s: sending its kept result again (%.0f s old)", row.id, age)
    await followers.deliver_once(job, result, edit, time.monotonic() - age, deliver)


def token_edit(bot: FaceBot, row: JobRecord, age: float) -> EditMessage | None:
    """An edit of the job's original message while its interaction token lives, else ``None``."""
    if not (row.interaction_token and row.application_id and row.message_id and age < TOKEN_LIFETIME_S):
        return None
    webhook = discord.Webhook.partial(row.application_id, row.interaction_token, client=bot)
    return functools.partial(webhook.edit_message, row.message_id)


class PostedMessages:
    """Finds a job's result already posted: its original message while the token lives, else a recent message
    of the bot's in its channel (each channel's history read once per restart)."""

    def __init__(self) -> None:
        self._history: dict[int, list[discord.Message]] = {}

    async def find(self, bot: FaceBot, row: JobRecord, age: float) -> int | None:
        """The id of a message that already carries the job's result, or ``None`` when the bot can see none."""
        if row.interaction_token and row.application_id and row.message_id and age < TOKEN_LIFETIME_S:
            webhook = discord.Webhook.partial(row.application_id, row.interaction_token, client=bot)
            try:
                original = await webhook.fetch_message(row.message_id)
                if carries_result(original, row.id):
                    return original.id
            except discord.HTTPException:  # deleted, or the token is gone after all: look in the channel
                pass
        for message in await self._recent(bot, row.channel_id or 0):
            # the bot's own messages, and its interactions' responses (sent by the application's webhook)
            mine = bot.user is not None and message.author.id == bot.user.id
            if (mine or (message.webhook_id is not None and message.webhook_id == bot.application_id)) and (
                carries_result(message, row.id)
            ):
                return message.id
        return None

    async def _recent(self, bot: FaceBot, channel_id: int) -> list[discord.Message]:
        if channel_id not in self._history:
            channel: object = bot.get_channel(channel_id)
            if channel is None and channel_id:  # at start-up the cache is still empty: ask Discord
                with contextlib.suppress(discord.HTTPException):
                    channel = await bot.fetch_channel(channel_id)
            messages: list[discord.Message] = []
            if isinstance(channel, discord.abc.Messageable):
                with contextlib.suppress(discord.HTTPException):  # no Read Message History there: nothing found
                    messages = [message async for message in channel.history(limit=HISTORY)]
            self._history[channel_id] = messages
        return self._history[channel_id]


def carries_result(message: discord.Message, job_id: str) -> bool:
    """Whether ``message`` is the job's delivered result: it names the job and has lost the Cancel button that
    its queued and progress states carry."""
    rows = [row for row in message.components if isinstance(row, discord.ActionRow)]
    buttons = [getattr(item, "custom_id", None) or "" for row in rows for item in row.children]
    if any(custom_id.startswith("t2f:cancel:") for custom_id in buttons):
        return False
    return any(embed.footer.text == f"job {job_id}" for embed in message.embeds) or f"job `{job_id}`" in (
        message.content or ""
    )
