from __future__ import annotations

import time
from pathlib import Path

from t2f.store import GuildSettings, JobRecord, Store


def record(job_id: str, user_id: int = 1, status: str = "queued", created_at: float | None = None) -> JobRecord:
    return JobRecord(id=job_id, user_id=user_id, guild_id=10, channel_id=20, prompt="a face", negative_prompt="",
                     seed=5, steps=25, guidance=7.5, size=512, output="obj", status=status,
                     created_at=time.time() if created_at is None else created_at, interaction_token="tok",
                     application_id=99)  # fmt: skip


async def test_jobs_round_trip_and_finish(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "t2f.sqlite3")
    await store.add_job(record("a1"))
    await store.add_job(record("b2", user_id=2, created_at=time.time() - 2 * 86400))
    assert (await store.get_job("a1")) == record("a1", created_at=(await store.get_job("a1")).created_at)
    assert [j.id for j in await store.jobs_with_status("queued")] == ["b2", "a1"]
    await store.finish_job("a1", status="done", outcome="ok", timings={"prnet": 0.1}, message_id=77)
    done = await store.get_job("a1")
    assert done is not None and done.status == "done" and done.message_id == 77 and done.interaction_token is None
    assert await store.jobs_since(10, 2, time.time() - 86400) == 0
    assert await store.jobs_since(10, 1, time.time() - 86400) == 1
    assert (await store.get_job("missing")) is None
    await store.close()
    # WAL mode and the schema version persist in the file.
    reopened = await Store.open(tmp_path / "t2f.sqlite3")
    assert (await reopened._run("PRAGMA journal_mode"))[0][0] == "wal"
    assert (await reopened._run("PRAGMA user_version"))[0][0] == 1
    assert (await reopened.get_job("b2")) is not None
    await reopened.close()


async def test_guild_settings_and_bans(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db.sqlite3")
    assert await store.guild_settings(5) == GuildSettings(guild_id=5)
    custom = GuildSettings(guild_id=5, allowed_channels=(1, 2), cooldown_s=3.0, daily_quota=4, queue_cap=6,
                           blocked_terms=("clown",))  # fmt: skip
    await store.save_guild_settings(custom)
    assert await store.guild_settings(5) == custom
    await store.ban(5, 42, by=1)
    assert await store.is_banned(5, 42) and not await store.is_banned(6, 42)
    assert await store.unban(5, 42) and not await store.unban(5, 42)
    await store.set_meta("commands", "abc")
    assert await store.get_meta("commands") == "abc" and await store.get_meta("other") is None
    await store.close()
