"""SimCord: /faceadmin, per-server pause and queue views, and a burst of requests served fairly."""

from __future__ import annotations

import pytest
from discord_fixtures import PhotoTextToImage, moderator, refused, world

from t2f.serve.store import Store


async def test_faceadmin_is_for_moderators_only(simcord_env, store: Store) -> None:  # type: ignore[no-untyped-def]
    guild, channel, alice = world(simcord_env)
    mod = moderator(simcord_env, guild)
    assert not any(name.startswith("faceadmin") for name in alice.available_commands(channel))  # hidden by default
    # A server admin relaxed the default in Integrations: the runtime check still refuses.
    (command,) = [c for c in await simcord_env.bot.tree.fetch_commands() if c.name == "faceadmin"]
    guild.set_command_permissions(command, {alice: True})
    result = await alice.slash(channel, "faceadmin ban", member=mod)
    assert (
        result.ephemeral
        and result.response.content == "Only members with the Manage Server permission can use /faceadmin."
    )
    errors = simcord_env.errors
    assert len(errors) == 1 and type(errors[0]).__name__ == "CheckFailure"
    assert not await store.is_banned(guild.id, mod.id)

    banned = await mod.slash(channel, "faceadmin ban", member=alice)
    assert banned.ephemeral and "can no longer use /face here" in banned.response.content
    assert await store.is_banned(guild.id, alice.id)
    await mod.slash(channel, "faceadmin cooldown", seconds=5)
    assert (await store.guild_settings(guild.id)).cooldown_s == 5
    recent = await mod.slash(channel, "faceadmin recent")
    assert recent.response.content.startswith("Recent faces:")


async def test_blockword_refuses_a_pattern_that_would_break_or_stall_face(simcord_env, store: Store) -> None:  # type: ignore[no-untyped-def]
    guild, channel, alice = world(simcord_env)
    mod = moderator(simcord_env, guild)
    broken = await mod.slash(channel, "faceadmin blockword", word="re:(", add=True)
    assert broken.ephemeral and broken.response.content.startswith("That is not a regular expression Python can")
    slow = await mod.slash(channel, "faceadmin blockword", word="re:(a+)+b", add=True)
    assert slow.ephemeral and slow.response.content.startswith("That pattern repeats a part")
    assert (await store.guild_settings(guild.id)).blocked_terms == ()  # neither was saved
    kept = await mod.slash(channel, "faceadmin blockword", word=r"re:\bred nose\b", add=True)
    assert kept.response.content.startswith("Blocked ")
    refused = await alice.slash(channel, "face", prompt="a clown with a red nose")
    assert refused.ephemeral and refused.response.content.startswith("Your prompt contains words")
    made = await alice.slash(channel, "face", prompt="a" * 300)  # what "(a+)+b" would have stalled on
    assert made.response.embeds
    for n in range(9):  # up to ten patterns a server
        assert (
            await mod.slash(channel, "faceadmin blockword", word=f"re:word{n}", add=True)
        ).response.content.startswith("Blocked")
    eleventh = await mod.slash(channel, "faceadmin blockword", word="re:word10", add=True)
    assert eleventh.response.content == "This server already has 10 patterns; remove one first."


@pytest.mark.simcord(settle_timeout=180)
@pytest.mark.bot_settings(user_pending=5, max_batch=4)
async def test_a_burst_of_50_from_10_users_is_served_round_robin(simcord_env, photo: PhotoTextToImage) -> None:  # type: ignore[no-untyped-def]
    guild, channel, _ = world(simcord_env)
    mod = moderator(simcord_env, guild)
    users = [guild.add_member(simcord_env.create_user(f"user{u}")) for u in range(10)]
    await mod.slash(channel, "faceadmin pause")  # let the burst pile up, as it would behind a long job
    results = []
    for round_ in range(5):
        for index, user in enumerate(users):
            result = await user.slash(channel, "face", prompt=f"u{index} r{round_} astronaut", mesh="glb")
            assert result.response.content.startswith(f"⏳ Queued as #{len(results) + 1} ")
            results.append(result)
    await mod.slash(channel, "faceadmin resume")
    assert all(r.response.embeds and {a.filename for a in r.response.attachments} >= {"face.glb"} for r in results)
    assert len(photo.prompts) == 50 and len(set(photo.prompts)) == 50  # none lost, none twice
    first_ten = [p.split()[0] for p in photo.prompts[:10]]
    assert sorted(first_ten) == sorted(f"u{i}" for i in range(10))  # everyone's first face before anyone's second


