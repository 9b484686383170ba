"""What every Discord reply of the bot shares: Discord's limits, no pings, private answers, refusals,
and the texts and cards of a job's message (queued, progress, the result's embed).

Discord's numbers live here and nowhere else in the project (``../shared/docs/discord.md`` has sources).
"""

from __future__ import annotations

import io
import logging
import re
from typing import Any

import discord

from t2f.errors import T2FError
from t2f.files.outputs import PREVIEW_FILE, TURNTABLE_FILE
from t2f.serve.jobs import JobPhase, JobProgress, JobRequest, JobResult, UploadBudget
from t2f.serve.moderation import safe_echo
from t2f.serve.policy import WrongChannel

log = logging.getLogger(__name__)
NO_PINGS = discord.AllowedMentions.none()
# Discord's interaction tokens expire after 15 minutes; keep a margin before switching to channel messages.
TOKEN_LIFETIME_S = 14 * 60
MAX_CONTENT_CHARS = 2000  # one message's text
MAX_EMBED_TITLE = 256
MAX_EMBED_DESCRIPTION = 4096
MAX_FIELD_CHARS = 1024
MAX_MESSAGE_BYTES = 25 * 1024 * 1024  # all files of one message together
# Per file, when no interaction says (a job resumed after a restart): discord.py's own default, the
# smallest limit any server has had.
DEFAULT_FILE_BYTES = 10 * 1024 * 1024
MAX_SEED = 2**53 - 1  # integer options are JavaScript numbers in Discord's clients


def upload_budget(per_file: int | None) -> UploadBudget:
    """The upload budget of one message: the interaction's per-file limit (or the default) and Discord's total."""
    return UploadBudget(per_file=per_file or DEFAULT_FILE_BYTES, total=MAX_MESSAGE_BYTES)


def refusal_text(error: T2FError) -> str:
    """What a member reads for a library error; a channel refusal names the channels that work."""
    if isinstance(error, WrongChannel) and error.channels:
        places = ", ".join(f"<#{channel}>" for channel in error.channels[:5])
        return f"/face is not enabled in this channel. Try {places}."
    return error.user_message


# What Discord would make a link of: an address with a scheme, or starting with "www.".
LINKABLE = re.compile(r"(?:\b[a-z][a-z0-9+.-]*://|\bwww\.)\S+", re.IGNORECASE)


def _escaped(text: str) -> str:
    """Markdown, masked-link brackets and mentions made inert."""
    escaped = discord.utils.escape_markdown(text, ignore_links=False)
    return discord.utils.escape_mentions(re.sub(r"(?<!\\)\[", r"\\[", escaped))


def quoted(text: str, limit: int = 60) -> str:
    """A member's text as a list shows it: one line, at most ``limit`` characters, no bidi tricks, no
    markdown (a "```" cannot open a code block, "[x](url)" is no masked link), no mention syntax, and
    every address as inline code, so a moderator's view never offers a member's link to click."""
    echoed, parts, start = safe_echo(text, limit), [], 0
    for link in LINKABLE.finditer(echoed):  # safe_echo made every backtick a look-alike: no code breaks out
        parts += [_escaped(echoed[start : link.start()]), f"`{link[0]}`"]
        start = link.end()
    return "".join([*parts, _escaped(echoed[start:])])


def embed_title(text: str, limit: int = MAX_EMBED_TITLE) -> str:
    """A member's prompt as an embed's title, escaped as the Info card escapes it: one line (new lines
    and bidi marks gone), markdown and masked links escaped, mentions inert; cut to ``limit`` after
    escaping without leaving half an escape."""
    title = _escaped(safe_echo(text, limit))
    if len(title) <= limit:
        return title
    cut = title[: limit - 1]
    trailing = len(cut) - len(cut.rstrip("\\"))
    return (cut[:-1] if trailing % 2 else cut) + "…"


def fit_lines(
    header: str, lines: list[str], *, footer: str = "", empty: str = "none", limit: int = MAX_CONTENT_CHARS
) -> str:
    """``header``, as many whole ``lines`` as fit in one message (then how many were left out), ``footer``."""
    end = f"\n{footer}" if footer else ""
    if not lines:
        return f"{header}\n{empty}{end}"
    shown: list[str] = []
    length = len(header) + len(end)
    for index, line in enumerate(lines):
        later = len(lines) - index - 1
        room_for_note = len(f"\n…and {later} more.") if later else 0  # in case the next line is cut
        if length + 1 + len(line) + room_for_note > limit:
            break
        shown.append(line)
        length += 1 + len(line)
    hidden = len(lines) - len(shown)
    return "\n".join([header, *shown, *([f"…and {hidden} more."] if hidden else [])]) + end


