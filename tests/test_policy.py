"""Admission rules on their own (the Discord tests drive them through /face)."""

from __future__ import annotations

from pathlib import Path

import pytest

from t2f.bounds import COOLDOWN_S
from t2f.serve.moderation import PromptFilter
from t2f.serve.policy import Limits, Policy, Refused
from t2f.serve.service import JobService
from t2f.serve.store import Store


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class NoBackend:
    def run_batch(self, jobs, report, cancelled):  # type: ignore[no-untyped-def]
        raise AssertionError("admission never runs GPU work")


async def test_cooldown_refuses_then_admits_and_forgets_old_members(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "t2f.sqlite3")
    clock = ManualClock()
    policy = Policy(store=store, service=JobService(NoBackend(), max_batch=1), prompt_filter=PromptFilter.from_file(),
                    limits=Limits(cooldown_s=20.0), clock=clock)  # fmt: skip
    await policy.admit(guild_id=1, channel_id=2, user_id=7, prompt="a face")
    clock.now += 5
    with pytest.raises(Refused) as caught:
        await policy.admit(guild_id=1, channel_id=2, user_id=7, prompt="a face")
    assert caught.value.user_message == "Slow down: you can ask for another face in 15 s."
    await policy.admit(guild_id=3, channel_id=2, user_id=7, prompt="a face")  # another server: its own cooldown
    for user in range(100, 600):  # members who ask once and never again
        await policy.admit(guild_id=1, channel_id=2, user_id=user, prompt="a face")
    assert policy.remembered_members == 502
    clock.now += 15
    await policy.admit(guild_id=1, channel_id=2, user_id=7, prompt="a face")
    clock.now += COOLDOWN_S.high
    await policy.admit(guild_id=1, channel_id=2, user_id=8, prompt="a face")
    assert policy.remembered_members == 1  # only the newest; the rest can no longer be in any cooldown
    await store.close()
