"""Forgetting members' data without Discord: the store's rows and audit, files, pages and kept photos, the
retention, and a server's data after the bot left it (t2f/serve/forget.py). Time is a clock the test moves."""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from pathlib import Path

from test_service import FakeBackend, route
from test_store import record

from t2f.files.download import save_upload
from t2f.files.outputs import IMAGE_FILE
from t2f.serve.deliveries import SavedResults
from t2f.serve.forget import GUILD_GRACE_S, Forgetting
from t2f.serve.jobs import JobResult, JobStatus
from t2f.serve.policy import utc_midnight
from t2f.serve.records import GuildSettings
from t2f.serve.service import JobService
from t2f.serve.store import Store
from t2f.web.links import LinkSigner
from t2f.web.pages import FacePages

DAY = 86400.0
SECRET = "a secret violet wizard"  # a prompt that must be nowhere once forgotten
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def job(job_id: str, *, user: int, guild: int, created_at: float, status: JobStatus = JobStatus.DONE):  # type: ignore[no-untyped-def]
    return dataclasses.replace(
        record(job_id, user_id=user, status=status, created_at=created_at), guild_id=guild, prompt=SECRET
    )


def database_bytes(path: Path) -> bytes:
    """Everything SQLite has on disk for the database: the file and its write-ahead log."""
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())


async def world(tmp_path: Path, clock: Clock) -> tuple[Store, FacePages, Forgetting]:
    store = await Store.open(tmp_path / "t2f.sqlite3")
    pages = FacePages(tmp_path / "outputs", LinkSigner(b"k" * 32), keep_s=7 * DAY, clock=clock)
    forgetting = Forgetting(
        store=store,
        service=JobService(route(FakeBackend())),
        pages=pages,
        uploads=tmp_path / "outputs" / "uploads",
        retention_s=7 * DAY,
        saved=SavedResults(tmp_path / "outputs" / "deliveries"),
        clock=clock,
    )
    return store, pages, forgetting


async def keep_face(store: Store, pages: FacePages, forgetting: Forgetting, row) -> None:  # type: ignore[no-untyped-def]
    await store.add_job(row)
    pages.save(row.id, {IMAGE_FILE: b"png"}, None)
    save_upload(forgetting.uploads, row.id, PNG)
    assert forgetting.saved is not None  # a result kept for a re-send (a restart between painting and posting)
    forgetting.saved.save(JobResult(row.id, JobStatus.DONE, files={IMAGE_FILE: b"png"}, user_message=SECRET))


async def test_a_member_is_forgotten_everywhere_and_the_audit_keeps_no_prompt(tmp_path: Path) -> None:
    clock = Clock(time.time())
    store, pages, forgetting = await world(tmp_path, clock)
    yesterday = utc_midnight(clock.now) - 3600
    mine = [
        job("a00000000001", user=1, guild=10, created_at=clock.now),
        job("a00000000002", user=1, guild=10, created_at=yesterday),
        job("a00000000003", user=1, guild=11, created_at=clock.now),
    ]
    theirs = job("b00000000001", user=2, guild=10, created_at=clock.now)
    for row in [*mine, theirs]:
        await keep_face(store, pages, forgetting, row)
    assert await store.jobs_since(10, 1, utc_midnight(clock.now)) == 1

    forgotten = await forgetting.forget_member(1, guild_id=None, actor_id=1)

    assert sorted(j.id for j in forgotten.jobs) == [r.id for r in mine] and forgotten.uploads == 3
    assert forgotten.stopped == 0  # none was under way
    for row in mine:
        assert await store.get_job(row.id) is None and pages.report(row.id) is None
        assert not list(forgetting.uploads.glob(f"{row.id}.*"))
    assert await store.get_job(theirs.id) is not None and pages.report(theirs.id) is not None  # another member's
    assert list(forgetting.uploads.glob(f"{theirs.id}.*"))
    assert forgetting.saved is not None and forgetting.saved.job_ids() == [theirs.id]
    audit = await store._run("SELECT * FROM audit ORDER BY guild_id")
    assert [tuple(row) for row in audit] == [
        (10, 1, 1, "forget", 2, 1, clock.now),  # two faces there, one of them today's
        (11, 1, 1, "forget", 1, 1, clock.now),
    ]
    # Today's face still counts: forgetting never gives a member more faces today.
    assert await store.jobs_since(10, 1, utc_midnight(clock.now)) == 1
    # On disk, while the bot runs: the other member's row alone holds the words (deleted rows are overwritten,
    # and the write-ahead log, which still had the forgotten rows' inserts, was emptied).
    assert database_bytes(tmp_path / "t2f.sqlite3").count(SECRET.encode()) == 1
    await store.close()


