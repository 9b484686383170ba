"""Entry point of the t2f Discord bot: ``python bot.py``.

Reads ``.env`` and the environment, checks the token, builds :class:`T2FBot` and runs it.
Everything the bot depends on is built here and passed in; cogs load in ``setup_hook``.
"""

from __future__ import annotations

import asyncio
import logging
import pkgutil
import re
import sys

import discord
from discord.ext import commands

import cogs
from t2f.config import Settings, read_environment, settings_from_mapping
from t2f.errors import ConfigError

log = logging.getLogger("t2f.bot")

# Discord bot tokens are three base64url parts separated by dots.
TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{20,}$")


def check_token(token: str | None) -> str:
    """Return a plausible bot token or raise :class:`ConfigError` saying what is wrong (never echoing it)."""
    if not token or not token.strip():
        raise ConfigError("DISCORD_TOKEN is not set; copy .env.example to .env and paste your bot token there.")
    token = token.strip()
    if not TOKEN_SHAPE.match(token):
        raise ConfigError(
            "DISCORD_TOKEN does not look like a bot token (three dot-separated parts); "
            "copy it again from the Developer Portal."
        )
    return token


class T2FBot(commands.Bot):
    """The t2f bot: settings in, cogs loaded from the ``cogs`` package in ``setup_hook``."""

    def __init__(self, *, settings: Settings, extensions: list[str]) -> None:
        super().__init__(command_prefix=commands.when_mentioned, intents=discord.Intents.default())
        self.settings = settings
        self.initial_extensions = extensions

    async def setup_hook(self) -> None:
        for extension in self.initial_extensions:
            await self.load_extension(extension)
        log.info("loaded extensions: %s", ", ".join(self.initial_extensions) or "none")


def discover_extensions() -> list[str]:
    """Every module in ``cogs/`` that defines an extension ``setup``."""
    return [f"cogs.{m.name}" for m in pkgutil.iter_modules(cogs.__path__) if not m.name.startswith("_")]


async def run_bot(token: str, settings: Settings) -> None:
    async with T2FBot(settings=settings, extensions=discover_extensions()) as bot:
        await bot.start(token)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        env = read_environment(".env")
        settings = settings_from_mapping(env)
        token = check_token(env.get("DISCORD_TOKEN"))
    except ConfigError as exc:
        print(f"t2f bot: configuration error: {exc.user_message}", file=sys.stderr)
        return 2
    try:
        asyncio.run(run_bot(token, settings))
    except discord.LoginFailure:
        print(
            "t2f bot: Discord rejected DISCORD_TOKEN; reset it in the Developer Portal and update .env.",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
