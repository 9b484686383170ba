"""Admission rules on their own (the Discord tests drive them through /face)."""

from __future__ import annotations

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