async def test_a_pause_holds_only_its_own_server_and_the_queue_shows_only_its_own(
    simcord_env, photo: PhotoTextToImage
) -> None:  # type: ignore[no-untyped-def]
    home, home_channel, alice = world(simcord_env)
    away, away_channel, bob = world(simcord_env)
    home_mod, away_mod = moderator(simcord_env, home), moderator(simcord_env, away)
    paused = await home_mod.slash(home_channel, "faceadmin pause")
    assert paused.response.content.startswith("Paused on this server")
    held = await alice.slash(home_channel, "face", prompt="a secret home astronaut")
    assert "the moderators paused the queue" in held.response.content
    served = await bob.slash(away_channel, "face", prompt="an away astronaut")
    assert served.response.embeds and served.response.embeds[0].title == "an away astronaut"  # not held
    assert photo.prompts == ["an away astronaut"]

    mine = (await home_mod.slash(home_channel, "faceadmin queue")).response.content
    assert mine.startswith("Queue on this server (paused):") and "a secret home astronaut" in mine
    bob_again = await bob.slash(away_channel, "face", prompt="a second away astronaut", seed=2)
    theirs = (await away_mod.slash(away_channel, "faceadmin queue")).response.content
    assert theirs.startswith("Queue on this server (running):") and "secret" not in theirs
    assert theirs.endswith("…and 1 faces from other servers.")
    assert bob_again.response.embeds

    await home_mod.slash(home_channel, "faceadmin resume")
    assert held.response.embeds and held.response.embeds[0].title == "a secret home astronaut"
    assert photo.prompts == ["an away astronaut", "a second away astronaut", "a secret home astronaut"]


async def test_refused_prompts_reach_the_audit_log_by_category_and_language_never_quoted(
    simcord_env, store: Store
) -> None:  # type: ignore[no-untyped-def]
    guild, channel, alice = world(simcord_env)
    mod = moderator(simcord_env, guild)
    said = "Your prompt contains words this server does not allow. Please rephrase it."
    assert await refused(simcord_env, alice, channel, prompt="a little girl in a bikini") == said
    assert await refused(simcord_env, alice, channel, prompt="eine nackte Frau am Strand") == said
    await refused(simcord_env, alice, channel, prompt="a woman", negative_prompt="clothes, shirt")
    audit = await mod.slash(channel, "faceadmin refused")
    assert audit.ephemeral
    header, *lines = audit.response.content.splitlines()
    assert header == "Refused prompts:"
    assert [line.split("> ", 2)[-1] for line in lines] == [  # after "<t:…:R> <@member>"
        "sexual content (English), in the negative prompt",
        "sexual content (German), in the prompt",
        "⚠️ a minor in a sexual context (English), in the prompt",
    ]
    assert all(f"<@{alice.id}>" in line for line in lines)
    assert "bikini" not in audit.response.content and "nackte" not in audit.response.content


async def test_suggestive_words_are_each_servers_choice(simcord_env, store: Store) -> None:  # type: ignore[no-untyped-def]
    guild, channel, alice = world(simcord_env)
    mod = moderator(simcord_env, guild)
    off = await mod.slash(channel, "faceadmin suggestive", allow=False)
    assert off.ephemeral and off.response.content.startswith("Suggestive words off: prompts with words like")
    assert (await store.guild_settings(guild.id)).allow_suggestive is False
    text = await refused(simcord_env, alice, channel, prompt="a sultry jazz singer")
    assert text == "Your prompt contains words this server does not allow. Please rephrase it."
    on = await mod.slash(channel, "faceadmin suggestive", allow=True)
    assert on.response.content.endswith("Beside a word for a child they are always refused.")
    assert (await store.guild_settings(guild.id)).allow_suggestive is True
    made = await alice.slash(channel, "face", prompt="a sultry jazz singer")
    assert made.response.embeds and made.response.embeds[0].title == "a sultry jazz singer"


async def test_moderator_views_never_make_a_members_address_a_link(simcord_env, photo: PhotoTextToImage) -> None:  # type: ignore[no-untyped-def]
    guild, channel, alice = world(simcord_env)
    mod = moderator(simcord_env, guild)
    await mod.slash(channel, "faceadmin pause")
    prompt = "[free](https://x.example) see https://evil.example/win"  # within the 60 characters a view shows
    await alice.slash(channel, "face", prompt=prompt)
    queue = (await mod.slash(channel, "faceadmin queue")).response.content
    assert "`https://evil.example/win`" in queue and "\\[free](`https://x.example)`" in queue
    await mod.slash(channel, "faceadmin resume")
    recent = (await mod.slash(channel, "faceadmin recent")).response.content
    assert recent.endswith(": \\[free](`https://x.example)` see `https://evil.example/win`")  # inline code: no link


def test_a_refusal_line_says_category_and_language_in_words() -> None:
    from cogs.admin import refusal_line
    from t2f.serve.records import RefusalRecord

    child = RefusalRecord(1, 2, 3, "minors", "ja", "negative", 1700000000.5)
    assert (
        refusal_line(child) == "<t:1700000000:R> <@3> ⚠️ a minor in a sexual context (Japanese), in the negative prompt"
    )
    listed = RefusalRecord(1, 2, 3, "listed", "", "prompt", 5.0)
    assert refusal_line(listed) == "<t:5:R> <@3> a word on this server's or the bot's own list, in the prompt"
