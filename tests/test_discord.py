"""The bot through SimCord: real discord.py, real cogs and tree, real pipeline behind the service; no network.

Fixtures (the bot, its store and stages) are in conftest.py; helpers in discord_fixtures.py.
"""

from __future__ import annotations

import dataclasses
import io
import time

import numpy as np
import pytest
import trimesh
from discord_fixtures import PhotoTextToImage, attachment_bytes, callbacks, moderator, original_edits, refused, world
from PIL import Image

from t2f.serve.store import Store


async def test_face_defers_queues_and_delivers_a_mesh(simcord_env, photo: PhotoTextToImage) -> None:  # type: ignore[no-untyped-def]
    _, channel, alice = world(simcord_env)
    result = await alice.slash(channel, "face", prompt="a smiling astronaut")
    assert result.acknowledged and not result.ephemeral
    assert callbacks(simcord_env) == [5]  # deferred ("thinking") first, inside the 3 s window SimCord enforces
    edits = original_edits(simcord_env)
    assert edits[0].startswith("⏳ Queued as #1 · about ")
    message = result.response
    (embed,) = message.embeds
    assert embed.title == "a smiling astronaut"
    assert {f.name for f in embed.fields} >= {"Seed", "Steps", "Guidance", "Model", "Pose", "Stage times"}
    assert embed.image.url == "attachment://turntable.gif"
    assert {a.filename for a in message.attachments} == {"turntable.gif", "preview.jpg", "image.png", "face.obj"}
    mesh = trimesh.load(io.BytesIO(await attachment_bytes(message, "face.obj")), file_type="obj", process=False)
    assert mesh.faces.shape == (86_906, 3)
    preview = np.asarray(Image.open(io.BytesIO(await attachment_bytes(message, "preview.jpg"))))
    assert preview.shape == (256, 1280, 3)
    buttons = [c["custom_id"] for row in message.components for c in row["components"]]
    job_id = embed.footer.text.removeprefix("job ")
    assert buttons == [f"t2f:reroll:{job_id}", f"t2f:info:{job_id}", f"t2f:delete:{job_id}"]
    assert photo.prompts == ["a smiling astronaut"] and photo.threads == {"t2f-gpu_0"}


async def test_progress_edits_are_spaced_and_coalesced() -> None:
    """Twelve steps a quarter of a second apart on the follower's clock, edits at most once a second: the
    first step, then the latest state once a second has passed (steps 5 and 9), never one per step. The
    clock is the test's, so a busy machine cannot change the answer."""
    import asyncio
    import types

    from cogs.face.follow import Followers
    from t2f.faces import FaceRequest
    from t2f.serve.jobs import JobPhase, JobProgress, JobRequest, JobResult, JobStatus
    from t2f.serve.queue import JobHandle

    now = [0.0]
    bot = types.SimpleNamespace(settings=types.SimpleNamespace(progress_interval_s=1.0))
    followers = Followers(bot, clock=lambda: now[0])  # type: ignore[arg-type]
    handle = JobHandle(JobRequest("a" * 12, 1, FaceRequest("a face", steps=12)), asyncio.get_running_loop())
    edits: list[str] = []

    async def edit(**reply: object) -> object:
        edits.append(str(reply["content"]))
        return None

    shown = asyncio.create_task(followers._show_progress(handle, edit, started_at=time.monotonic()))
    for step in range(1, 13):
        now[0] += 0.25
        handle.update(JobProgress(handle.job.job_id, JobPhase.PAINTING, step, 12))
        while handle.changed.is_set():  # the follower has seen this step before the clock moves on
            await asyncio.sleep(0)
    handle.finish(JobResult(handle.job.job_id, JobStatus.DONE))
    assert await shown is edit  # still the message's edit: the result goes into it
    steps = [int(text.split("step ")[1].split("/")[0]) for text in edits]
    assert steps == [1, 5, 9] and all("▰" in text or "▱" in text for text in edits)
    assert handle.preview_watchers == 0  # it stopped asking for previews when the job ended


@pytest.mark.bot_settings(steps=12, progress_interval_s=60.0)
async def test_the_result_replaces_the_progress_in_the_same_message(simcord_env) -> None:  # type: ignore[no-untyped-def]
    _, channel, alice = world(simcord_env)
    result = await alice.slash(channel, "face", prompt="a smiling astronaut")
    edits = original_edits(simcord_env)
    assert edits[0].startswith("⏳ Queued as #1") and len([e for e in edits if "step" in e]) <= 1  # 60 s apart
    assert edits[-1] == "" and result.response.embeds  # the final edit replaces the text with the result embed