async def answer_privately(interaction: discord.Interaction, text: str) -> None:
    """An ephemeral answer: the interaction's response if it has none yet, else a follow-up."""
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS)
    else:
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_PINGS)


PHASES = {
    JobPhase.STARTING: "🎨 Starting…",
    JobPhase.PAINTING: "🎨 Painting",
    JobPhase.RECONSTRUCTING: "🧊 Building the 3D mesh…",
    JobPhase.EXPORTING: "📦 Writing the mesh files…",
    JobPhase.REPAINTING: "🔁 Repainting",
    JobPhase.WAITING_FOR_WORKER: "⏳ Waiting for a free GPU worker…",
}


def queued_text(job_id: str, position: int, eta_s: float) -> str:
    if position == 0:  # the worker took it before its place could be shown
        return f"⏳ Starting · job `{job_id}`"
    return f"⏳ Queued as #{position} · about {max(1, round(eta_s))} s · job `{job_id}`"


def progress_text(progress: JobProgress) -> str:
    text = PHASES.get(progress.phase, str(progress.phase))
    if progress.note and progress.phase in (JobPhase.STARTING, JobPhase.PAINTING):
        text = PHASES[JobPhase.REPAINTING]  # painting again: the note says why
    if progress.phase == JobPhase.PAINTING and progress.total:
        filled = round(10 * progress.step / progress.total)
        text += f" {'▰' * filled}{'▱' * (10 - filled)} step {progress.step}/{progress.total}"
    if progress.note:
        text += f" ({progress.note})"
    return f"{text} · job `{progress.job_id}`"


def result_embed(job: JobRequest, result: JobResult) -> discord.Embed:
    """The delivered face's card: what was asked, what made it, its pose and stage times (from its report)."""
    report = result.report
    embed = discord.Embed(title=embed_title(job.face.prompt), colour=discord.Colour.blurple())
    if job.is_photo:  # photo jobs (cogs.photo): nothing was painted; say how many faces the photo had
        seen = report.face.faces_found if report is not None and report.face is not None else 1
        embed.add_field(name="Faces seen", value=str(seen) + (" (the largest was used)" if seen > 1 else ""))
    else:
        embed.add_field(name="Seed", value=str(job.face.seed))
        embed.add_field(name="Steps", value=str(job.face.steps))
        embed.add_field(name="Guidance", value=f"{job.face.guidance:g}")
        embed.add_field(name="Profile", value=job.face.profile)
        embed.add_field(name="Model", value=str(report.model if report and report.model else "unknown")[:100])
    if report is not None and report.face is not None and report.face.pose is not None:
        embed.add_field(name="Pose", value=report.face.pose.text())
    if report is not None and report.timings_s:
        shown = " · ".join(f"{k.replace('_', ' ')} {v:.2f}s" for k, v in report.timings_s.items())
        embed.add_field(name="Stage times", value=shown[:MAX_FIELD_CHARS], inline=False)
    notes = [note for note in (report.upload_note, report.prnet and report.prnet.note) if note] if report else []
    if notes:
        embed.add_field(name="Note", value=" ".join(notes)[:MAX_FIELD_CHARS], inline=False)
    if picture := next((name for name in (TURNTABLE_FILE, PREVIEW_FILE) if name in result.files), None):
        embed.set_image(url=f"attachment://{picture}")
    embed.set_footer(text=f"job {job.job_id}")
    return embed


def as_files(files: dict[str, bytes]) -> list[discord.File]:
    return [discord.File(io.BytesIO(data), filename=name) for name, data in files.items()]


def too_large(job: JobRequest, reply: dict[str, Any], code: int, mention: str = "") -> dict[str, Any]:
    """``reply`` again for when Discord refused its files as too large (413): a note in place of the card."""
    logging.getLogger("cogs.face").warning(
        "upload of job %s refused as too large (%s); sending without files", job.job_id, code
    )
    note = f"{mention}The files were too large to upload here. · job `{job.job_id}`"
    bare = {**reply, "content": note[:MAX_CONTENT_CHARS]}
    bare.pop("embed", None)
    return bare
