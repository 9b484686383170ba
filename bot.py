"""Entry point of the t2f Discord bot: ``python bot.py``.

``main`` parses the command line, reads ``.env`` and the environment, and checks everything that
needs no model (settings, files, database path, device, and the token with one REST call to
Discord), each failure one line on stderr. Only then does it load the models once and open the
serving stack (:func:`t2f.stack.open_stack`: store, job service, policy, pages) that :class:`T2FBot`
receives. ``setup_hook`` warms the models up, loads the cogs (the face cog resumes the jobs a previous
run left unfinished), registers the persistent buttons and syncs commands only when they changed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import re
import secrets
import signal
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from cogs.base import FaceBot
from cogs.replies import NO_PINGS, answer_privately, refusal_text
from t2f.config import Settings, load_environment, setting_names, settings_from_mapping
from t2f.errors import ConfigError, T2FError
from t2f.logs import configure_logging, say, wants_json
from t2f.preflight import check_settings
from t2f.serve.deliveries import SavedResults
from t2f.serve.policy import Policy
from t2f.serve.requests import RequestDefaults
from t2f.serve.service import JobService
from t2f.serve.store import Store

if TYPE_CHECKING:
    from t2f.stack import Stack
    from t2f.web.pages import FacePages

log = logging.getLogger("t2f.bot")
EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXTENSIONS = ("cogs.face", "cogs.photo", "cogs.admin", "cogs.members")
# Discord bot tokens are three base64url parts separated by dots.
# discord.py's own REST address (a module constant, so tests point it at a loopback server): the token check
# asks the same Discord the bot then logs in to.
DISCORD_API = discord.http.Route.BASE
TOKEN_REJECTED = "Discord rejected DISCORD_TOKEN; reset it in the Developer Portal (Bot tab) and update .env."
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


class T2FTree(app_commands.CommandTree):
    """One place that turns every command error into a short ephemeral answer; tracebacks go to the log."""

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        if interaction.extras.get("answered"):  # a cog's own error handler already told the member
            return
        original = getattr(error, "original", error)
        if isinstance(original, T2FError):
            message = refusal_text(original)
        elif isinstance(error, app_commands.NoPrivateMessage):
            message = "This command only works in a server."
        elif isinstance(error, app_commands.CheckFailure):
            message = "You cannot use this command here."
        elif isinstance(error, app_commands.TransformerError):
            message = "One of the values you gave is not valid for this command."
        else:
            error_id = secrets.token_hex(4)
            name = interaction.command.qualified_name if interaction.command else "?"
            log.error("error %s in /%s", error_id, name, exc_info=original)
            message = f"Something went wrong (error {error_id}). Please try again later."
        try:
            await answer_privately(interaction, message)
        except discord.HTTPException:
            log.warning("could not send the error message for %s", interaction.id)


class T2FBot(FaceBot):
    """The t2f bot. Everything it depends on is passed in; nothing is created at import time."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        service: JobService,
        policy: Policy,
        defaults: RequestDefaults,
        saved: SavedResults,
        warm_up: Callable[[], object] | None = None,
        pages: FacePages | None = None,
    ) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            tree_cls=T2FTree,
            allowed_mentions=NO_PINGS,
        )
        self.settings = settings
        self.store = store
        self.service = service
        self.policy = policy
        self.defaults = defaults
        self.saved = saved
        self.warm_up = warm_up
        self.pages = pages  # the 3D pages (T2F_WEB_PORT), or None

    @classmethod
    def on(cls, stack: Stack) -> T2FBot:
        """The bot on an open serving stack."""
        return cls(
            settings=stack.settings,
            store=stack.store,
            service=stack.service,
            policy=stack.policy,
            defaults=stack.defaults,
            saved=stack.saved,
            warm_up=stack.warm_up,
            pages=stack.pages,
        )

    async def setup_hook(self) -> None:
        from cogs.buttons import BUTTONS
        from cogs.texts import CommandTranslator

        if self.warm_up is not None:  # before the cogs: a resumed job must not pay for the first compile
            log.info(
                "warming the models up (a short generation%s)…",
                " and compiling" if self.settings.compile_mode != "off" else "",
            )
            seconds = await self.service.warm_up(self.warm_up)
            log.info("models warmed up in %.1f s", seconds)
        await self.tree.set_translator(CommandTranslator())  # the commands' names and descriptions, per language
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        self.add_dynamic_items(*BUTTONS)
        await self.sync_commands()

    async def on_ready(self) -> None:
        """The gateway session is up and commands are answered: the line an operator waits for."""
        log.info("ready: logged in as %s, in %d servers", self.user, len(self.guilds))

    async def sync_commands(self) -> None:
        """Sync to the configured servers (instant) or globally, only when the command tree changed.

        Discord allows 200 command creates a day per server; a hash of the tree is kept in the store.
        """
        translator, listed = self.tree.translator, self.tree.get_commands()
        if translator is not None:  # the translations are part of what Discord is sent, so of the hash
            payloads = [await c.get_translated_payload(self.tree, translator) for c in listed]
        else:
            payloads = [c.to_dict(self.tree) for c in listed]
        payload = json.dumps(payloads, sort_keys=True, default=str)
        digest = hashlib.sha256(payload.encode()).hexdigest()
        targets: list[discord.Object | None] = [discord.Object(id=g) for g in self.settings.guild_ids] or [None]
        for guild in targets:
            key = f"commands:{guild.id if guild else 'global'}"
            if await self.store.get_meta(key) == digest:
                continue
            if guild is not None:
                self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)
            await self.store.set_meta(key, digest)
            log.info("synced commands to %s", guild.id if guild else "all servers")

    async def close(self) -> None:
        """Stop taking jobs and finish (or cancel) the running batch; unloading the cogs then delivers."""
        waiting = await self.service.shutdown(timeout_s=30)
        log.info("shutting down with %d jobs queued for the next start", len(waiting))
        await super().close()