async def test_each_refusal_is_ephemeral_and_does_no_gpu_work(simcord_env, store: Store) -> None:  # type: ignore[no-untyped-def]
    import time

    from test_store import record

    from t2f.serve.records import GuildSettings

    guild, channel, alice = world(simcord_env)
    other = guild.create_text_channel("general")
    bob = guild.add_member(simcord_env.create_user("bob"))
    await store.save_guild_settings(GuildSettings(guild_id=guild.id, allowed_channels=(channel.id,)))
    assert (await refused(simcord_env, alice, other, prompt="a face")).startswith(
        "/face is not enabled in this channel."
    )
    await store.ban(guild.id, bob.id, by=alice.id)
    assert (
        await refused(simcord_env, bob, channel, prompt="a face") == "You are not allowed to use /face on this server."
    )
    text = await refused(simcord_env, alice, channel, prompt="a n.u.d.e portrait")
    assert text == "Your prompt contains words this server does not allow. Please rephrase it."
    await store.save_guild_settings(GuildSettings(guild_id=guild.id, allowed_channels=(channel.id,), daily_quota=1))
    old = dataclasses.replace(record("old"), user_id=alice.id, guild_id=guild.id, created_at=time.time())
    await store.add_job(old)
    text = await refused(simcord_env, alice, channel, prompt="a face")
    assert text == "You have reached today's limit of 1 faces on this server; it resets at midnight UTC."


@pytest.mark.bot_settings(cooldown_s=60.0)
async def test_cooldown_refuses_a_second_face(simcord_env) -> None:  # type: ignore[no-untyped-def]
    _, channel, alice = world(simcord_env)
    first = await alice.slash(channel, "face", prompt="a smiling astronaut")
    assert first.response.embeds
    text = await refused(simcord_env, alice, channel, prompt="another astronaut")
    assert text.startswith("Slow down: you can ask for another face in ") and text.endswith(" s.")


@pytest.mark.bot_settings(user_pending=1)
async def test_pending_cap_counts_waiting_jobs(simcord_env) -> None:  # type: ignore[no-untyped-def]
    _, channel, alice = world(simcord_env)
    simcord_env.bot.service.pause()
    queued = await alice.slash(channel, "face", prompt="a smiling astronaut")
    assert "the moderators paused the queue" in queued.response.content
    text = await refused(simcord_env, alice, channel, prompt="another astronaut")
    assert text == "You already have 1 faces on the way; wait for one to finish."


@pytest.mark.text_stage("tiny_flagging")
async def test_flagged_image_is_withheld_and_the_user_told(simcord_env) -> None:  # type: ignore[no-untyped-def]
    from t2f.stages.text2img import WITHHELD_BY_SAFETY

    _, channel, alice = world(simcord_env)
    result = await alice.slash(channel, "face", prompt="a portrait photo")
    message = result.response
    assert message.content.startswith(WITHHELD_BY_SAFETY) and "job `" in message.content
    assert message.attachments == [] and message.embeds == []


@pytest.mark.bot_settings(progress_interval_s=30.0)
async def test_upload_refused_as_too_large_still_answers(simcord_env) -> None:  # type: ignore[no-untyped-def]
    guild, channel, alice = world(simcord_env)
    mod = moderator(simcord_env, guild)
    simcord_env.bot.service.pause(guild.id)
    result = await alice.slash(channel, "face", prompt="a smiling astronaut")
    # The next two edits fail with 413: the "Starting" progress edit (skipped, logged) and the upload.
    simcord_env.inject_error(
        "PATCH", "/webhooks/*/*/messages/@original", status=413, code=40005, message="Request entity too large", times=2
    )
    await mod.slash(channel, "faceadmin resume")
    message = result.response
    assert message.content.startswith("The files were too large to upload here. · job `")
    assert message.attachments == []


