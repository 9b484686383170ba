"""SimCord: a dropped connection or an interaction lost in time never loses a face, paints one nobody
asked to see, or keeps a member's slot.

discord.py raises ``discord.HTTPException`` for what Discord answers, but a dropped connection comes
through as aiohttp's own error; these tests drop the bot's interaction-webhook requests that way (in
SimCord's stand-in for discord.py's webhook adapter, where those requests go).
"""

from __future__ import annotations

import sys
import threading

import aiohttp
import discord
import pytest
from discord_fixtures import PhotoTextToImage, burst, moderator, world
from simcord.http.client import FakeWebhookAdapter
from skimage.data import astronaut, coffee
from test_discord_photo import allow_simcord, png

from cogs.photo import UNREADABLE
from t2f.serve.faces import NO_FACE_IN_PHOTO
from t2f.serve.store import Store

FILES = {"turntable.gif", "preview.jpg", "image.png", "face.obj"}


def drop_connection(monkeypatch: pytest.MonkeyPatch, method: str, times: int | None = 1) -> list[str]:
    """The next ``times`` (``None``: all) interaction-webhook requests of ``method`` fail as a dropped
    connection does; returns the paths dropped so far."""
    request, dropped = FakeWebhookAdapter.request, []

    async def dropping(self, route, session, **kwargs):  # type: ignore[no-untyped-def]
        if route.method == method and (times is None or len(dropped) < times):
            dropped.append(route.path)
            raise aiohttp.ServerDisconnectedError()
        return await request(self, route, session, **kwargs)

    monkeypatch.setattr(FakeWebhookAdapter, "request", dropping)
    return dropped


def paused_server(env):  # type: ignore[no-untyped-def]
    """A server with its queue paused, a member and a moderator: a test sets its fault, then resumes."""
    guild, channel, member = world(env)
    env.bot.service.pause(guild.id)
    return guild, channel, member, moderator(env, guild)


