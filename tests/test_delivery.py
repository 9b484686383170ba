"""Each face reaches its member once, through Discord (SimCord): a restart finds a face already posted (in its
message, or in the channel once the token has expired) and only records it; a kept result not yet posted is
sent, never painted again; a slow database is answered within Discord's 3 s.

The process-kill windows are in tests/test_delivery_kill.py; these check what the bot sees of Discord.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from discord_fixtures import PhotoTextToImage, button_ids, moderator, world

from cogs.face.command import SLOW_DATABASE
from t2f.report import FaceReport
from t2f.serve.jobs import JobResult, JobStatus
from t2f.serve.store import Store


def job_of(message) -> str:  # type: ignore[no-untyped-def]
    return message.embeds[0].footer.text.removeprefix("job ")


async def as_if_killed_before_the_record(store: Store, saved, job_id: str, result: JobResult) -> None:  # type: ignore[no-untyped-def]
    """The state a kill -9 between sending and recording leaves: the row delivering, the result kept."""
    saved.save(result)
    await store.set_status(job_id, JobStatus.DELIVERING)


async def test_a_face_posted_before_a_restart_is_recorded_not_painted_again(
    simcord_env, fresh_bot, store: Store, photo: PhotoTextToImage
) -> None:  # type: ignore[no-untyped-def]
    guild, channel, alice = world(simcord_env)
    mod = moderator(simcord_env, guild)
    await mod.slash(channel, "faceadmin pause")
    asked = await alice.slash(channel, "face", prompt="a smiling astronaut")
    queued = asked.response
    (cancel_id,) = button_ids(queued)
    job_id = cancel_id.removeprefix("t2f:cancel:")
    token = await store.get_job(job_id)  # its interaction token, which recording the delivery drops
    assert token is not None and token.interaction_token
    await mod.slash(channel, "faceadmin resume")
    queued = asked.response
    assert queued.embeds and job_of(queued) == job_id  # posted into its message
    result = JobResult(job_id, JobStatus.DONE, files={"face.obj": b"v 0 0 0\n"}, report=FaceReport())
    await as_if_killed_before_the_record(store, simcord_env.bot.saved, job_id, result)
    await store._run("UPDATE jobs SET interaction_token = ? WHERE id = ?", (token.interaction_token, job_id))
    await simcord_env.restart_bot(await fresh_bot())
    row = await store.get_job(job_id)
    assert row is not None and row.status == "done" and row.message_id == queued.id  # its message, by its token
    assert photo.prompts == ["a smiling astronaut"]  # painted once
    assert channel.last_message.id == queued.id  # nothing sent again
    assert simcord_env.bot.saved.job_ids() == []


async def test_a_face_posted_before_the_token_expired_is_found_in_the_channel(
    simcord_env, fresh_bot, store: Store, photo: PhotoTextToImage
) -> None:  # type: ignore[no-untyped-def]
    _, channel, alice = world(simcord_env)
    message = (await alice.slash(channel, "face", prompt="an old astronaut")).response
    job_id = job_of(message)
    result = JobResult(job_id, JobStatus.DONE, files={"face.obj": b"v 0 0 0\n"}, report=FaceReport())
    await as_if_killed_before_the_record(store, simcord_env.bot.saved, job_id, result)
    hour_ago = time.time() - 3600  # its interaction token is long gone: only the channel can say
    await store._run("UPDATE jobs SET created_at = ? WHERE id = ?", (hour_ago, job_id))
    await simcord_env.restart_bot(await fresh_bot())
    row = await store.get_job(job_id)
    assert row is not None and row.status == "done" and row.message_id == message.id
    assert photo.prompts == ["an old astronaut"] and channel.last_message.id == message.id


async def test_a_kept_result_not_yet_posted_is_sent_and_never_painted(
    simcord_env, fresh_bot, store: Store, photo: PhotoTextToImage
) -> None:  # type: ignore[no-untyped-def]
    _, channel, alice = world(simcord_env)
    simcord_env.bot.service.pause()
    queued = (await alice.slash(channel, "face", prompt="a patient astronaut")).response
    (cancel_id,) = button_ids(queued)
    job_id = cancel_id.removeprefix("t2f:cancel:")
    report = FaceReport(model="test-photo/astronaut")
    files = {"face.obj": b"# t2f face mesh\nv 0 0 0\n", "image.png": b"\x89PNG kept"}
    result = JobResult(job_id, JobStatus.DONE, files=files, report=report)
    await as_if_killed_before_the_record(store, simcord_env.bot.saved, job_id, result)
    await simcord_env.restart_bot(await fresh_bot())
    assert queued.embeds and job_of(queued) == job_id  # the original message now carries the face
    assert {a.filename for a in queued.attachments} == {"face.obj", "image.png"}
    assert button_ids(queued) == [f"t2f:reroll:{job_id}", f"t2f:info:{job_id}", f"t2f:delete:{job_id}"]
    assert photo.prompts == []  # sent from what was kept: never painted
    row = await store.get_job(job_id)
    assert row is not None and row.status == "done" and row.message_id == queued.id
    assert simcord_env.bot.saved.job_ids() == []


class Answers:
    """What an interaction's ``response`` was asked to send (a stand-in for discord.py's)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bool]] = []
        self.deferred = False

    async def send_message(self, content: str, *, ephemeral: bool = False, **extra: object) -> None:
        self.sent.append((content, ephemeral))

    async def defer(self, **options: object) -> None:
        self.deferred = True


