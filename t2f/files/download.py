"""Fetching a member's photo: only from Discord's CDN, capped in bytes and time, never kept by default.

The chat front-end passes the URL and a ``read`` coroutine (discord.py's ``Attachment.read`` or
``Asset.read``, which go through the bot's own HTTP session); :func:`download` checks the URL against
the allowed hosts (https only: no server-side request to any other address, whatever a message
contains), refuses a declared size over the cap before reading, bounds the read by a timeout and
checks the size again after it. :func:`check_photo_format` accepts PNG, JPEG and WebP by their
magic bytes before anything decodes them. Nothing here writes the photo anywhere; :func:`save_upload`
exists for operators who opt in to keeping uploads (``T2F_KEEP_UPLOADS``), and :func:`remove_uploads`
deletes them again (a member forgotten, a record past its retention).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from t2f.errors import InvalidImage

DISCORD_CDN_HOSTS = ("cdn.discordapp.com", "media.discordapp.net")  # attachments and avatars
MAX_PHOTO_BYTES = 25 * 1024 * 1024  # Discord's own upload limit without boosts
DOWNLOAD_TIMEOUT_S = 15.0
NOT_DISCORD = "Only images posted on Discord can be used."
NOT_A_PHOTO = "That file is not an image t2f can read; send a PNG, JPEG or WebP picture."
# Magic bytes of the formats a member may send: PNG, JPEG, and WebP (a RIFF container with a WEBP tag).
FORMATS = {"png": b"\x89PNG\r\n\x1a\n", "jpeg": b"\xff\xd8\xff"}
JOB_ID = re.compile(r"[0-9a-f]{12}")  # t2f.serve.jobs.new_job_id's shape; the only names an upload may have


class DownloadRefused(InvalidImage):
    """A photo that may not, or could not, be fetched; ``user_message`` says why in one sentence."""


@dataclass(frozen=True)
class DownloadLimits:
    """Where photos may come from and how much of them: ``hosts`` (exact names, https only), bytes, seconds."""

    hosts: tuple[str, ...] = DISCORD_CDN_HOSTS
    max_bytes: int = MAX_PHOTO_BYTES
    timeout_s: float = DOWNLOAD_TIMEOUT_S


def check_url(url: str, hosts: tuple[str, ...] = DISCORD_CDN_HOSTS) -> str:
    """Return ``url`` when it is an https address on one of ``hosts`` (no credentials, no other port).

    Raises
    ------
    DownloadRefused
        For any other scheme, host, port or a URL that does not parse.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise DownloadRefused(NOT_DISCORD) from None
    host = (parts.hostname or "").lower().rstrip(".")
    if parts.scheme != "https" or host not in hosts or port not in (None, 443) or parts.username or parts.password:
        raise DownloadRefused(NOT_DISCORD)
    return url


def megabytes(count: int) -> str:
    return f"{count / 1024 / 1024:.1f} MB"


async def download(
    url: str,
    read: Callable[[], Awaitable[bytes]],
    *,
    size: int | None = None,
    limits: DownloadLimits = DownloadLimits(),
) -> bytes:
    """The bytes at ``url``, read by ``read`` once the URL and the declared ``size`` (bytes) pass.

    Raises
    ------
    DownloadRefused
        For a URL off the allowed hosts, a photo over ``limits.max_bytes`` (declared or read), an empty
        one, or a read slower than ``limits.timeout_s``.
    """
    check_url(url, limits.hosts)
    too_large = "The image is too large ({size}); send one under " + megabytes(limits.max_bytes) + "."
    if size is not None and size > limits.max_bytes:
        raise DownloadRefused(too_large.format(size=megabytes(size)))
    try:
        data = await asyncio.wait_for(read(), limits.timeout_s)
    except TimeoutError:
        raise DownloadRefused("The image took too long to download; please try again.") from None
    if len(data) > limits.max_bytes:  # a declared size can be missing (avatars) or wrong
        raise DownloadRefused(too_large.format(size=megabytes(len(data))))
    if not data:
        raise DownloadRefused("The image file is empty.")
    return data


def check_photo_format(data: bytes) -> str:
    """The format of ``data`` ("png", "jpeg" or "webp") from its first bytes.

    Raises
    ------
    DownloadRefused
        For anything else (text, GIF, a video, a document).
    """
    for name, magic in FORMATS.items():
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    raise DownloadRefused(NOT_A_PHOTO)


def uploads_folder(output_dir: Path) -> Path:
    """Where kept uploads live: ``<T2F_OUTPUT_DIR>/uploads``."""
    return output_dir / "uploads"


def save_upload(folder: Path, job_id: str, data: bytes) -> Path:
    """Keep an upload as ``<folder>/<job_id>.<format>`` (only when the operator opted in); returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{job_id}.{check_photo_format(data)}"
    partial = path.with_suffix(path.suffix + ".part")
    partial.write_bytes(data)
    partial.replace(path)
    return path


def remove_uploads(folder: Path, job_ids: Iterable[str]) -> int:
    """Delete the kept uploads of these jobs (``<folder>/<job_id>.<format>``); returns how many there were.

    Blocking: call it off the event loop. A job id must be 12 hex digits (:data:`JOB_ID`), so no id can
    name anything outside ``folder``.
    """
    removed = 0
    for job_id in job_ids:
        if JOB_ID.fullmatch(job_id):
            for path in folder.glob(f"{job_id}.*"):
                path.unlink(missing_ok=True)
                removed += not path.name.endswith(".part")
    return removed