async def test_result_after_the_token_expired_goes_to_the_channel(simcord_env) -> None:  # type: ignore[no-untyped-def]
    guild, channel, alice = world(simcord_env)
    mod = moderator(simcord_env, guild)
    simcord_env.bot.service.pause(guild.id)
    queued = await alice.slash(channel, "face", prompt="a smiling @everyone astronaut")
    assert "paused" in queued.response.content
    await simcord_env.advance_time(16 * 60)  # past Discord's 15-minute interaction token lifetime
    await mod.slash(channel, "faceadmin resume")
    message = channel.last_message
    assert message.author.id == simcord_env.bot.user.id
    assert message.content == f"<@{alice.id}> your face is ready."
    assert {a.filename for a in message.attachments} == {"turntable.gif", "preview.jpg", "image.png", "face.obj"}
    channel_posts = [r for r in simcord_env.http_requests if r.method == "POST" and r.path.endswith("/messages")]
    mentions = channel_posts[-1].json["allowed_mentions"]
    assert mentions["parse"] == [] and [int(u) for u in mentions["users"]] == [alice.id]  # only the author is pinged


async def test_mentions_in_prompts_never_ping(simcord_env) -> None:  # type: ignore[no-untyped-def]
    _, channel, alice = world(simcord_env)
    await alice.slash(channel, "face", prompt="@everyone and <@&123> and <@456> smiling")
    writes = [
        r
        for r in simcord_env.http_requests
        if r.method in ("POST", "PATCH") and isinstance(r.json, dict) and ("content" in r.json or "embeds" in r.json)
    ]
    assert writes
    for request in writes:
        assert request.json.get("allowed_mentions") == {"parse": []}, request.path


async def test_a_crash_in_a_stage_shows_the_job_id_not_a_traceback(
    simcord_env, photo: PhotoTextToImage, caplog
) -> None:  # type: ignore[no-untyped-def]
    def explode() -> None:
        raise RuntimeError("CUDA error: an illegal memory access at /secret/path")

    photo.on_paint = explode
    _, channel, alice = world(simcord_env)
    result = await alice.slash(channel, "face", prompt="a smiling astronaut")
    content = result.response.content
    job_id = content.rsplit("`", 2)[1]
    assert content.startswith(f"Something went wrong while making your face (job {job_id}).")
    assert "Traceback" not in content and "/secret" not in content and "CUDA" not in content
    assert any(job_id in r.getMessage() and r.exc_info for r in caplog.records)  # the operator gets the traceback


async def test_a_failed_delivery_is_recorded_not_retried(simcord_env, store: Store) -> None:  # type: ignore[no-untyped-def]
    guild, channel, alice = world(simcord_env)
    mod = moderator(simcord_env, guild)
    simcord_env.bot.service.pause(guild.id)
    await alice.slash(channel, "face", prompt="a smiling astronaut")
    (record,) = await store.jobs_with_status("queued")
    simcord_env.inject_error("PATCH", "/webhooks/*/*/messages/@original", status=403, code=50013, times=None)
    await mod.slash(channel, "faceadmin resume")
    assert (await store.get_job(record.id)).status == "undelivered"
    assert await store.jobs_with_status("queued", "running", "delivering") == []  # nothing left to resume


async def test_the_public_titles_escape_the_prompt_as_the_info_card_does(simcord_env) -> None:  # type: ignore[no-untyped-def]
    _, channel, alice = world(simcord_env)
    prompt = "**big** [free nitro](https://evil.example) \u202ewoman_x\nline two"
    made = await alice.slash(channel, "face", prompt=prompt)
    (embed,) = made.response.embeds
    # No bold, no masked link, no right-to-left override, one line: what the member typed, shown as typed.
    assert embed.title == "\\*\\*big\\*\\* \\[free nitro](https://evil.example) woman\\_x line two"


def test_titles_and_quotes_stay_inside_discords_limits() -> None:
    from cogs.replies import MAX_EMBED_TITLE, embed_title, quoted

    long = embed_title("_" * 400)
    assert len(long) <= MAX_EMBED_TITLE and long.endswith("\\_…")  # an escape is never cut in half
    assert embed_title("a\u200b\u2066smiling\u2069 face") == "asmiling face"
    assert (
        quoted("see www.example.com and ftp://x.example/a_b", 80) == "see `www.example.com` and `ftp://x.example/a_b`"
    )
    assert quoted("<@123> @everyone") == "<@123> @\u200beveryone"  # mentions inert (the reply never pings)


async def test_an_emoji_only_prompt_needs_words(simcord_env) -> None:  # type: ignore[no-untyped-def]
    _, channel, alice = world(simcord_env)
    text = await refused(simcord_env, alice, channel, prompt="🍆💦🍑")
    assert text == "The prompt needs words: emoji alone do not describe a face. Describe the face you want in words."
    assert (
        await refused(simcord_env, alice, channel, prompt="  ...  ")
        == "The prompt is empty; describe the face you want."
    )
