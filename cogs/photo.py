"""``/face3d`` and the "Make a 3D face" message menu: a photo, a message's image or an avatar made 3D.

The same admission as ``/face`` (one :class:`~t2f.serve.policy.Policy`, so photo and text jobs share the
cooldown, the pending cap, the quota and the queue) runs before anything is downloaded. The photo comes
only from Discord's CDN (:mod:`t2f.files.download`: allowed hosts, a size cap, a timeout), is decoded off
the event loop and lives in the job's memory alone (kept on disk only with ``T2F_KEEP_UPLOADS=on``). The
safety checker and the face detector run in the backend, on the GPU worker, beside the other jobs' PRNet
pass. A photo job's progress and every refusal stay private (an ephemeral deferral); only the finished face
is posted for everyone, through :class:`~cogs.face.FaceCog`'s follow and deliver.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from cogs.base import FaceBot, parent_channel_id
from cogs.face import EditMessage, FaceCog, MeshFormat
from cogs.face.command import interaction_job
from cogs.replies import NO_PINGS, refusal_text
from t2f.errors import T2FError
from t2f.files.download import (
    NOT_A_PHOTO,
    DownloadLimits,
    DownloadRefused,
    check_photo_format,
    download,
    save_upload,
    uploads_folder,
)
from t2f.files.images import load_image
from t2f.serve.jobs import JobRequest, JobResult, JobStatus

log = logging.getLogger(__name__)
MENU_NAME = "Make a 3D face"
PHOTO_TYPES = ("image/png", "image/jpeg", "image/webp")
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
AVATAR_PX = 1024  # the avatar size asked of Discord's CDN: PRNet sees 256 px, detection wants a few hundred
PHOTOS_OFF = "Making faces from photos is switched off on this server."
NO_IMAGE = "That message has no picture; use this on a message with a PNG, JPEG or WebP image attached."
ONE_SOURCE = "Give a photo or a member, not both."
UNREADABLE = "Could not download that image (it may have been deleted); please try again."
DECODES_AT_ONCE = 2
READY = "✅ Your face is ready below · job `{job_id}`"


@dataclass(frozen=True)
class PhotoSource:
    """Where a photo is and how to read it: ``read`` is discord.py's own (the bot's HTTP session)."""

    title: str  # the face's title (its job's "prompt": what /faceadmin and Info show)
    url: str
    read: Callable[[], Awaitable[bytes]]
    size: int | None = None  # bytes, as Discord declares it (attachments); None for avatars
    content_type: str | None = None


def avatar_asset(user: discord.abc.User) -> discord.Asset:
    """The avatar a member shows (their server avatar, else their own, else Discord's default), as a PNG."""
    return user.display_avatar.with_static_format("png").with_size(AVATAR_PX)


def is_photo(attachment: discord.Attachment) -> bool:
    """Whether an attachment claims to be a PNG, JPEG or WebP picture (its bytes are checked later)."""
    kind = (attachment.content_type or "").split(";")[0].strip().lower()
    return kind in PHOTO_TYPES or (not kind and attachment.filename.lower().endswith(PHOTO_SUFFIXES))


def _safe_read(read: Callable[[], Awaitable[bytes]]) -> Callable[[], Awaitable[bytes]]:
    async def run() -> bytes:
        try:
            return await read()
        except (discord.HTTPException, aiohttp.ClientError, TimeoutError):  # gone, forbidden, the CDN or the
            raise DownloadRefused(UNREADABLE) from None  # connection failed: one sentence for the member

    return run


def attachment_source(attachment: discord.Attachment, title: str) -> PhotoSource:
    return PhotoSource(title, attachment.url, _safe_read(attachment.read), attachment.size, attachment.content_type)


class PhotoCog(commands.Cog):
    """Photos to 3D faces: ``/face3d`` (an attachment or an avatar) and the message menu."""

    def __init__(self, bot: FaceBot) -> None:
        self.bot = bot
        self.downloads = DownloadLimits()  # Discord's CDN only; tests add SimCord's
        # Pictures decoded at once: up to ~430 MiB each at the 100-MP limit (bench/results/images-cpu.md),
        # in the process that holds the models.
        self.decoding = asyncio.Semaphore(DECODES_AT_ONCE)
        self.menu = app_commands.ContextMenu(name=MENU_NAME, callback=self.from_message)
        self.menu.guild_only = True

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)  # context menus cannot be declared inside a cog

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    @property
    def faces(self) -> FaceCog:
        return cast(FaceCog, self.bot.get_cog("FaceCog"))  # loaded first (bot.EXTENSIONS)

    @app_commands.command(name="face3d", description="Make a 3D face from a photo, or from a member's avatar.")
    @app_commands.guild_only()
    @app_commands.describe(
        photo="A clear photo of one face (PNG, JPEG or WebP)",
        avatar="Use this member's avatar instead (default: yours, when no photo is given)",
        mesh="File format of the 3D mesh",
        show_photo="Show your photo beside the 3D face in the public result (default: no)",
    )
    async def face3d(
        self,
        interaction: discord.Interaction,
        photo: discord.Attachment | None = None,
        avatar: discord.Member | None = None,
        mesh: MeshFormat = MeshFormat.obj,
        show_photo: bool = False,
    ) -> None:
        """Reconstruct a face from an uploaded photo or an avatar."""
        if photo is not None and avatar is not None:
            await interaction.response.send_message(ONE_SOURCE, ephemeral=True, allowed_mentions=NO_PINGS)
            return
        if photo is not None:
            source = attachment_source(photo, "A 3D face from a photo")
        else:
            asset = avatar_asset(avatar or interaction.user)
            source = PhotoSource("A 3D face from an avatar", asset.url, _safe_read(asset.read))
        await self.start_photo_job(interaction, source, output=mesh.value, show_photo=show_photo)

    async def from_message(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """The message menu: the message's first picture."""
        picture = next((a for a in message.attachments if is_photo(a)), None)
        if picture is None:
            await interaction.response.send_message(NO_IMAGE, ephemeral=True, allowed_mentions=NO_PINGS)
            return
        await self.start_photo_job(interaction, attachment_source(picture, "A 3D face from a message's picture"))

    async def start_photo_job(
        self, interaction: discord.Interaction, source: PhotoSource, *, output: str = "obj", show_photo: bool = False
    ) -> None:
        """Admit, defer privately, download and decode, enqueue and follow one photo job.

        Admission comes before any download; a refusal after it gives the reserved slot back (the
        cooldown included), so a photo that could not be used costs the member nothing. The photo appears in
        the public result only with ``show_photo`` (the member's choice; the message menu never shows it).
        """
        bot, settings = self.bot, self.bot.settings
        face = bot.defaults.request(source.title, seed=0)  # nothing is painted: the title only names the face
        try:
            admission = await bot.policy.admit(
                guild_id=interaction.guild_id,
                channel_id=interaction.channel_id,
                user_id=interaction.user.id,
                request=face,
                parent_id=parent_channel_id(interaction),
            )
        except T2FError as refusal:
            await interaction.response.send_message(refusal_text(refusal), ephemeral=True, allowed_mentions=NO_PINGS)
            return
        allowed = admission.settings.photo_input
        kind = (source.content_type or "").split(";")[0].strip().lower()
        refusal_now = None
        if not (settings.photo_input if allowed is None else allowed):
            refusal_now = PHOTOS_OFF
        elif kind and not kind.startswith("image/"):  # a document or a video: no need to download it
            refusal_now = NOT_A_PHOTO
        if refusal_now is not None:
            bot.policy.release(admission)
            await interaction.response.send_message(refusal_now, ephemeral=True, allowed_mentions=NO_PINGS)
            return
        try:  # private: the refusals below, and the job's progress, are for the member alone
            await interaction.response.defer(ephemeral=True, thinking=True)
        except BaseException:
            bot.policy.release(admission)
            raise
        try:
            data = await download(source.url, source.read, size=source.size, limits=self.downloads)
            check_photo_format(data)
            async with self.decoding:
                pixels = (await asyncio.to_thread(load_image, data)).pixels
        except T2FError as refusal:
            bot.policy.release(admission)
            await interaction.edit_original_response(content=refusal_text(refusal), allowed_mentions=NO_PINGS)
            return
        except BaseException:  # a dropped download, a decoder's crash: the slot is given back all the same
            bot.policy.release(admission)
            raise
        job, record = interaction_job(interaction, face, output=output, photo=pixels, show_photo=show_photo)
        try:
            handle = await bot.policy.enqueue(admission, job, record)
        except T2FError as refusal:
            await interaction.edit_original_response(content=refusal_text(refusal), allowed_mentions=NO_PINGS)
            return
        await self.faces.announce(interaction, job, handle, deliver=functools.partial(self.deliver, interaction))
        if settings.keep_uploads:  # the operator opted in (T2F_KEEP_UPLOADS): keep the original bytes
            await self._keep(job.job_id, data)

    async def _keep(self, job_id: str, data: bytes) -> None:
        folder = uploads_folder(self.bot.settings.output_dir)
        try:
            await asyncio.to_thread(save_upload, folder, job_id, data)
        except OSError as exc:  # the face is still made; the operator reads why the photo was not kept
            log.warning("job %s: could not keep the upload (%s)", job_id, exc)

    async def deliver(
        self,
        interaction: discord.Interaction,
        job: JobRequest,
        result: JobResult,
        edit: EditMessage | None,
        started_at: float,
    ) -> int | None:
        """A finished face is posted for everyone as a follow-up; anything else stays in the private message."""
        faces = self.faces
        if result.status != JobStatus.DONE or edit is None:
            return await faces.deliver(job, result, edit, started_at)

        async def publish(*, attachments: list[discord.File], **reply: Any) -> discord.Message:
            return await interaction.followup.send(files=attachments, wait=True, **reply)

        message_id = await faces.deliver(job, result, publish, started_at)
        with contextlib.suppress(Exception):  # the face is posted: its private note is a nicety, never a failure
            await edit(content=READY.format(job_id=job.job_id), view=None, attachments=[], allowed_mentions=NO_PINGS)
        return message_id


async def setup(bot: FaceBot) -> None:
    await bot.add_cog(PhotoCog(bot))