async def test_a_moderator_forgets_a_member_on_their_server_only(tmp_path: Path) -> None:
    clock = Clock(time.time())
    store, pages, forgetting = await world(tmp_path, clock)
    here, elsewhere = (
        job("c00000000001", user=5, guild=10, created_at=clock.now),
        job("c00000000002", user=5, guild=11, created_at=clock.now),
    )
    for row in (here, elsewhere):
        await keep_face(store, pages, forgetting, row)
    forgotten = await forgetting.forget_member(5, guild_id=10, actor_id=99)
    assert [j.id for j in forgotten.jobs] == [here.id]
    assert await store.get_job(elsewhere.id) is not None and pages.report(elsewhere.id) is not None
    assert [tuple(r) for r in await store._run("SELECT guild_id, actor_id, subject_id, faces FROM audit")] == [
        (10, 99, 5, 1)
    ]
    nothing = await forgetting.forget_member(6, guild_id=10, actor_id=99)  # a member with no faces: no entry
    assert nothing.jobs == [] and len(await store._run("SELECT * FROM audit")) == 1
    await store.close()


async def test_records_past_the_retention_are_pruned_with_their_kept_photos(tmp_path: Path) -> None:
    clock = Clock(time.time())
    store, pages, forgetting = await world(tmp_path, clock)
    old = job("d00000000001", user=1, guild=10, created_at=clock.now - 8 * DAY)
    old_waiting = job("d00000000002", user=1, guild=10, created_at=clock.now - 8 * DAY, status=JobStatus.QUEUED)
    young = job("d00000000003", user=1, guild=10, created_at=clock.now - 6 * DAY)
    for row in (old, old_waiting, young):
        await keep_face(store, pages, forgetting, row)
    await store._run(
        "INSERT INTO audit VALUES (10, 1, 1, 'forget', 1, 0, ?), (10, 1, 2, 'forget', 1, 0, ?)",
        (clock.now - 8 * DAY, clock.now),
    )
    assert await forgetting.prune() == 1
    assert await store.get_job(old.id) is None and not list(forgetting.uploads.glob(f"{old.id}.*"))
    assert await store.get_job(old_waiting.id) is not None  # unfinished: the next start resumes it
    assert await store.get_job(young.id) is not None and list(forgetting.uploads.glob(f"{young.id}.*"))
    assert [row["subject_id"] for row in await store._run("SELECT subject_id FROM audit")] == [2]
    clock.now += 2 * DAY
    assert await forgetting.prune() == 1 and await store.get_job(young.id) is None
    assert await forgetting.prune() == 0
    await store.close()


