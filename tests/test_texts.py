"""The member-facing catalogue (cogs/texts): English complete, German by the same keys and fields, the texts
of /help, /limits and /faceadmin settings in either, and the commands' translator."""

from __future__ import annotations

import string

import discord
from discord import app_commands

from cogs.members.answers import Keeping, help_text, limits_text, settings_text
from cogs.replies import MAX_EMBED_DESCRIPTION
from cogs.texts import CommandTranslator, de, duration, en, language, say
from t2f.serve.policy import Limits, Standing
from t2f.serve.records import GuildSettings

KEEPING = Keeping(record_days=7, page_days=7, keeps_photos=False, privacy_url="")


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_german_says_what_english_says_with_the_same_fields() -> None:
    assert set(de.TEXTS) <= set(en.TEXTS)  # no German sentence without its English one
    for key, german in de.TEXTS.items():
        assert fields(german) == fields(en.TEXTS[key]), key
    assert language(discord.Locale.german) == "de" and language("de") == "de"
    assert language(discord.Locale.american_english) == language("fr") == language(None) == "en"
    assert say("limits.ready", discord.Locale.german) == "Du kannst jetzt ein Gesicht anfragen."
    assert say("limits.ready", discord.Locale.french) == "You can ask for a face now."  # no French: English
    assert duration(20.0) == "20 s" and duration(300.0, "de") == "5 min"


def test_help_fits_its_card_in_either_language_with_a_long_allow_list() -> None:
    server = GuildSettings(guild_id=1, allowed_channels=tuple(range(10**18, 10**18 + 40)), blocked_terms=("a",) * 9)
    keeping = Keeping(record_days=3650, page_days=3650, keeps_photos=True, privacy_url="https://x.example/" + "p" * 200)
    for locale in (discord.Locale.american_english, discord.Locale.german):
        text = help_text(server, Limits(cooldown_s=3600.0), keeping, photos=True, paused=True, locale=locale)
        assert len(text) <= MAX_EMBED_DESCRIPTION and text.endswith(f"<{keeping.privacy_url}>")
        assert "(+30)" in text  # ten channels named, the rest counted
    german = help_text(GuildSettings(guild_id=1), Limits(), KEEPING, photos=False, paused=False, locale="de")
    assert "Gesichter aus Fotos (`/face3d`) sind auf diesem Server ausgeschaltet." in german.split("\n")
    assert "`/face` geht in jedem Kanal." in german and "/vergessen" in german  # the command's German name


def test_limits_and_settings_in_german() -> None:
    standing = Standing(limits=Limits(daily_quota=5), made_today=2, day_started=0.0, cooldown_left_s=0, pending=1)
    assert limits_text(standing, banned=False, now=100.0, locale="de").split("\n") == [
        "**Deine Grenzen auf diesem Server**",
        "Heute noch: 3 von 5 Gesichtern (neu gezählt <t:86400:R>).",
        "Du kannst jetzt ein Gesicht anfragen.",
        "Gesichter in Arbeit: 1 von höchstens 2 gleichzeitig.",
    ]
    server = GuildSettings(guild_id=1, cooldown_s=30.0, blocked_terms=("clown",))
    text = settings_text(
        server, Limits(), KEEPING, photos_default=True, paused=False, banned=[5], locale=discord.Locale.german
    )
    assert text.split("\n")[2:3] == ["Wartezeit: 30 s zwischen zwei Gesichtern eines Mitglieds (hier eingestellt)."]
    assert text.endswith("Eigene Wörter im Filter (1):\n- `clown`\nFür `/face` gesperrte Mitglieder (1):\n- <@5>")


async def test_the_translator_names_and_describes_commands_in_german_only_where_asked() -> None:
    translator = CommandTranslator()
    command = app_commands.Command(name="help", description="x", callback=_noop)
    name = app_commands.TranslationContext(app_commands.TranslationContextLocation.command_name, command)
    describe = app_commands.TranslationContext(app_commands.TranslationContextLocation.command_description, command)
    assert await translator.translate(app_commands.locale_str("help"), discord.Locale.german, name) == "hilfe"
    assert await translator.translate(app_commands.locale_str("help"), discord.Locale.british_english, name) is None
    english = "File format of the 3D mesh"
    assert await translator.translate(app_commands.locale_str(english), discord.Locale.german, describe) == (
        "Dateiformat des 3D-Modells"
    )
    unknown = app_commands.locale_str("A sentence nobody translated")
    assert await translator.translate(unknown, discord.Locale.german, describe) is None  # English is shown


async def _noop(interaction: discord.Interaction) -> None:
    return None
