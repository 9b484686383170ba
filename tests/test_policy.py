"""Admission rules on their own (the Discord tests drive them through /face)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from t2f.bounds import COOLDOWN_S
from t2f.faces import FaceRequest
from t2f.serve.moderation import PromptFilter
from t2f.serve.policy import Limits, Policy, Refused
from t2f.serve.route import Route
from t2f.serve.service import JobService
from t2f.serve.store import Store

FACE = FaceRequest("a face")


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class NoBackend:
    def paint(self, jobs, watch):  # type: ignore[no-untyped-def]
        raise AssertionError("admission never runs GPU work")

    def write(self, job):  # type: ignore[no-untyped-def]
        raise AssertionError("admission never writes files")

    def route(self) -> Route:
        return Route(paint=self, faces=None, files=self)


async def test_cooldown_refuses_then_admits_and_forgets_old_members(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "t2f.sqlite3")
    clock = ManualClock()
    policy = Policy(
        store=store,
        service=JobService(NoBackend().route(), max_batch=1),
        prompt_filter=PromptFilter.from_file(),
        limits=Limits(cooldown_s=20.0),
        clock=clock,
    )

    async def admit(guild_id: int, user_id: int) -> None:
        admission = await policy.admit(guild_id=guild_id, channel_id=2, user_id=user_id, request=FACE)
        stamped.append(admission)

    stamped: list[object] = []
    await admit(1, 7)
    clock.now += 5
    with pytest.raises(Refused) as caught:
        await admit(1, 7)
    assert caught.value.user_message == "Slow down: you can ask for another face in 15 s."
    await admit(3, 7)  # another server: its own cooldown
    for user in range(100, 600):  # members who ask once and never again (each reserves a queue place)
        await admit(1, user)
        policy.release(stamped.pop())  # giving the place back also forgets the stamp: no trace
    assert policy.remembered_members == 2 and policy.reserved == 2
    for user in range(100, 148):  # reserved places count as waiting: 50 fill the queue
        await admit(1, user)
    with pytest.raises(Refused, match=r"^The queue is full \(50 faces waiting\)"):
        await admit(1, 999)
    assert policy.remembered_members == 50 and policy.reserved == 50
    while len(stamped) > 2:
        policy.release(stamped.pop())
    clock.now += 15
    with pytest.raises(Refused, match=r"^You already have 2 faces on the way"):  # both of 7's are still reserved
        await admit(1, 7)
    policy.release(stamped.pop())
    clock.now += COOLDOWN_S.high
    await admit(1, 8)
    assert policy.remembered_members == 1  # only the newest; the rest can no longer be in any cooldown
    await store.close()


async def test_a_refused_prompt_is_audited_and_suggestive_words_follow_the_server(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from t2f.serve.moderation import Category, PromptRejected
    from t2f.serve.records import GuildSettings, RefusalRecord

    caplog.set_level(logging.INFO, logger="t2f.serve.policy")
    store = await Store.open(tmp_path / "t2f.sqlite3")
    policy = Policy(
        store=store,
        service=JobService(NoBackend().route(), max_batch=1),
        prompt_filter=PromptFilter.from_file(),
        limits=Limits(cooldown_s=0.0),
        clock=ManualClock(),
    )

    async def admit(prompt: str, negative: str = "", guild_id: int = 1) -> None:
        admission = await policy.admit(
            guild_id=guild_id, channel_id=2, user_id=7, request=FaceRequest(prompt, negative_prompt=negative)
        )
        policy.release(admission)

    await admit("a woman in a bikini")  # suggestive alone: allowed by default
    await store.save_guild_settings(GuildSettings(guild_id=1, allow_suggestive=False))
    with pytest.raises(PromptRejected) as suggestive:
        await admit("a woman in a bikini")
    assert suggestive.value.verdict.category is Category.SUGGESTIVE
    await admit("a woman in a bikini", guild_id=3)  # another server keeps the default
    with pytest.raises(PromptRejected) as child:
        await admit("ein kleines Mädchen", negative="Kleidung")
    assert (
        child.value.user_message
        == "Your negative prompt contains words this server does not allow. Please rephrase it."
    )
    audited = await store.recent_refusals(1)  # the prompt itself is not kept
    assert [(r.guild_id, r.channel_id, r.user_id, r.category, r.language, r.field) for r in audited] == [
        (1, 2, 7, "minors", "de", "negative"),
        (1, 2, 7, "suggestive", "en", "prompt"),
    ]
    assert all(isinstance(r, RefusalRecord) and r.created_at > 0 for r in audited)
    said = [record.getMessage() for record in caplog.records if record.name == "t2f.serve.policy"]
    assert said[-1] == (
        "prompt refused: minors (de) in the negative, matching 'kleines mädchen + kleidung'; server 1, member 7"
    )
    await store.close()