async def run_bot(settings: Settings, token: str) -> None:
    """Load the models (off the event loop), open the serving stack, and run until closed or signalled."""
    from t2f.build import load_route
    from t2f.stack import WebPlan, open_stack
    from t2f.web.server import exposure_warning

    route, stages = await asyncio.to_thread(load_route, settings)
    # The web server, off unless T2F_WEB_PORT is set: 3D pages, /healthz (README "3D pages and t2f serve").
    web = WebPlan(settings.web_host, settings.web_port) if settings.web_port else None
    async with open_stack(settings, route, stages=stages, web=web) as stack:
        if stack.web is not None and (warning := exposure_warning(settings.web_host, stack.web.port)) is not None:
            log.warning(warning)
        async with T2FBot.on(stack) as bot:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, lambda: asyncio.ensure_future(bot.close()))
            await bot.start(token)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bot.py",
        description="Run the t2f Discord bot. Settings come from .env and the environment (README, Configuration).",
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="check the settings, files, database path, device and the token (asking Discord), then exit; "
        "loads no model",
    )
    parser.add_argument(
        "--offline", action="store_true", help="do not ask Discord whether the token is valid before loading models"
    )
    parser.add_argument("--env-file", help="settings file to read, which must exist (default: .env, if there is one)")
    parser.add_argument("--debug", action="store_true", help="log everything, third-party notices included")
    return parser


def network_message(host: str, exc: BaseException) -> str:
    """One actionable sentence for a connection that failed, naming the host (never a traceback)."""
    os_error = getattr(exc, "os_error", None)
    reason = (getattr(os_error, "strerror", None) or str(os_error or "")) if os_error else ""
    if isinstance(exc, TimeoutError):
        reason = "no answer in time"
    reason = (reason or type(exc).__name__).strip().rstrip(".")[:120]
    return f"Could not reach {host} ({reason}); check this machine's network, DNS and firewall, then start again."


async def verify_token(token: str, *, api_base: str = DISCORD_API, timeout_s: float = 15.0) -> str:
    """Ask Discord who the token belongs to (``GET /users/@me``, one cheap REST call) and return the bot's name.

    Run before any model loads, so a wrong token or no network costs seconds, not a model load.

    Raises
    ------
    ConfigError
        When Discord rejects the token (HTTP 401).
    T2FError
        When Discord cannot be reached or answers anything else; the message names the host.
    """
    import aiohttp

    url = f"{api_base.rstrip('/')}/users/@me"
    host = urlsplit(url).netloc
    headers = {"Authorization": f"Bot {token}", "User-Agent": "DiscordBot (https://github.com/t2f, 0.1)"}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
            session.get(url, headers=headers) as response,
        ):
            if response.status == 401:
                raise ConfigError(TOKEN_REJECTED)
            if response.status != 200:
                raise T2FError(f"Discord ({host}) answered HTTP {response.status} to the token check; try again later.")
            data = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise T2FError(network_message(host, exc)) from None
    return str(data.get("username", "?")) if isinstance(data, dict) else "?"


def fail(line: str, code: int, *, json_lines: bool) -> int:
    """Say the one line that ends a failed start (a JSON record with ``T2F_LOG_FORMAT=json``) and return ``code``."""
    say(line, json_lines=json_lines, level=logging.ERROR, logger="t2f.bot")
    return code


def main(argv: list[str] | None = None) -> int:
    """Check all that needs no model (settings, files, device, the token with Discord), then run the bot."""
    args = build_parser().parse_args(argv)
    env: Mapping[str, str] = os.environ  # until .env is read: how to write a line about .env itself
    try:
        environment = load_environment(
            args.env_file or ".env", required=args.env_file is not None, known=setting_names()
        )
        env = environment.values
        settings = settings_from_mapping(env)
        configure_logging(settings.log_level or "info", settings.log_format, debug=args.debug)
        for warning in environment.warnings:  # an unknown T2F_ name: a typo the bot would otherwise ignore
            log.warning(warning)
        token = check_token(env.get("DISCORD_TOKEN"))
        check_settings(settings)
        if not args.offline:
            name = asyncio.run(verify_token(token, api_base=DISCORD_API))
            log.info("Discord accepted the token of %s", name)
    except ConfigError as exc:
        return fail(f"t2f bot: configuration error: {exc.user_message}", EXIT_CONFIG, json_lines=wants_json(env))
    except T2FError as exc:
        return fail(f"t2f bot: error: {exc.user_message}", EXIT_FAILURE, json_lines=wants_json(env))
    if args.check_config:  # `make bot` and the Docker image check this before downloading weights
        print("t2f bot: configuration ok")
        return 0
    json_lines = settings.log_format == "json"
    try:
        asyncio.run(run_bot(settings, token))
    except discord.LoginFailure:
        return fail(f"t2f bot: configuration error: {TOKEN_REJECTED}", EXIT_CONFIG, json_lines=json_lines)
    except T2FError as exc:
        return fail(f"t2f bot: error: {exc.user_message}", EXIT_FAILURE, json_lines=json_lines)
    except (aiohttp.ClientError, discord.GatewayNotFound, TimeoutError) as exc:  # the network went away later
        return fail(f"t2f bot: error: {network_message('discord.com', exc)}", EXIT_FAILURE, json_lines=json_lines)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