async def test_a_slow_database_is_answered_in_time_and_nothing_is_made_later(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """Admission waits on the database (here a read that takes 1 s against a 0.2 s budget, scaled down from
    Discord's 3 s): the member is answered at the budget, and the job the admission queues afterwards is
    cancelled and recorded so, never painted or posted."""
    import types

    from test_service import FakeBackend, route

    from cogs.face import command
    from cogs.face.command import FaceCog
    from t2f.serve.moderation import PromptFilter
    from t2f.serve.policy import Limits, Policy
    from t2f.serve.requests import RequestDefaults
    from t2f.serve.service import JobService

    monkeypatch.setattr(command, "ANSWER_WITHIN_S", 0.2)
    store = await Store.open(tmp_path / "t2f.sqlite3")
    painter = FakeBackend()
    service = JobService(route(painter))
    service.pause()  # nothing may start before the abandoned job is cancelled: a paint would prove it ran
    policy = Policy(store=store, service=service, prompt_filter=PromptFilter.from_file(), limits=Limits(cooldown_s=0))
    settings_of = store.guild_settings

    async def slow(guild_id: int):  # type: ignore[no-untyped-def]
        await asyncio.sleep(1.0)  # a database held by another process
        return await settings_of(guild_id)

    monkeypatch.setattr(store, "guild_settings", slow)
    bot = types.SimpleNamespace(store=store, service=service, policy=policy, defaults=RequestDefaults(steps=25))
    cog = FaceCog(bot)  # type: ignore[arg-type]
    answers = Answers()
    interaction = types.SimpleNamespace(
        guild_id=1,
        channel_id=2,
        channel=None,  # a channel the bot has not cached (so no thread's parent)
        user=types.SimpleNamespace(id=7),
        filesize_limit=None,
        token="tok",
        application_id=3,
        response=answers,
    )
    await cog.start_job(interaction, prompt="a smiling astronaut")  # type: ignore[arg-type]
    assert answers.sent == [(SLOW_DATABASE, True)] and not answers.deferred  # answered, privately, in time
    waited = 0.0
    while not [r for r in await store.recent_jobs(1) if r.status == "cancelled"] and waited < 60:  # a hang's bound
        await asyncio.sleep(0.05)  # the admission finishes meanwhile, and its job is undone
        waited += 0.05
    rows = await store.recent_jobs(1)
    await store.close()
    assert [(r.status, r.outcome) for r in rows] == [("cancelled", "the interaction expired before the bot answered")]
    assert service.queued() == [] and painter.batches == []  # never painted, nothing left waiting
    service.resume()
    await service.shutdown(timeout_s=1)
