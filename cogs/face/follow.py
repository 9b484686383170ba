"""Following a job: its progress edited into its message, then its delivery, each job in a task of its own."""

from __future__ import annotations

import asyncio
import functools
import io
import logging
import time
from collections.abc import Awaitable, Callable

import discord

from cogs.base import FaceBot
from cogs.replies import NO_PINGS, TOKEN_LIFETIME_S, progress_text
from t2f.errors import T2FError
from t2f.files.outputs import png_bytes
from t2f.serve.jobs import JobRequest, JobResult, JobStatus
from t2f.serve.queue import JobHandle

log = logging.getLogger(__name__)
EditMessage = Callable[..., Awaitable[discord.Message]]
# How a finished job reaches the channel: Delivery.deliver, or a cog's own (cogs.photo) around it.
Deliver = Callable[[JobRequest, JobResult, "EditMessage | None", float], Awaitable[int | None]]


async def record(write: Awaitable[None], job_id: str) -> None:
    """A store write that must not stop the job: the face is made and delivered even if it fails."""
    try:
        await write
    except T2FError as exc:
        log.warning("job %s: could not update its record (%s)", job_id, exc.user_message)


def log_crash(job_id: str, task: asyncio.Task[None]) -> None:
    """A follower that ended by an error nothing caught: say so with its traceback (asyncio alone would only
    warn when the task is collected)."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("following job %s failed", job_id, exc_info=error)


class Followers:
    """The tasks that follow jobs to their end, one per job; unloading waits for them to deliver."""

    def __init__(self, bot: FaceBot, *, clock: Callable[[], float] = time.perf_counter) -> None:
        self.bot = bot
        self.clock = clock  # what the edit interval is measured on: real elapsed time, as Discord counts it
        self.tasks: set[asyncio.Task[None]] = set()

    async def wait(self, timeout_s: float) -> None:
        """Let results that are on their way be delivered (the service has stopped taking jobs by now)."""
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=timeout_s)

    def follow(self, handle: JobHandle, *, edit: EditMessage | None, started_at: float, deliver: Deliver) -> None:
        """Edit progress into the job's message and deliver its result, in a task of its own.

        ``edit`` edits the job's original message through its interaction token; ``None`` (a job
        resumed after its token expired) means the result goes to the channel as a new message.
        The task starts when the job does, so nothing waits on a job that is only queued.
        """
        loop = asyncio.get_running_loop()

        def spawn() -> None:
            task = loop.create_task(self._follow(handle, edit, started_at, deliver))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            task.add_done_callback(functools.partial(log_crash, handle.job.job_id))

        handle.when_active(spawn)

    async def _follow(self, handle: JobHandle, edit: EditMessage | None, started_at: float, deliver: Deliver) -> None:
        job_id = handle.job.job_id
        if handle.started:  # (a job cancelled while waiting never started)
            await record(self.bot.store.set_status(job_id, JobStatus.RUNNING), job_id)
        edit = await self._show_progress(handle, edit, started_at)
        result = await handle.result
        await self.deliver_once(handle.job, result, edit, started_at, deliver)

    async def deliver_once(
        self, job: JobRequest, result: JobResult, edit: EditMessage | None, started_at: float, deliver: Deliver
    ) -> None:
        """Send a finished job so that it reaches its member once, whatever stops the bot on the way.

        1. Keep the result on disk (:class:`~t2f.serve.deliveries.SavedResults`): from now on a restart
           re-sends it, or finds it sent, and never paints the job again.
        2. Mark the row delivering, and send it.
        3. Record how it ended, with the message's id, retried in the background until the database takes it;
           then let the kept result go.
        """
        store, saved, job_id = self.bot.store, self.bot.saved, job.job_id
        await asyncio.to_thread(saved.save, result)
        await record(store.set_status(job_id, JobStatus.DELIVERING), job_id)
        delivering = time.monotonic()
        try:
            message_id = await deliver(job, result, edit, started_at)
            self.bot.service.metrics.delivered(time.monotonic() - delivering)
            status, outcome = result.status, result.user_message or "ok"
        except Exception:  # e.g. a lost permission or connection: record it, never retry forever
            log.exception("delivering job %s failed", job_id)
            message_id, status, outcome = None, JobStatus.UNDELIVERED, "delivery failed"
        self.record_end(job_id, status=status, outcome=outcome, result=result, message_id=message_id)

    def record_end(
        self, job_id: str, *, status: JobStatus, outcome: str, result: JobResult | None, message_id: int | None
    ) -> None:
        """Record how a job ended (retried until it lands), then drop its kept result."""
        store, saved = self.bot.store, self.bot.saved

        async def write() -> None:
            report = None if result is None else result.report
            await store.finish_job(job_id, status=status, outcome=outcome, report=report, message_id=message_id)
            await asyncio.to_thread(saved.drop, job_id)

        store.eventually(write, f"recording how job {job_id} ended")

    async def _show_progress(
        self, handle: JobHandle, edit: EditMessage | None, started_at: float
    ) -> EditMessage | None:
        """Edit the latest progress into the message until the job ends; returns the edit still usable then
        (``None`` once the token expired: the result goes to the channel).

        Throttled without timers: a progress event edits the message only when the interval has passed since
        the last edit, and always shows the latest state; the final edit supersedes whatever was skipped.
        ``clock`` measures real elapsed time, which is what Discord's rate limits count. While the message
        can be edited, the job's previews are asked for (no one else would see them).
        """
        interval = self.bot.settings.progress_interval_s
        last_edit, shown = float("-inf"), ""
        stop_watching = handle.watch_previews() if edit is not None else None
        try:
            while edit is not None and not handle.result.done():
                await handle.changed.wait()
                handle.changed.clear()
                latest = handle.latest
                if handle.result.done() or latest is None or self.clock() - last_edit < interval:
                    continue
                if time.monotonic() - started_at >= TOKEN_LIFETIME_S:
                    return None  # the token has expired: no more edits; the result goes to the channel
                text = progress_text(latest)
                if text == shown:
                    continue
                try:
                    extra: dict[str, list[discord.File]] = {}
                    if latest.preview is not None:  # encoded off the event loop
                        preview = await asyncio.to_thread(png_bytes, latest.preview)
                        extra = {"attachments": [discord.File(io.BytesIO(preview), "progress.png")]}
                    await edit(content=text, allowed_mentions=NO_PINGS, **extra)
                except Exception as exc:  # refused, or the connection dropped: the job and its message go on
                    log.warning("progress edit for job %s failed (%s: %s)", handle.job.job_id, type(exc).__name__, exc)
                last_edit, shown = self.clock(), text
            return edit
        finally:
            if stop_watching is not None:
                stop_watching()
