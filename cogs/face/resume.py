"""After a restart: the jobs a previous run left unfinished are queued again, or told why they cannot be."""

from __future__ import annotations

import contextlib
import functools
import logging
import time

import discord

from cogs.base import FaceBot
from cogs.face.follow import Deliver, EditMessage, Followers, record
from cogs.replies import NO_PINGS, TOKEN_LIFETIME_S, upload_budget
from t2f.serve.jobs import UNFINISHED, JobStatus
from t2f.serve.records import JobRecord, job_request

log = logging.getLogger(__name__)
PHOTO_LOST = "The bot restarted before your photo became a face, and photos are not kept; please send it again."


async def resume_jobs(bot: FaceBot, followers: Followers, deliver: Deliver) -> None:
    """Queue again what a previous run left unfinished; results go to the original message or the channel."""
    store = bot.store
    for row in await store.jobs_with_status(*UNFINISHED):
        guild = bot.get_guild(row.guild_id) if row.guild_id else None
        job = job_request(row, upload=upload_budget(guild.filesize_limit if guild else None))
        age = time.time() - row.created_at
        edit = token_edit(bot, row, age)
        if row.source == "photo":  # its photo was never stored (cogs.photo): say so instead of resuming
            await record(store.finish_job(row.id, status=JobStatus.FAILED, outcome=PHOTO_LOST), row.id)
            if edit is not None:
                with contextlib.suppress(discord.HTTPException):
                    await edit(content=PHOTO_LOST, allowed_mentions=NO_PINGS)
            continue
        await store.set_status(row.id, JobStatus.QUEUED)
        handle = bot.service.submit(job, resumed=True)
        followers.follow(handle, edit=edit, started_at=time.monotonic() - age, deliver=deliver)
        log.info("resumed job %s (%.0f s old, via %s)", row.id, age, "token" if edit else "channel")


def token_edit(bot: FaceBot, row: JobRecord, age: float) -> EditMessage | None:
    """An edit of the job's original message while its interaction token lives, else ``None``."""
    if not (row.interaction_token and row.application_id and row.message_id and age < TOKEN_LIFETIME_S):
        return None
    webhook = discord.Webhook.partial(row.application_id, row.interaction_token, client=bot)
    return functools.partial(webhook.edit_message, row.message_id)
