"""SimCord: /help, /limits, /faceadmin settings, /face in threads, and the commands in another language."""

from __future__ import annotations

import re
import time

import discord
import pytest
from discord_fixtures import moderator, refused, world

from cogs.texts import de
from t2f.serve.policy import utc_midnight
from t2f.serve.records import GuildSettings
from t2f.serve.store import Store

MEMBER_COMMANDS = ("face", "face3d", "help", "limits", "forget")


def lines_of(result) -> list[str]:  # type: ignore[no-untyped-def]
    """The lines of a private answer: its text, or its card's (/help)."""
    assert result.ephemeral
    message = result.response
    return str(message.embeds[0].description if message.embeds else message.content).split("\n")


def thread_in(env, channel, owner):  # type: ignore[no-untyped-def]
    """A public thread of ``channel`` started by ``owner`` (SimCord's backend, as a member's client makes one)."""
    made = env.backend.create_thread(channel.id, f"thread {len(channel.threads)}", owner.id)
    return next(thread for thread in channel.threads if thread.id == made.id)


@pytest.mark.bot_settings(privacy_url="https://faces.example/privacy", retention_days=14, keep_uploads=True)
async def test_help_gives_what_the_commands_do_this_servers_rules_and_what_is_kept(simcord_env, store: Store) -> None:  # type: ignore[no-untyped-def]
    guild, channel, alice = world(simcord_env)
    rules = GuildSettings(
        guild_id=guild.id, allowed_channels=(channel.id,), cooldown_s=90.0, daily_quota=5, blocked_terms=("clown",)
    )
    await store.save_guild_settings(rules)
    lines = lines_of(await alice.slash(channel, "help"))
    assert lines[0].startswith("**t2f** makes 3D faces")
    assert lines[2].startswith("`/face prompt:…` paints a face from your words")
    assert lines[3].startswith("`/face3d photo:…` (or `avatar:@member`")
    assert lines[4] == "`/limits` shows what you have left today; `/forget` deletes everything t2f keeps about you."
    assert lines[6:12] == [
        "**On this server**",
        f"`/face` works in <#{channel.id}> and in their threads.",
        "Each member may ask for 5 faces a day (counted again from midnight UTC), with at most 2 on the way at once.",
        "Between two faces, a member waits 90 s.",
        "A word filter reads every prompt before anything is painted, with this server's own words (1) as well; a "
        "refused prompt costs nothing.",
        "",
    ]
    assert lines[12:] == [
        "**What is kept, and for how long**",
        "Each face's record (who asked, where, the words, the settings and how it ended) is kept 14 days, then "
        "deleted.",
        "This bot keeps the photos you send, for 14 days.",
        "Privacy notice: <https://faces.example/privacy>",
    ]
    # Photos off and a pause are said; no web server: no pages are kept, so no line says they are.
    await store.save_guild_settings(GuildSettings(guild_id=guild.id, photo_input=False))
    simcord_env.bot.service.pause(guild.id)
    lines = lines_of(await alice.slash(channel, "help"))
    assert "Faces from photos (`/face3d`) are switched off on this server." in lines
    assert "The moderators have paused faces here for now: new requests wait until they resume." in lines
    assert "`/face` works in every channel." in lines and not any("3D page" in line for line in lines)
    simcord_env.bot.service.resume(guild.id)


async def test_limits_show_the_counts_admission_enforces(simcord_env, store: Store) -> None:  # type: ignore[no-untyped-def]
    guild, channel, alice = world(simcord_env)
    mod = moderator(simcord_env, guild)
    await store.save_guild_settings(GuildSettings(guild_id=guild.id, cooldown_s=60.0, daily_quota=3))
    policy, cooldown_clock = simcord_env.bot.policy, [1000.0]
    policy.clock = lambda: cooldown_clock[0]  # the cooldown's clock, moved by the test
    made = await alice.slash(channel, "face", prompt="a smiling astronaut")
    assert made.response.embeds
    before = time.time()
    lines = lines_of(await alice.slash(channel, "limits"))
    after = time.time()
    assert lines[0] == "**Your limits on this server**"
    left = re.fullmatch(r"Faces left today: 2 of 3 \(the count starts again <t:(\d+):R>\)\.", lines[1])
    assert left is not None and int(left[1]) in {utc_midnight(before) + 86400, utc_midnight(after) + 86400}
    wait = re.fullmatch(r"Your next face can start <t:(\d+):R>\.", lines[2])
    assert wait is not None and int(before) + 60 <= int(wait[1]) <= after + 60  # the 60 s cooldown
    assert lines[3] == "Faces on the way: 0 of 2 at once."
    too_soon = await refused(simcord_env, alice, channel, prompt="another astronaut")
    assert too_soon.startswith("Slow down: you can ask for another face in")  # what /limits said, enforced

    cooldown_clock[0] += 61
    assert "You can ask for a face now." in lines_of(await alice.slash(channel, "limits"))
    await mod.slash(channel, "faceadmin pause")
    held = await alice.slash(channel, "face", prompt="a held astronaut")
    assert held.response.content.startswith("⏳ Queued as #1")
    standing = await policy.standing(guild_id=guild.id, user_id=alice.id)
    assert (standing.faces_left, standing.pending, standing.cooldown_left_s) == (1, 1, 60.0)
    lines = lines_of(await alice.slash(channel, "limits"))
    assert lines[1].startswith("Faces left today: 1 of 3") and lines[3] == "Faces on the way: 1 of 2 at once."
    await store.ban(guild.id, alice.id, by=mod.id)
    assert "The moderators have stopped your `/face` on this server." in lines_of(await alice.slash(channel, "limits"))
    await mod.slash(channel, "faceadmin resume")
    assert held.response.embeds