async def test_a_dropped_progress_edit_still_delivers_the_face(
    simcord_env, store: Store, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:  # type: ignore[no-untyped-def]
    guild, channel, alice, mod = paused_server(simcord_env)
    result = await alice.slash(channel, "face", prompt="a smiling astronaut")
    dropped = drop_connection(monkeypatch, "PATCH")  # the next edit: "Starting", once the queue resumes
    await mod.slash(channel, "faceadmin resume")
    assert len(dropped) == 1
    message = result.response
    assert message.embeds and {a.filename for a in message.attachments} == FILES
    (record,) = await store.recent_jobs(guild.id)
    assert record.status == "done"
    assert any(
        r.getMessage().startswith(f"progress edit for job {record.id} failed (ServerDisconnectedError")
        for r in caplog.records
    )


async def test_a_delivery_whose_connection_drops_is_recorded_undelivered(
    simcord_env, store: Store, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:  # type: ignore[no-untyped-def]
    guild, channel, alice, mod = paused_server(simcord_env)
    await alice.slash(channel, "face", prompt="a smiling astronaut")
    drop_connection(monkeypatch, "PATCH", times=None)
    await mod.slash(channel, "faceadmin resume")
    (record,) = await store.recent_jobs(guild.id)
    assert record.status == "undelivered"  # not left "running", to be painted again by the next start
    assert await store.jobs_with_status("queued", "running", "delivering") == []
    assert any(r.getMessage() == f"delivering job {record.id} failed" and r.exc_info for r in caplog.records)
    assert not any(r.getMessage().startswith("following job") for r in caplog.records)  # nothing uncaught


async def test_a_face_whose_interaction_expired_is_cancelled_not_resumed(
    simcord_env, fresh_bot, settings, store: Store, stages, photo: PhotoTextToImage
) -> None:  # type: ignore[no-untyped-def]
    guild, channel, alice = world(simcord_env)
    simcord_env.bot.service.pause(guild.id)
    simcord_env.inject_error(
        "POST", "/interactions/*/*/callback", status=404, code=10062, message="Unknown interaction"
    )
    await alice.slash(channel, "face", prompt="a forgotten astronaut")
    (error,) = simcord_env.errors  # the command's own error, for the operator's log
    assert "Unknown interaction" in str(error)
    (record,) = await store.recent_jobs(guild.id)
    assert record.status == "cancelled"  # she saw "The application did not respond": nothing is on its way
    await simcord_env.restart_bot(await fresh_bot())
    assert photo.prompts == [] and channel.last_message is None  # no face painted, no ping after the restart


async def test_a_photo_download_whose_connection_drops_gives_the_slot_back(
    simcord_env, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    allow_simcord(simcord_env)
    _guild, channel, alice = world(simcord_env)
    read = discord.Attachment.read

    async def dropped(self, **kwargs):  # type: ignore[no-untyped-def]
        raise aiohttp.ClientPayloadError("Response payload is not completed")

    monkeypatch.setattr(discord.Attachment, "read", dropped)
    for _ in range(3):  # more than the pending cap (2): a kept slot would refuse the third try
        failed = await alice.slash(channel, "face3d", photo=("astronaut.png", png(astronaut())))
        assert failed.ephemeral and failed.response.content == UNREADABLE
    assert simcord_env.bot.policy.reserved == 0
    monkeypatch.setattr(discord.Attachment, "read", read)

    def out_of_memory(data: bytes) -> None:  # any other failure between admission and the queue
        raise MemoryError

    # The module the bot loaded (discord.py loads each extension anew), not the one this test imported.
    monkeypatch.setattr(sys.modules[type(simcord_env.bot.get_cog("PhotoCog")).__module__], "load_image", out_of_memory)
    for _ in range(3):
        crashed = await alice.slash(channel, "face3d", photo=("astronaut.png", png(astronaut())))
        assert crashed.response.content.startswith("Something went wrong")  # the tree's answer, no traceback
    assert [type(e.__cause__) for e in simcord_env.errors] == [MemoryError] * 3
    assert simcord_env.bot.policy.reserved == 0
    monkeypatch.undo()
    made = await alice.slash(channel, "face3d", photo=("astronaut.png", png(astronaut())))
    assert made.followups and made.followups[0].embeds  # her slot and cooldown were given back each time


async def test_at_most_two_pictures_are_decoded_at_once(simcord_env, photo: PhotoTextToImage) -> None:  # type: ignore[no-untyped-def]
    allow_simcord(simcord_env)
    guild, channel, _ = world(simcord_env)
    members = [guild.add_member(simcord_env.create_user(f"member{i}")) for i in range(4)]
    module = sys.modules[type(simcord_env.bot.get_cog("PhotoCog")).__module__]
    decode, turn, running, most = module.load_image, threading.Condition(), [0], [0]

    def paired_decode(data: bytes):  # type: ignore[no-untyped-def]
        """The first decode waits for a second to run beside it (the cap lets two in; a cap of one would wait
        out the bound and show 1), whatever the machine's speed; a pair then holds a moment in which a
        third, were the cap higher, would show."""
        with turn:
            running[0] += 1
            most[0] = max(most[0], running[0])
            turn.notify_all()
            turn.wait_for(lambda: most[0] >= 2, timeout=30)
            if running[0] >= 2:
                turn.wait(0.2)
        try:
            return decode(data)
        finally:
            with turn:
                running[0] -= 1

    module.load_image = paired_decode
    try:
        picture = ("astronaut.png", png(astronaut()))
        results = await burst(simcord_env, [(m, channel, "face3d", {"photo": picture}) for m in members])
    finally:
        module.load_image = decode
    assert most[0] == 2  # each up to ~430 MiB at the 100-MP limit, beside the models
    assert all(r.followups and r.followups[0].embeds for r in results)  # the others waited their turn


async def test_a_late_face_the_channel_refuses_goes_to_the_member(simcord_env, store: Store) -> None:  # type: ignore[no-untyped-def]
    guild, channel, alice, mod = paused_server(simcord_env)
    await alice.slash(channel, "face", prompt="a patient astronaut")
    await simcord_env.advance_time(16 * 60)  # the token is gone: the result must be a new message
    simcord_env.inject_error(
        "POST", f"/channels/{channel.id}/messages", status=403, code=50013, message="Missing Permissions"
    )
    await mod.slash(channel, "faceadmin resume")
    message = alice.user.dm_channel.last_message
    assert message.content == f"I could not post this in <#{channel.id}>, so here it is."
    assert {a.filename for a in message.attachments} == FILES and message.embeds
    (record,) = await store.recent_jobs(guild.id)
    assert record.status == "done" and record.message_id == message.id
    # No Reroll in a DM: a face made there would skip the server's bans, quota and filter.
    ids = [item.custom_id for row in message.components for item in row.children if item.custom_id]
    assert [i.split(":")[1] for i in ids] == ["info", "delete"]


async def test_a_late_face_too_large_for_the_channel_is_posted_without_files(simcord_env) -> None:  # type: ignore[no-untyped-def]
    _guild, channel, alice, mod = paused_server(simcord_env)
    await alice.slash(channel, "face", prompt="a patient astronaut")
    await simcord_env.advance_time(16 * 60)
    simcord_env.inject_error(
        "POST", f"/channels/{channel.id}/messages", status=413, code=40005, message="Request entity too large"
    )
    await mod.slash(channel, "faceadmin resume")
    message = channel.last_message
    assert message.content.startswith(f"<@{alice.id}> The files were too large to upload here. · job `")
    assert message.attachments == [] and message.embeds == []


async def test_a_photo_face_posted_before_its_note_fails_is_recorded_delivered(
    simcord_env, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    allow_simcord(simcord_env)
    guild, channel, alice, mod = paused_server(simcord_env)
    result = await alice.slash(channel, "face3d", photo=("astronaut.png", png(astronaut())))
    drop_connection(monkeypatch, "PATCH", times=None)  # every edit of the private message, the last note too
    await mod.slash(channel, "faceadmin resume")
    (public,) = result.followups
    assert public.embeds  # the face is out, for everyone
    (record,) = await store.recent_jobs(guild.id)
    assert record.status == "done"


async def test_a_late_photo_refusal_stays_private(simcord_env) -> None:  # type: ignore[no-untyped-def]
    allow_simcord(simcord_env)
    _guild, channel, alice, mod = paused_server(simcord_env)
    await alice.slash(channel, "face3d", photo=("coffee.png", png(coffee())))
    await simcord_env.advance_time(16 * 60)  # the token is gone
    await mod.slash(channel, "faceadmin resume")
    (refusal,) = alice.user.dm_channel.history()
    assert refusal.content.startswith(NO_FACE_IN_PHOTO) and refusal.attachments == []
    assert [m for m in channel.history() if m.author.id == simcord_env.bot.user.id] == []  # nothing public
