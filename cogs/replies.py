"""What every Discord reply of the bot shares: no pings, private answers, the token's useful life."""

from __future__ import annotations

import discord

NO_PINGS = discord.AllowedMentions.none()
# Discord's interaction tokens expire after 15 minutes; keep a margin before switching to channel messages.
TOKEN_LIFETIME_S = 14 * 60


async def answer_privately(interaction: discord.Interaction, text: str) -> None:
    """An ephemeral answer: the interaction's response if it has none yet, else a follow-up."""
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS)
    else:
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_PINGS)
