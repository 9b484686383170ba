"""SimCord: admission and moderation under pressure (issue: limits race, bad jobs in a batch, long
moderator views, the filter on negative prompts, a locked database)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest
from discord_fixtures import PhotoTextToImage, burst, callbacks, moderator, refused, world

from t2f.errors import InvalidRequest
from t2f.faces import FaceImage
from t2f.serve.jobs import JobStatus
from t2f.serve.store import BUSY, Store


def answers(results: Sequence[object]) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.response.content for r in results]  # type: ignore[attr-defined]


@pytest.mark.bot_settings(cooldown_s=20.0, user_pending=2, daily_quota=1)
async def test_three_simultaneous_requests_from_one_member_make_one_face(
    simcord_env, photo: PhotoTextToImage, store: Store
) -> None:  # type: ignore[no-untyped-def]
    guild, channel, alice = world(simcord_env)
    results = await burst(simcord_env, [(alice, channel, "face", {"prompt": f"astronaut {i}"}) for i in range(3)])
    made = [r for r in results if r.response.embeds]
    refusals = [r for r in results if not r.response.embeds]
    assert len(made) == 1 and len(photo.prompts) == 1
    assert all(r.ephemeral for r in refusals) and len(refusals) == 2
    assert all(text.startswith(("Slow down", "Your previous request is still")) for text in answers(refusals))
    rows = await store.recent_jobs(guild.id, limit=10)
    assert [row.status for row in rows] == [JobStatus.DONE]  # refused requests leave no row


@pytest.mark.simcord(settle_timeout=120)
@pytest.mark.bot_settings(cooldown_s=0.0, user_pending=2, daily_quota=100, queue_capacity=60)
async def test_a_burst_never_passes_the_pending_cap(simcord_env, photo: PhotoTextToImage) -> None:  # type: ignore[no-untyped-def]
    guild, channel, _ = world(simcord_env)
    mod = moderator(simcord_env, guild)
    members = [guild.add_member(simcord_env.create_user(f"m{i}")) for i in range(8)]
    await mod.slash(channel, "faceadmin pause")  # everything piles up, as behind a long job
    invocations = [(m, channel, "face", {"prompt": f"{m.name} astronaut {i}"}) for m in members for i in range(4)]
    results = await burst(simcord_env, invocations)
    queued = [r for r in results if not r.ephemeral]
    assert len(queued) == 16 and len(simcord_env.bot.service.queued()) == 16  # 8 members x 2, never more
    per_member = {m.id: sum(1 for h in simcord_env.bot.service.queued() if h.job.user_id == m.id) for m in members}
    assert set(per_member.values()) == {2}
    assert all(r.response.content.startswith("You already have 2 faces on the way") for r in results if r.ephemeral)
    assert simcord_env.bot.policy.reserved == 0
    await mod.slash(channel, "faceadmin resume")
    assert len(photo.prompts) == 16 and all(r.response.embeds for r in queued)


async def test_a_blank_prompt_is_refused_privately_before_any_work(simcord_env) -> None:  # type: ignore[no-untyped-def]
    _, channel, alice = world(simcord_env)
    empty = "The prompt is empty; describe the face you want."
    assert await refused(simcord_env, alice, channel, prompt="   ") == empty
    assert await refused(simcord_env, alice, channel, prompt="\u200b\u200b\u200b...") == empty
    broken = "The prompt has characters that are not text; please type it again."
    assert await refused(simcord_env, alice, channel, prompt="a face \ud83d") == broken  # a lone surrogate


async def test_the_filter_reads_the_negative_prompt(simcord_env) -> None:  # type: ignore[no-untyped-def]
    _, channel, alice = world(simcord_env)
    text = await refused(simcord_env, alice, channel, prompt="a woman", negative_prompt="clothes, clothing, shirt")
    assert text == "Your negative prompt contains words this server does not allow. Please rephrase it."
    made = await alice.slash(channel, "face", prompt="a woman", negative_prompt="nsfw, blurry")
    assert made.response.embeds


class OneBadPrompt(PhotoTextToImage):
    """Paints the photo, but a request whose prompt says "break" breaks the whole batch it is in."""

    def generate_batch(self, requests, *, on_step=None, **options) -> list[FaceImage]:  # type: ignore[no-untyped-def, override]
        if any("break" in r.prompt for r in requests):
            raise InvalidRequest("This prompt cannot be painted.")
        return super().generate_batch(requests, on_step=on_step, **options)


@pytest.mark.bot_settings(max_batch=4, user_pending=4, cooldown_s=0.0)
async def test_one_bad_job_fails_alone_and_the_rest_of_its_batch_finishes(simcord_env) -> None:  # type: ignore[no-untyped-def]
    stage = OneBadPrompt()
    simcord_env.bot.service.route.paint.text_to_image = stage
    guild, channel, _ = world(simcord_env)
    mod = moderator(simcord_env, guild)
    members = [guild.add_member(simcord_env.create_user(f"m{i}")) for i in range(4)]
    await mod.slash(channel, "faceadmin pause")  # the four wait, then run as one batch
    prompts = ["an astronaut", "please break", "a smiling astronaut", "an old astronaut"]
    results = [await m.slash(channel, "face", prompt=p) for m, p in zip(members, prompts, strict=True)]
    await mod.slash(channel, "faceadmin resume")
    bad = results[1].response.content
    assert bad.startswith("This prompt cannot be painted. · job `")
    assert all(r.response.embeds for i, r in enumerate(results) if i != 1)
    assert sorted(stage.prompts) == sorted(p for p in prompts if p != "please break")


@pytest.mark.simcord(settle_timeout=120)
@pytest.mark.bot_settings(user_pending=40, cooldown_s=0.0, queue_capacity=100)
async def test_the_queue_view_fits_one_message_and_escapes_prompts(simcord_env) -> None:  # type: ignore[no-untyped-def]
    guild, channel, alice = world(simcord_env)
    mod = moderator(simcord_env, guild)
    await mod.slash(channel, "faceadmin pause")
    nasty = "```\nnew line @everyone \u202eesrever **bold** " + "x" * 200
    for i in range(30):
        await alice.slash(channel, "face", prompt=f"{i} {nasty}")
    for command in ("faceadmin queue", "faceadmin recent"):
        text = (await mod.slash(channel, command)).response.content
        assert len(text) <= 2000, command
        assert "```" not in text and "\u202e" not in text and "@everyone" not in text and "**bold**" not in text
        assert all(not line.startswith(("new line", "x")) for line in text.splitlines())  # one line per face
    queue = (await mod.slash(channel, "faceadmin queue")).response.content
    assert queue.startswith("Queue on this server (paused):") and queue.endswith(" more.")
    shown = len(queue.splitlines()) - 2  # minus the header and the "…and N more." line
    assert queue.splitlines()[-1] == f"…and {30 - shown} more."


async def test_a_locked_database_refuses_privately_and_starts_no_work(
    simcord_env, photo: PhotoTextToImage, store: Store, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    _, channel, alice = world(simcord_env)
    other = sqlite3.connect(tmp_path / "t2f.sqlite3", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock (a backup, a shell)
    try:
        result = await alice.slash(channel, "face", prompt="a smiling astronaut")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert result.ephemeral and result.response.content == BUSY and callbacks(simcord_env) == [4]
    assert photo.prompts == [] and simcord_env.bot.service.queued() == []
    assert simcord_env.bot.policy.reserved == 0
    again = await alice.slash(channel, "face", prompt="a smiling astronaut")  # no cooldown left behind
    assert again.response.embeds and photo.prompts == ["a smiling astronaut"]
