"""What every Discord reply of the bot shares: Discord's limits, no pings, private answers, refusals.

Discord's numbers live here and nowhere else in the project (``../shared/docs/discord.md`` has sources).
"""

from __future__ import annotations

import discord

from t2f.errors import T2FError
from t2f.serve.jobs import UploadBudget
from t2f.serve.policy import WrongChannel

NO_PINGS = discord.AllowedMentions.none()
# Discord's interaction tokens expire after 15 minutes; keep a margin before switching to channel messages.
TOKEN_LIFETIME_S = 14 * 60
MAX_CONTENT_CHARS = 2000  # one message's text
MAX_EMBED_TITLE = 256
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


async def answer_privately(interaction: discord.Interaction, text: str) -> None:
    """An ephemeral answer: the interaction's response if it has none yet, else a follow-up."""
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS)
    else:
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_PINGS)
