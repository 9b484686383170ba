"""The texts of ``/help``, ``/limits`` and ``/faceadmin settings``, built from what the service, the policy and
the store say (never counted again here), in the reader's language (:mod:`cogs.texts`).

Pure functions of their inputs: the cogs fetch, these write.
"""

from __future__ import annotations

from dataclasses import dataclass

import discord

from cogs.replies import MAX_EMBED_DESCRIPTION, fit_lines
from cogs.texts import duration, relative_time, say
from t2f.serve.moderation import safe_echo
from t2f.serve.policy import Limits, Standing
from t2f.serve.records import GuildSettings

Locale = discord.Locale | str | None
CHANNELS_SHOWN = 10  # a long allow-list is cut to this many and a count


@dataclass(frozen=True)
class Keeping:
    """How long the bot keeps what (from its settings): records, files and pages (0: no pages), kept photos."""

    record_days: int
    page_days: int  # 0: no web server, so no files or pages are kept
    keeps_photos: bool
    privacy_url: str


def channels_text(channels: tuple[int, ...]) -> str:
    shown = ", ".join(f"<#{channel}>" for channel in channels[:CHANNELS_SHOWN])
    return shown + (f" (+{len(channels) - CHANNELS_SHOWN})" if len(channels) > CHANNELS_SHOWN else "")


def help_text(
    server: GuildSettings, limits: Limits, keeping: Keeping, *, photos: bool, paused: bool, locale: Locale
) -> str:
    """``/help``: what the commands do, this server's rules and limits (``limits``: as they apply here), what is
    kept and for how long, and where the privacy notice is; an embed's description (up to 4096 characters)."""
    lines = [say("help.about", locale), "", say("help.face", locale)]
    lines.append(say("help.face3d" if photos else "help.face3d_off", locale))
    lines += [say("help.yours", locale), "", say("help.rules", locale)]
    if server.allowed_channels:
        lines.append(say("help.channels_some", locale, channels=channels_text(server.allowed_channels)))
    else:
        lines.append(say("help.channels_all", locale))
    lines.append(say("help.limits", locale, quota=limits.daily_quota, pending=limits.user_pending))
    if limits.cooldown_s > 0:
        lines.append(say("help.cooldown", locale, cooldown=duration(limits.cooldown_s, locale)))
    own = len(server.blocked_terms)
    lines.append(say("help.filter_own", locale, count=own) if own else say("help.filter", locale))
    if paused:
        lines.append(say("help.paused", locale))
    lines += ["", say("help.kept", locale), say("help.kept_records", locale, days=keeping.record_days)]
    if keeping.page_days:
        lines.append(say("help.kept_pages", locale, days=keeping.page_days))
    if photos:
        photo_key = "help.kept_photos_yes" if keeping.keeps_photos else "help.kept_photos_no"
        lines.append(say(photo_key, locale, days=keeping.record_days))
    if keeping.privacy_url:
        lines.append(say("help.privacy", locale, url=keeping.privacy_url))
    else:
        lines.append(say("help.privacy_none", locale))
    return "\n".join(lines)[:MAX_EMBED_DESCRIPTION]


def limits_text(standing: Standing, *, banned: bool, now: float, locale: Locale) -> str:
    """``/limits``: a member's faces left today, their cooldown and faces on the way (``standing``, from the
    policy), with the moments in Discord's relative timestamps."""
    limits = standing.limits
    lines = [say("limits.title", locale)]
    if banned:
        lines.append(say("limits.banned", locale))
    lines.append(
        say(
            "limits.faces_left",
            locale,
            left=standing.faces_left,
            quota=limits.daily_quota,
            reset=relative_time(standing.quota_resets_at),
        )
    )
    if standing.cooldown_left_s > 0:
        lines.append(say("limits.wait", locale, when=relative_time(now + standing.cooldown_left_s)))
    else:
        lines.append(say("limits.ready", locale))
    lines.append(say("limits.pending", locale, pending=standing.pending, most=limits.user_pending))
    return "\n".join(lines)


def term_text(term: str) -> str:
    """A server's filter word as moderators read it: one line in a code span (no markdown, mention or link)."""
    return f"`{safe_echo(term, 100)}`"


def settings_text(
    server: GuildSettings,
    defaults: Limits,
    keeping: Keeping,
    *,
    photos_default: bool,
    paused: bool,
    banned: list[int],
    locale: Locale,
) -> str:
    """``/faceadmin settings``: everything the server has set, and the bot's default where it has set nothing."""

    def source(own: object) -> str:
        return say("settings.here" if own is not None else "settings.default", locale)

    limits = defaults.on(server)
    lines = [say("settings.title", locale)]
    if server.allowed_channels:
        lines.append(say("settings.channels_some", locale, channels=channels_text(server.allowed_channels)))
    else:
        lines.append(say("settings.channels_all", locale))
    cooldown_source = source(server.cooldown_s)
    if limits.cooldown_s > 0:
        value = duration(limits.cooldown_s, locale)
        lines.append(say("settings.cooldown", locale, value=value, source=cooldown_source))
    else:
        lines.append(say("settings.no_cooldown", locale, source=cooldown_source))
    lines.append(say("settings.quota", locale, value=limits.daily_quota, source=source(server.daily_quota)))
    lines.append(say("settings.queue", locale, value=limits.queue_capacity, source=source(server.queue_cap)))
    lines.append(say("settings.pending", locale, value=limits.user_pending))
    photos = photos_default if server.photo_input is None else server.photo_input
    lines.append(
        say("settings.photos_on" if photos else "settings.photos_off", locale, source=source(server.photo_input))
    )
    lines.append(say("settings.paused" if paused else "settings.running", locale))
    if keeping.page_days:
        lines.append(say("settings.kept", locale, records=keeping.record_days, pages=keeping.page_days))
    else:
        lines.append(say("settings.kept_no_pages", locale, records=keeping.record_days))
    # The lists last, a line each, so a long list is cut to one message and says how much was left out.
    listed: list[str] = []
    if server.blocked_terms:
        listed += [say("settings.words", locale, count=len(server.blocked_terms))]
        listed += [f"- {term_text(term)}" for term in server.blocked_terms]
    else:
        lines.append(say("settings.words_none", locale))
    if banned:
        listed += [say("settings.bans", locale, count=len(banned)), *(f"- <@{member}>" for member in banned)]
    else:
        lines.append(say("settings.bans_none", locale))
    return fit_lines("\n".join(lines), listed) if listed else "\n".join(lines)