async def test_faceadmin_settings_shows_everything_set_and_quotes_it_inertly(simcord_env, store: Store) -> None:  # type: ignore[no-untyped-def]
    guild, channel, alice = world(simcord_env)
    mod = moderator(simcord_env, guild)
    assert "faceadmin settings" not in alice.available_commands(channel)  # moderators' (runtime check: /faceadmin)
    default = lines_of(await mod.slash(channel, "faceadmin settings"))
    assert default == [
        "**/face on this server**",
        "Channels: every channel.",
        "Cooldown: none (the bot's default).",
        "Daily quota: 30 faces per member (the bot's default).",
        "Queue cap: 60 waiting faces (the bot's default).",
        "Faces on the way per member: 2 (bot-wide).",
        "Faces from photos: on (the bot's default).",
        "Queue: running.",
        "Records are kept 7 days; no files or pages are kept (the web server is off).",
        "Server words in the filter: none.",
        "Members stopped from `/face`: none.",
    ]
    word = "**free nitro** https://evil.example/x @everyone `code`"
    for command, options in [
        ("faceadmin channel", {"channel": channel, "allow": True}),
        ("faceadmin cooldown", {"seconds": 300}),
        ("faceadmin quota", {"per_day": 4}),
        ("faceadmin photos", {"allow": False}),
        ("faceadmin blockword", {"word": word, "add": True}),
        ("faceadmin ban", {"member": alice}),
        ("faceadmin pause", {}),
    ]:
        await mod.slash(channel, command, **options)
    shown = await mod.slash(channel, "faceadmin settings")
    assert shown.response.flags.suppress_embeds  # no link preview, whatever a word holds
    assert lines_of(shown) == [
        "**/face on this server**",
        f"Channels: <#{channel.id}> and their threads.",
        "Cooldown: 5 min between two faces of a member (set here).",
        "Daily quota: 4 faces per member (set here).",
        "Queue cap: 60 waiting faces (the bot's default).",
        "Faces on the way per member: 2 (bot-wide).",
        "Faces from photos: off (set here).",
        "Queue: paused by the moderators.",
        "Records are kept 7 days; no files or pages are kept (the web server is off).",
        "Server words in the filter (1):",
        "- `**free nitro** https://evil.example/x @everyone ˋcodeˋ`",  # a code span: no markdown, link or ping
        "Members stopped from `/face` (1):",
        f"- <@{alice.id}>",
    ]
    await mod.slash(channel, "faceadmin resume")


async def test_face_works_in_the_threads_of_an_allowed_channel(simcord_env, store: Store) -> None:  # type: ignore[no-untyped-def]
    guild, channel, alice = world(simcord_env)
    other = guild.create_text_channel("general")
    await store.save_guild_settings(GuildSettings(guild_id=guild.id, allowed_channels=(channel.id,)))
    allowed, elsewhere = thread_in(simcord_env, channel, alice), thread_in(simcord_env, other, alice)
    made = await alice.slash(allowed, "face", prompt="an astronaut in a thread")
    assert made.response.embeds and made.response.channel_id == allowed.id  # answered in the thread itself
    record = await store.get_job(made.response.embeds[0].footer.text.removeprefix("job "))
    assert record is not None and record.channel_id == allowed.id  # delivered to the thread after a restart too
    refusal = await refused(simcord_env, alice, elsewhere, prompt="an astronaut elsewhere")
    assert refusal == f"/face is not enabled in this channel. Try <#{channel.id}>."
    assert (await refused(simcord_env, alice, other, prompt="a face")).startswith("/face is not enabled")


async def test_member_commands_are_named_and_described_in_german(simcord_env) -> None:  # type: ignore[no-untyped-def]
    synced = {command.name: command for command in await simcord_env.bot.tree.fetch_commands()}
    german = discord.Locale.german
    assert synced["help"].name_localizations[german] == "hilfe"
    assert synced["face"].description_localizations[german] == (
        "Male ein Gesicht nach deinen Worten und erhalte es als 3D-Modell."
    )
    assert synced["Make a 3D face"].name_localizations[german] == "3D-Gesicht machen"
    # Every member's command, and each of its options, has its German description (Discord's limits kept).
    for name in MEMBER_COMMANDS:
        command = synced[name]
        described = [command, *command.options]
        assert all(german in item.description_localizations for item in described), name
        assert all(len(item.description_localizations[german]) <= 100 for item in described)
        for item in [command, *command.options]:
            local = item.name_localizations.get(german, item.name)
            assert re.fullmatch(r"[a-z0-9_-]{1,32}", local), local
    assert set(de.NAMES.values()) >= {"hilfe", "vergessen", "grenzen"}


async def test_a_changed_translation_is_synced_again_and_an_unchanged_tree_is_not(simcord_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    bot = simcord_env.bot

    def syncs() -> int:
        return sum(r.method == "PUT" and r.path.endswith("/commands") for r in simcord_env.http_requests)

    before = syncs()
    await bot.sync_commands()
    assert syncs() == before  # nothing changed: no sync (Discord allows 200 command creations a day)
    monkeypatch.setitem(de.DESCRIPTIONS, "File format of the 3D mesh", "Das Dateiformat des Modells")
    await bot.sync_commands()
    assert syncs() == before + 1
    synced = {command.name: command for command in await bot.tree.fetch_commands()}
    (mesh,) = [option for option in synced["face"].options if option.name == "mesh"]
    assert mesh.description_localizations[discord.Locale.german] == "Das Dateiformat des Modells"
