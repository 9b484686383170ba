from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from t2f.faces import FaceRequest
from t2f.report import FaceReport, HeadPose
from t2f.serve.jobs import JobStatus
from t2f.serve.records import GuildSettings, JobRecord, RefusalRecord
from t2f.serve.store import Store
from t2f.serve.store.schema import SCHEMA, SCHEMA_VERSION


def record(
    job_id: str, user_id: int = 1, status: JobStatus = JobStatus.QUEUED, created_at: float | None = None
) -> JobRecord:
    return JobRecord(
        id=job_id,
        user_id=user_id,
        guild_id=10,
        channel_id=20,
        prompt="a face",
        negative_prompt="",
        seed=5,
        steps=25,
        guidance=7.5,
        size=512,
        output="obj",
        status=status,
        created_at=time.time() if created_at is None else created_at,
        interaction_token="tok",
        application_id=99,
    )


async def test_jobs_round_trip_and_finish(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "t2f.sqlite3")
    await store.add_job(record("a1"))
    await store.add_job(record("b2", user_id=2, created_at=time.time() - 2 * 86400))
    assert (await store.get_job("a1")) == record("a1", created_at=(await store.get_job("a1")).created_at)
    assert [j.id for j in await store.jobs_with_status(JobStatus.QUEUED)] == ["b2", "a1"]
    report = FaceReport(request=FaceRequest("a face", seed=5), model="tiny", timings_s={"prnet": 0.1})
    await store.finish_job("a1", status=JobStatus.DONE, outcome="ok", report=report, message_id=77)
    done = await store.get_job("a1")
    assert done is not None and done.status is JobStatus.DONE and done.message_id == 77
    assert done.interaction_token is None and done.face_report == report and done.timings == '{"prnet": 0.1}'
    assert await store.jobs_since(10, 2, time.time() - 86400) == 0
    assert await store.jobs_since(10, 1, time.time() - 86400) == 1
    assert (await store.get_job("missing")) is None
    await store.close()
    # WAL mode and the schema version persist in the file.
    reopened = await Store.open(tmp_path / "t2f.sqlite3")
    assert (await reopened._run("PRAGMA journal_mode"))[0][0] == "wal"
    assert (await reopened._run("PRAGMA user_version"))[0][0] == SCHEMA_VERSION == 6
    assert (await reopened.get_job("b2")) is not None
    await reopened.close()


