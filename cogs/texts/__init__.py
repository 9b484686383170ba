"""What the bot says to members, in one catalogue per language, and its commands' names and descriptions in
each language (discord.py's :class:`~discord.app_commands.Translator`).

:func:`say` picks the sentence for a key in the member's language (``interaction.locale``: their Discord
client's), falling back to English (:mod:`cogs.texts.en`, complete) for a language or a key that has none.
:class:`CommandTranslator` gives Discord each command's name and description in every language there is
(:mod:`cogs.texts.de`): Discord shows members the ones of their client's language. Adding a language is a
module beside ``de`` and a line in :data:`LANGUAGES`.
"""

from __future__ import annotations

from types import ModuleType

import discord
from discord import app_commands

from cogs.texts import de, en

LANGUAGES: dict[str, ModuleType] = {"de": de}  # beside English: a Discord locale's language -> its catalogue
NAME_LOCATIONS = (
    app_commands.TranslationContextLocation.command_name,
    app_commands.TranslationContextLocation.group_name,
    app_commands.TranslationContextLocation.parameter_name,
    app_commands.TranslationContextLocation.choice_name,  # /face profile's quality and fast
)
DESCRIPTION_LOCATIONS = (
    app_commands.TranslationContextLocation.command_description,
    app_commands.TranslationContextLocation.group_description,
    app_commands.TranslationContextLocation.parameter_description,
)


def language(locale: discord.Locale | str | None) -> str:
    """The catalogue's language for a Discord locale (``de`` for German, ``en`` for anything without one)."""
    code = str(locale.value if isinstance(locale, discord.Locale) else locale or "").split("-")[0].lower()
    return code if code in LANGUAGES else "en"


def say(key: str, locale: discord.Locale | str | None = None, **values: object) -> str:
    """The sentence ``key`` in the locale's language (else English), its ``{fields}`` filled from ``values``."""
    catalogue = LANGUAGES.get(language(locale))
    text = (catalogue.TEXTS.get(key) if catalogue is not None else None) or en.TEXTS[key]
    return text.format(**values)


def duration(seconds: float, locale: discord.Locale | str | None = None) -> str:
    """A short wait as members read it: ``20 s``, ``5 min``."""
    if seconds < 120:
        return say("duration.seconds", locale, count=f"{seconds:g}")
    return say("duration.minutes", locale, count=f"{seconds / 60:.0f}")


def relative_time(unix_s: float) -> str:
    """A moment as Discord shows it in each reader's own language and time zone ("in 3 hours")."""
    return f"<t:{int(unix_s)}:R>"


class CommandTranslator(app_commands.Translator):
    """Commands' names and descriptions in every language of :data:`LANGUAGES`, keyed by their English text."""

    async def translate(
        self, string: app_commands.locale_str, locale: discord.Locale, context: app_commands.TranslationContextTypes
    ) -> str | None:
        catalogue = LANGUAGES.get(language(locale))
        if catalogue is None:
            return None
        if context.location in NAME_LOCATIONS:
            return catalogue.NAMES.get(string.message)
        if context.location in DESCRIPTION_LOCATIONS:
            return catalogue.DESCRIPTIONS.get(string.message)
        return None