async def test_a_server_that_removed_the_bot_is_forgotten_after_its_grace_period(tmp_path: Path) -> None:
    clock = Clock(time.time())
    store, pages, forgetting = await world(tmp_path, clock)
    gone, other = (
        job("e00000000001", user=1, guild=10, created_at=clock.now),
        job("e00000000002", user=1, guild=11, created_at=clock.now),
    )
    for row in (gone, other):
        await keep_face(store, pages, forgetting, row)
    for guild in (10, 11):
        await store.save_guild_settings(GuildSettings(guild_id=guild, cooldown_s=5.0, blocked_terms=("clown",)))
        await store.ban(guild, 7, by=1)

    def absent(guild_id: int) -> bool:
        return False

    await forgetting.guild_left(10)
    assert await forgetting.guild_back(10) is True  # re-invited within the grace: nothing is lost
    assert await forgetting.guild_back(10) is False
    await forgetting.guild_left(10)
    clock.now += GUILD_GRACE_S - 60
    assert await forgetting.remove_left_guilds(present=absent) == []
    await store.close()

    # A restart: the pending removal is in the database, not in memory.
    store, pages, forgetting = await world(tmp_path, clock)
    clock.now += 120
    assert await forgetting.remove_left_guilds(present=absent) == [10]
    assert await store.get_job(gone.id) is None and pages.report(gone.id) is None
    assert not list(forgetting.uploads.glob(f"{gone.id}.*"))
    assert await store.guild_settings(10) == GuildSettings(guild_id=10) and not await store.is_banned(10, 7)
    assert (await store.guild_settings(11)).cooldown_s == 5.0 and await store.is_banned(11, 7)
    assert await store.get_job(other.id) is not None
    assert await forgetting.remove_left_guilds(present=absent) == []  # done once

    # Re-invited while the bot was offline (no join event): the removal is called off, nothing deleted.
    await forgetting.guild_left(11)
    clock.now += GUILD_GRACE_S + 1
    assert await forgetting.remove_left_guilds(present=lambda guild_id: guild_id == 11) == []
    assert await store.get_job(other.id) is not None and await store.due_guild_removals(clock.now) == []
    await store.close()


async def test_a_server_that_removed_the_bot_while_it_was_offline_is_found_by_the_sweep(tmp_path: Path) -> None:
    clock = Clock(time.time())
    store, pages, forgetting = await world(tmp_path, clock)
    for row in (
        job("f00000000001", user=1, guild=12, created_at=clock.now),
        job("f00000000002", user=1, guild=13, created_at=clock.now),
    ):
        await keep_face(store, pages, forgetting, row)
    await store.save_guild_settings(GuildSettings(guild_id=14, cooldown_s=9.0))  # settings alone count too
    await store.ban(15, 7, by=1)
    assert await store.guilds_with_data() == [12, 13, 14, 15]

    def present(guild_id: int) -> bool:  # the bot is still in 13; it was removed from the others while offline
        return guild_id == 13

    await forgetting.sweep(present=present)
    assert await store.due_guild_removals(clock.now + GUILD_GRACE_S) == [12, 14, 15]
    clock.now += GUILD_GRACE_S - 3600
    await forgetting.sweep(present=present)  # an hour before the end: the hourly sweep does not move the date
    assert await store.get_job("f00000000001") is not None
    clock.now += 3601
    await forgetting.sweep(present=present)
    assert await store.get_job("f00000000001") is None and pages.report("f00000000001") is None
    assert await store.guild_settings(14) == GuildSettings(guild_id=14) and not await store.is_banned(15, 7)
    assert await store.get_job("f00000000002") is not None and await store.guilds_with_data() == [13]
    assert await store.due_guild_removals(clock.now + 2 * GUILD_GRACE_S) == []
    await store.close()


async def test_an_old_database_gains_the_audit_and_removals(tmp_path: Path) -> None:
    from t2f.serve.store.schema import SCHEMA, SCHEMA_VERSION

    path = tmp_path / "v3.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(SCHEMA.split("CREATE TABLE IF NOT EXISTS audit")[0])  # version 3: no audit, no removals
    old.execute("PRAGMA user_version=3")
    old.close()
    store = await Store.open(path)
    assert (await store._run("PRAGMA user_version"))[0][0] == SCHEMA_VERSION
    await store.schedule_guild_removal(3, 10.0)
    assert await store.due_guild_removals(11.0) == [3]
    await store.close()
