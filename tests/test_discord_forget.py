"""SimCord: /forget and /faceadmin forget (rows, files, pages, kept photos and posted faces gone; the audit
keeps no prompt), the hourly retention and a server's data after it removed the bot. The bots here keep every
face's page (as with the web server on); time moves only when the test moves it."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import discord
import pytest
from discord_fixtures import PhotoTextToImage, bot_on_stack, bot_settings, moderator, world
from skimage.data import astronaut
from test_discord_photo import allow_simcord, png

from cogs.members.forget import CONFIRM_S, confirmation
from cogs.members.upkeep import SWEEP_EVERY_S
from t2f.serve.forget import GUILD_GRACE_S
from t2f.serve.records import GuildSettings
from t2f.serve.store import Store
from t2f.web.links import LinkSigner
from t2f.web.pages import FacePages

SECRET = "a secret violet wizard"
DAY = 86400.0


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    marker = request.node.get_closest_marker("bot_settings")
    return bot_settings(tmp_path, output_dir=tmp_path / "outputs", **(marker.kwargs if marker else {}))


@pytest.fixture
def pages(settings) -> FacePages:  # type: ignore[no-untyped-def]
    return FacePages(settings.output_dir, LinkSigner(b"k" * 32), keep_s=settings.keep_days * DAY)


@pytest.fixture
async def simcord_bot(settings, store, stages, text_stage, pages):  # type: ignore[no-untyped-def]
    async with bot_on_stack(settings, store, stages, text_stage, pages=pages) as bot:
        yield bot


@pytest.fixture
async def fresh_bot(settings, store, stages, photo, pages):  # type: ignore[no-untyped-def]
    async with contextlib.AsyncExitStack() as bots:

        async def make():  # type: ignore[no-untyped-def]
            return await bots.enter_async_context(bot_on_stack(settings, store, stages, photo, pages=pages))

        yield make


def job_of(result) -> str:  # type: ignore[no-untyped-def]
    return str(result.response.embeds[0].footer.text.removeprefix("job "))


def confirm_id(result) -> str:  # type: ignore[no-untyped-def]
    (row,) = result.response.components
    (button,) = row["components"]
    return str(button["custom_id"])


def upkeep(env):  # type: ignore[no-untyped-def]
    return env.bot.get_cog("UpkeepCog").forgetting


def database_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())


@pytest.mark.bot_settings(keep_uploads=True)
async def test_forget_deletes_a_members_faces_everywhere_once_they_confirm(
    simcord_env, fresh_bot, store: Store, pages: FacePages, settings
) -> None:  # type: ignore[no-untyped-def]
    allow_simcord(simcord_env)
    home, away = simcord_env.create_guild(), simcord_env.create_guild()
    here, there = home.create_text_channel("faces"), away.create_text_channel("faces")
    person = simcord_env.create_user("alice")
    alice, alice_away = home.add_member(person), away.add_member(person)
    bob = home.add_member(simcord_env.create_user("bob"))
    mine = [
        await alice.slash(here, "face", prompt=SECRET),
        await alice_away.slash(there, "face", prompt=SECRET + " abroad"),
    ]
    from_photo = await alice.slash(here, "face3d", photo=("me.png", png(astronaut())))
    (public_photo_face,) = from_photo.followups
    photo_job = public_photo_face.embeds[0].footer.text.removeprefix("job ")
    theirs = await bob.slash(here, "face", prompt="bob's own astronaut")
    my_jobs = [*map(job_of, mine), photo_job]
    uploads = settings.output_dir / "uploads"
    assert all(pages.report(job) is not None for job in my_jobs) and list(uploads.glob(f"{photo_job}.*"))

    asked = await alice.slash(here, "forget")
    assert asked.ephemeral and asked.response.content.startswith("This deletes everything t2f keeps about your faces")
    await simcord_env.restart_bot(await fresh_bot())  # the button needs no memory of the question
    done = await alice.click(asked.response, custom_id=confirm_id(asked))

    assert asked.response.content == (
        "Done. Faces forgotten: 3 (stopped while being made: 0; posted faces deleted: 3). t2f keeps nothing else "
        "about them."
    )
    assert done.acknowledged and asked.response.components == []  # the button went with the first press
    for job in my_jobs:
        assert await store.get_job(job) is None and pages.report(job) is None
    assert not list(uploads.glob(f"{photo_job}.*"))
    assert mine[0].response is None and mine[1].response is None  # the posted faces are gone from the chat
    assert [m.id for m in here.history()].count(public_photo_face.id) == 0
    assert await store.get_job(job_of(theirs)) is not None and pages.report(job_of(theirs)) is not None
    assert theirs.response is not None and theirs.response.embeds
    audit = await store._run("SELECT guild_id, actor_id, subject_id, action, faces FROM audit ORDER BY faces")
    assert sorted(tuple(row) for row in audit) == sorted(
        [
            (home.id, person.id, person.id, "forget", 2),
            (away.id, person.id, person.id, "forget", 1),
        ]
    )
    assert SECRET.encode() not in database_bytes(settings.db_path)  # nowhere on disk, the log included
    assert not any(SECRET in path.read_text(errors="ignore") for path in settings.output_dir.rglob("*.json"))


async def test_the_confirmation_is_the_askers_alone_and_expires(simcord_env, store: Store) -> None:  # type: ignore[no-untyped-def]
    guild, channel, alice = world(simcord_env)
    bob = guild.add_member(simcord_env.create_user("bob"))
    made = await alice.slash(channel, "face", prompt=SECRET)
    # The button where someone else could press it (an ephemeral question is alice's alone to see).
    posted = await simcord_env.bot.get_channel(channel.id).send("forget?", view=confirmation(alice.id, alice.id, 0))
    await simcord_env.settle()
    pressed = await bob.click(posted, custom_id=posted.components[0].children[0].custom_id)
    assert pressed.ephemeral and pressed.response.content == "Only the person who asked for this can confirm it."
    assert await store.get_job(job_of(made)) is not None

    asked = await alice.slash(channel, "forget")
    await simcord_env.advance_time(CONFIRM_S + 1)
    late = await alice.click(asked.response, custom_id=confirm_id(asked))
    assert late.ephemeral and late.response.content == "This confirmation has expired; ask again."
    assert await store.get_job(job_of(made)) is not None and made.response is not None


async def test_a_moderator_forgets_a_member_here_and_their_waiting_face_is_never_posted(
    simcord_env, store: Store, photo: PhotoTextToImage
) -> None:  # type: ignore[no-untyped-def]
    guild, channel, alice = world(simcord_env)
    mod = moderator(simcord_env, guild)
    done = await alice.slash(channel, "face", prompt=SECRET)
    await mod.slash(channel, "faceadmin pause")
    waiting = await alice.slash(channel, "face", prompt=SECRET + " waiting", seed=2)
    waiting_job = waiting.response.content.split("`")[1]
    asked = await mod.slash(channel, "faceadmin forget", member=alice)
    assert asked.ephemeral and asked.response.content.startswith(
        f"This deletes everything t2f keeps about <@{alice.id}>"
    )
    await mod.click(asked.response, custom_id=confirm_id(asked))
    assert asked.response.content == (
        f"Done. Faces of <@{alice.id}> forgotten on this server: 2 (stopped while being made: 1; posted faces "
        "deleted: 2). The audit log notes it, without their words."
    )
    await mod.slash(channel, "faceadmin resume")
    await simcord_env.settle()
    assert done.response is None and waiting.response is None
    assert photo.prompts == [SECRET]  # the waiting face was never painted, and nothing was posted for it
    assert not [m for m in channel.history() if m.author.bot]  # no face, no note, no mention of alice
    assert await store.get_job(waiting_job) is None
    assert [tuple(r) for r in await store._run("SELECT actor_id, subject_id, faces, counted_today FROM audit")] == [
        (mod.id, alice.id, 2, 2)
    ]
    # Forgetting gives no faces back: both still count towards today's quota.
    standing = await simcord_env.bot.policy.standing(guild_id=guild.id, user_id=alice.id)
    assert standing.made_today == 2


async def test_records_past_the_retention_are_pruned_every_hour(simcord_env, store: Store, pages: FacePages) -> None:  # type: ignore[no-untyped-def]
    _, channel, alice = world(simcord_env)
    made = await alice.slash(channel, "face", prompt=SECRET)
    forgetting = upkeep(simcord_env)
    forgetting.clock = lambda: time.time() + 6 * DAY
    await simcord_env.advance_time(SWEEP_EVERY_S)
    assert await store.get_job(job_of(made)) is not None  # six days old: kept
    forgetting.clock = lambda: time.time() + 7 * DAY + 60
    await simcord_env.advance_time(SWEEP_EVERY_S)
    assert await store.get_job(job_of(made)) is None  # past T2F_RETENTION_DAYS (7): gone, by the hourly sweep
    assert pages.report(job_of(made)) is not None  # its page keeps its own lifetime (T2F_KEEP_DAYS)


async def test_a_server_that_removed_the_bot_is_forgotten_after_the_grace_period(
    simcord_env, store: Store, pages: FacePages
) -> None:  # type: ignore[no-untyped-def]
    guild, channel, alice = world(simcord_env)
    other, other_channel, bob = world(simcord_env)
    made = job_of(await alice.slash(channel, "face", prompt=SECRET))
    kept = job_of(await bob.slash(other_channel, "face", prompt="another astronaut"))
    for server in (guild, other):
        await store.save_guild_settings(GuildSettings(guild_id=server.id, daily_quota=4))
    forgetting, now = upkeep(simcord_env), time.time()
    forgetting.clock = lambda: now

    simcord_env.backend.remove_guild(guild.id)  # kicked: Discord sends GUILD_DELETE
    await simcord_env.settle()
    assert await store.due_guild_removals(now + GUILD_GRACE_S) == [guild.id]
    forgetting.clock = lambda: now + GUILD_GRACE_S - 60
    await simcord_env.advance_time(SWEEP_EVERY_S)
    assert (await store.guild_settings(guild.id)).daily_quota == 4  # within the grace: a re-invite keeps it all

    forgetting.clock = lambda: now + GUILD_GRACE_S + 60
    await simcord_env.advance_time(SWEEP_EVERY_S)
    assert await store.get_job(made) is None and pages.report(made) is None
    assert await store.guild_settings(guild.id) == GuildSettings(guild_id=guild.id)
    assert (await store.guild_settings(other.id)).daily_quota == 4 and await store.get_job(kept) is not None

    # Removed, then invited back within the grace: the join calls the removal off.
    simcord_env.backend.remove_guild(other.id)
    await simcord_env.settle()
    assert await store.due_guild_removals(now + 10 * GUILD_GRACE_S) == [other.id]
    simcord_env.bot.dispatch("guild_join", discord.Object(id=other.id))
    await simcord_env.settle()
    assert await store.due_guild_removals(now + 10 * GUILD_GRACE_S) == []


async def test_delete_removes_a_faces_record_and_page_too_and_audits_it(
    simcord_env, store: Store, pages: FacePages
) -> None:  # type: ignore[no-untyped-def]
    guild, channel, alice = world(simcord_env)
    mod = moderator(simcord_env, guild)
    made = await alice.slash(channel, "face", prompt=SECRET)
    job = job_of(made)
    assert pages.report(job) is not None
    deleted = await mod.click(made.response, custom_id=f"t2f:delete:{job}")
    assert deleted.ephemeral and deleted.response.content == "Deleted." and made.response is None
    assert await store.get_job(job) is None and pages.report(job) is None
    audit = await store._run("SELECT actor_id, subject_id, action, faces FROM audit")
    assert [tuple(row) for row in audit] == [(mod.id, alice.id, "delete", 1)]


async def test_a_busy_database_forgets_nothing_and_says_so(simcord_env, store: Store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from t2f.serve.store import BUSY, StoreUnavailable

    _, channel, alice = world(simcord_env)
    made = await alice.slash(channel, "face", prompt=SECRET)
    asked = await alice.slash(channel, "forget")

    async def locked(*args: object, **kwargs: object) -> None:
        raise StoreUnavailable(BUSY)

    monkeypatch.setattr(store, "forget_member", locked)
    await alice.click(asked.response, custom_id=confirm_id(asked))
    assert asked.response.content == BUSY
    assert made.response is not None and await store.get_job(job_of(made)) is not None