async def test_guild_settings_and_bans(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db.sqlite3")
    assert await store.guild_settings(5) == GuildSettings(guild_id=5)
    custom = GuildSettings(
        guild_id=5,
        allowed_channels=(1, 2),
        cooldown_s=3.0,
        daily_quota=4,
        queue_cap=6,
        blocked_terms=("clown",),
        photo_input=True,
        allow_suggestive=False,
    )
    await store.save_guild_settings(custom)
    assert await store.guild_settings(5) == custom
    await store.ban(5, 42, by=1)
    assert await store.is_banned(5, 42) and not await store.is_banned(6, 42)
    assert await store.unban(5, 42) and not await store.unban(5, 42)
    await store.set_meta("commands", "abc")
    assert await store.get_meta("commands") == "abc" and await store.get_meta("other") is None
    await store.close()


async def test_a_version_1_database_gains_the_report_column(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    version_1 = SCHEMA.replace(",\n    report TEXT", "").replace(",\n    source TEXT NOT NULL DEFAULT 'text'", "")
    version_1 = version_1.replace(",\n    profile TEXT NOT NULL DEFAULT 'quality'", "")
    version_1 = version_1.replace(",\n    photo_input INTEGER,\n    allow_suggestive INTEGER", "")
    old.executescript(version_1)  # no report, source, profile, photo or suggestive switch
    old.execute(
        "INSERT INTO jobs (id, user_id, prompt, seed, steps, guidance, size, output, status, created_at)"
        " VALUES ('old1', 1, 'a face', 1, 25, 7.5, 512, 'obj', 'done', 1.0)"
    )
    old.commit()
    old.close()
    store = await Store.open(path)
    kept = await store.get_job("old1")
    assert kept is not None and kept.status is JobStatus.DONE and kept.report is None and kept.face_report is None
    pose = FaceReport(request=FaceRequest("x"))
    await store.finish_job("old1", status=JobStatus.DONE, outcome="ok", report=pose)
    assert (await store.get_job("old1")).face_report == pose  # type: ignore[union-attr]
    assert kept.source == "text"  # every job before photos was painted from words
    assert kept.profile == "quality"  # and every job before the fast profile in the full loop
    assert (await store.guild_settings(9)).photo_input is None
    await store.save_guild_settings(GuildSettings(guild_id=9, photo_input=False))
    assert (await store.guild_settings(9)).photo_input is False
    assert (await store.guild_settings(9)).allow_suggestive is None  # version 4: suggestive words, by default on
    await store.close()


async def test_a_version_3_database_gains_the_suggestive_switch_and_the_refusals(tmp_path: Path) -> None:
    path = tmp_path / "v3.sqlite3"
    old = sqlite3.connect(path)
    version_3 = SCHEMA.replace(",\n    allow_suggestive INTEGER", "")
    old.executescript(version_3[: version_3.index("CREATE TABLE IF NOT EXISTS refusals")])
    old.execute("INSERT INTO guild_settings (guild_id, photo_input) VALUES (7, 0)")
    old.execute("PRAGMA user_version=3")
    old.commit()
    old.close()
    store = await Store.open(path)
    assert await store.guild_settings(7) == GuildSettings(guild_id=7, photo_input=False, allow_suggestive=None)
    await store.save_guild_settings(GuildSettings(guild_id=7, allow_suggestive=False))
    assert (await store.guild_settings(7)).allow_suggestive is False
    await store.close()
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
    check.close()


async def test_refused_prompts_are_audited_newest_first_per_server(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db.sqlite3")
    first = RefusalRecord(5, 50, 1, "sexual", "de", "prompt", 100.0)
    second = RefusalRecord(5, 50, 2, "minors", "en", "negative", 200.0)
    elsewhere = RefusalRecord(6, 60, 3, "hate", "", "prompt", 300.0)
    for refusal in (first, second, elsewhere):
        await store.add_refusal(refusal)
    assert await store.recent_refusals(5) == [second, first]
    assert await store.recent_refusals(5, limit=1) == [second]
    assert await store.recent_refusals(6) == [elsewhere]
    assert await store.recent_refusals(7) == []
    await store.close()


async def test_a_fast_job_keeps_its_profile_through_the_store_and_a_restart(tmp_path: Path) -> None:
    from dataclasses import replace

    from t2f.serve.jobs import JobRequest
    from t2f.serve.records import job_record, job_request

    store = await Store.open(tmp_path / "t2f.sqlite3")
    job = JobRequest("f1", 1, FaceRequest("a face", seed=3, steps=12, profile="fast"), guild_id=10)
    await store.add_job(job_record(job, created_at=time.time()))
    kept = await store.get_job("f1")
    assert kept is not None and kept.profile == "fast"
    assert job_request(kept).face == job.face  # a restart paints it again in the fast profile
    await store.add_job(replace(record("q1"), profile="quality"))
    assert [(j.id, j.profile) for j in await store.jobs_with_status(JobStatus.QUEUED)] == [
        ("f1", "fast"),
        ("q1", "quality"),
    ]
    await store.close()


def test_a_report_kept_before_profiles_reads_as_quality() -> None:
    data = FaceReport(request=FaceRequest("a face", seed=4, profile="fast")).to_json()
    assert data["profile"] == "fast"
    del data["profile"]  # a report written by an older t2f
    report = FaceReport.from_json(data)
    assert report.request == FaceRequest("a face", seed=4, profile="quality")


def test_a_report_survives_json() -> None:
    from t2f.report import FaceGeometry, WeightsProvenance

    geometry = FaceGeometry(
        vertices=3,
        triangles=1,
        pose=HeadPose(1.5, -2.0, 0.25),
        landmarks=((1.0, 2.0, 3.0),),
        faces_found=2,
        box_ltrb=(1.0, 2.0, 30.0, 40.0),
        crop_center_xy=(5.0, 6.0),
        crop_side=7.5,
    )
    report = FaceReport(
        request=FaceRequest("p", "n", 3, 4, 5.0, 64),
        model="m",
        model_revision="abc",
        dropped_prompt="tail",
        nsfw=False,
        timings_s={"prnet": 0.5},
        face=geometry,
        prnet=WeightsProvenance("w", "s1", "s2", official=False),
        upload_note="zipped",
    )
    data = report.to_json()
    assert data["model"] == {"id": "m", "revision": "abc"} and data["prompt_truncated"] is True
    assert data["face"]["pose_deg"] == {"yaw": 1.5, "pitch": -2.0, "roll": 0.25}
    assert data["prnet"]["note"].startswith("PRNet weights were not converted")
    assert FaceReport.from_json(data) == report
    photo = FaceReport(timings_s={"load": 1.0})
    assert photo.to_json() == {"timings_s": {"load": 1.0}} and FaceReport.from_json(photo.to_json()) == photo
