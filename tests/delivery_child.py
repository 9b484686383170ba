"""A bot process for tests/test_delivery_kill.py: one face made, kept, sent and recorded, or a restart.

    python tests/delivery_child.py WORKDIR run [--kill-at before-send|after-send] [--db FILE] [--fill-disk] [--hold]
    python tests/delivery_child.py WORKDIR restart

It runs t2f's own code for a face's last steps: the job service (a painter stand-in that logs each
painting to ``painted.jsonl``), the cog's follower (``cogs.face.follow.Followers``: keep the result, mark
the row delivering, send, record until it lands) and, on ``restart``, ``cogs.face.resume.resume_jobs``,
with the real SQLite store and the real kept results. Only Discord is a stand-in: ``discord.jsonl``, a file
outside this process, so what was sent survives a ``kill -9``, as a posted message survives the bot. The
process kills itself with SIGKILL at ``--kill-at``; ``--fill-disk`` fills the database's filesystem right after
the job is queued; ``--hold`` keeps the message back until the test says so (it locks the database first).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from cogs.face.follow import Followers  # noqa: E402
from cogs.face.resume import resume_jobs  # noqa: E402
from t2f.faces import FaceRequest  # noqa: E402
from t2f.serve.deliveries import SavedResults  # noqa: E402
from t2f.serve.jobs import JobRequest, JobResult, JobStatus  # noqa: E402
from t2f.serve.records import job_record  # noqa: E402
from t2f.serve.route import Route  # noqa: E402
from t2f.serve.service import JobService  # noqa: E402
from t2f.serve.store import Store  # noqa: E402

JOB_ID = "0123456789ab"


def append(path: Path, record: dict[str, Any]) -> None:
    """One line, on disk before this returns (a kill -9 right after loses nothing)."""
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")
        out.flush()
        os.fsync(out.fileno())


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


class LoggingPainter:
    """Paints every job at once (a tiny face's files) and logs it: a second painting of a job is visible."""

    def __init__(self, log: Path) -> None:
        self.log = log

    def paint(self, jobs: Any, watch: Any) -> list[JobResult]:
        for job in jobs:
            append(self.log, {"job": job.job_id})
        files = {"face.obj": b"# t2f face mesh\nv 0 0 0\n", "image.png": b"\x89PNG stand-in"}
        return [JobResult(job.job_id, JobStatus.DONE, files=files) for job in jobs]

    def write(self, job: Any) -> JobResult:
        raise AssertionError("the stand-in painter finishes its jobs itself")


def discord_stand_in(work: Path, kill_at: str | None, hold: bool) -> tuple[Any, Any]:
    """``deliver`` (a message appended to discord.jsonl) and ``posted`` (the message naming the job, if any).
    With ``hold`` a message waits until the file ``go`` appears (the test has locked the database meanwhile)."""
    sent = work / "discord.jsonl"

    async def deliver(job: JobRequest, result: JobResult, edit: Any, started_at: float) -> int:
        while hold and not (work / "go").exists():
            await asyncio.sleep(0.05)
        if kill_at == "before-send":
            os.kill(os.getpid(), signal.SIGKILL)
        message_id = 1000 + len(lines(sent))
        append(sent, {"job": job.job_id, "message": message_id, "status": str(result.status)})
        if kill_at == "after-send":
            os.kill(os.getpid(), signal.SIGKILL)
        return message_id

    async def posted(bot: Any, row: Any, age: float) -> int | None:
        return next((m["message"] for m in lines(sent) if m["job"] == row.id), None)

    return deliver, posted


def fill(folder: Path) -> None:
    """Write into ``folder`` until its filesystem has no byte left."""
    with (folder / "filler").open("wb") as out:
        try:
            while True:
                out.write(b"\0" * (1 << 16))
                out.flush()
        except OSError:
            pass


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("work", type=Path)
    parser.add_argument("mode", choices=("run", "restart"))
    parser.add_argument("--kill-at", choices=("before-send", "after-send"))
    parser.add_argument("--db", type=Path, help="the database file (default: WORKDIR/t2f.sqlite3)")
    parser.add_argument("--fill-disk", action="store_true", help="fill the database's filesystem after queueing")
    parser.add_argument("--hold", action="store_true", help="send only once WORKDIR/go exists")
    args = parser.parse_args()
    work: Path = args.work
    db = args.db or work / "t2f.sqlite3"
    store = await Store.open(db, busy_timeout_s=0.2, retries=0)
    store.retry_later_s = (0.05, 0.2)
    painter = LoggingPainter(work / "painted.jsonl")
    service = JobService(Route(paint=painter, faces=None, files=painter), max_batch=1)
    bot = types.SimpleNamespace(
        store=store,
        saved=SavedResults(db.parent / "deliveries"),
        service=service,
        settings=types.SimpleNamespace(progress_interval_s=60.0),
        get_guild=lambda guild_id: None,
    )
    followers = Followers(bot)  # type: ignore[arg-type]
    deliver, posted = discord_stand_in(work, args.kill_at, args.hold)
    if args.mode == "run":
        job = JobRequest(JOB_ID, 7, FaceRequest("a face", seed=1), guild_id=1, channel_id=2)
        await store.add_job(job_record(job, created_at=time.time()))
        service.pause()  # queued, not yet started: the disk can fill before its first status write
        handle = service.submit(job)
        followers.follow(handle, edit=None, started_at=time.monotonic(), deliver=deliver)
        if args.fill_disk:
            fill(db.parent)
        service.resume()
        await handle.result
    else:
        await resume_jobs(bot, followers, deliver, posted=posted)  # type: ignore[arg-type]
        while service.queued() or service.running() or service.after_gpu.handles():  # a job queued again
            await asyncio.sleep(0.05)
    await followers.wait(60)
    await store.close(settle_s=60)  # the recording retried until it landed
    await service.shutdown(timeout_s=5)
    print("finished", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
