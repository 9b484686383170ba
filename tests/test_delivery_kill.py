"""Each face reaches its member once: a real bot process killed (SIGKILL) in each window of a delivery, a
database held locked past its retries, and a full filesystem, then a restart (tests/delivery_child.py).

"Discord" is a file beside the process (what was sent survives the kill, as a posted message survives the
bot); the store, the kept results, the follower and the restart are t2f's own code.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CHILD = Path(__file__).resolve().parent / "delivery_child.py"
JOB_ID = "0123456789ab"
WAIT_S = 120  # a bound on a hung child, not a timing: each run takes about 2 s


def child(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHILD), str(work), *args], capture_output=True, text=True, timeout=WAIT_S
    )


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def row(db: Path) -> tuple[str, int | None]:
    with sqlite3.connect(db) as connection:
        query = "SELECT status, message_id FROM jobs WHERE id = ?"
        status, message_id = connection.execute(query, (JOB_ID,)).fetchone()
    return status, message_id


def assert_delivered_once(work: Path, db: Path, *, paintings: int = 1) -> None:
    sent = lines(work / "discord.jsonl")
    assert [m["job"] for m in sent] == [JOB_ID], sent  # one message, whatever the kill
    assert len(lines(work / "painted.jsonl")) == paintings
    assert row(db) == ("done", sent[0]["message"])  # recorded, with the message that carries it
    assert not any((db.parent / "deliveries").glob("*/result.json"))  # the kept result is let go


@pytest.mark.parametrize("window", ["before-send", "after-send"])
def test_a_kill_in_a_delivery_window_gives_one_delivery_and_no_repaint(tmp_path: Path, window: str) -> None:
    killed = child(tmp_path, "run", "--kill-at", window)
    assert killed.returncode == -9, killed.stderr  # SIGKILL: nothing ran after the kill point
    sent = lines(tmp_path / "discord.jsonl")
    assert len(sent) == (0 if window == "before-send" else 1)
    assert row(tmp_path / "t2f.sqlite3")[0] == "delivering"  # what the restart finds
    restarted = child(tmp_path, "restart")
    assert restarted.returncode == 0, restarted.stderr
    assert_delivered_once(tmp_path, tmp_path / "t2f.sqlite3")


def test_a_kill_while_painting_paints_again_and_delivers_once(tmp_path: Path) -> None:
    """Nothing was kept or sent: the member saw nothing, so the job is painted again, and sent once."""
    killed = child(tmp_path, "run", "--kill-at", "before-send")
    assert killed.returncode == -9
    for kept in (tmp_path / "deliveries").glob("*"):  # as if the kill had come before the result was kept
        for path in sorted(kept.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        kept.rmdir()
    with sqlite3.connect(tmp_path / "t2f.sqlite3") as connection:
        connection.execute("UPDATE jobs SET status = 'running' WHERE id = ?", (JOB_ID,))
    assert child(tmp_path, "restart").returncode == 0
    assert_delivered_once(tmp_path, tmp_path / "t2f.sqlite3", paintings=2)


def test_a_database_locked_past_its_retries_then_a_kill_still_gives_one_delivery(tmp_path: Path) -> None:
    db = tmp_path / "t2f.sqlite3"
    process = subprocess.Popen(
        [sys.executable, str(CHILD), str(tmp_path), "run", "--hold"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + WAIT_S
        while not lines(tmp_path / "painted.jsonl"):  # painted, and its message held back
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        holder = sqlite3.connect(db, timeout=5)  # another process's write lock (a backup, an admin's shell)
        holder.execute("BEGIN EXCLUSIVE")
        (tmp_path / "go").touch()
        while not lines(tmp_path / "discord.jsonl"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)  # the record has met the lock and is being retried: it cannot land
        assert process.poll() is None  # still trying, not given up
        process.kill()  # SIGKILL while the record waits
        process.wait(WAIT_S)
        holder.rollback()
        holder.close()
    finally:
        if process.poll() is None:
            process.kill()
    stderr = process.stderr.read() if process.stderr else ""
    assert "did not land" in stderr and "database is busy" in stderr  # what the operator's log said meanwhile
    assert row(db) != ("done", 1000)  # the record of the sent message never reached the database
    assert child(tmp_path, "restart").returncode == 0
    assert_delivered_once(tmp_path, db)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs of its own (needs root and mount): a filesystem the test can fill for real."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode().strip() or 'mount failed'})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_then_a_kill_still_gives_one_delivery(tmp_path: Path, small_disk: Path) -> None:
    db = small_disk / "t2f.sqlite3"
    killed = child(tmp_path, "run", "--db", str(db), "--fill-disk", "--kill-at", "after-send")
    assert killed.returncode == -9, killed.stderr
    assert "disk is full" in killed.stderr  # said as such in the log, not as a busy database
    assert [m["job"] for m in lines(tmp_path / "discord.jsonl")] == [JOB_ID]
    (small_disk / "filler").unlink()  # the operator frees space, and starts the bot again
    restarted = child(tmp_path, "restart", "--db", str(db))
    assert restarted.returncode == 0, restarted.stderr
    assert_delivered_once(tmp_path, db)


def test_a_full_disk_is_told_to_the_member_as_such(small_disk: Path) -> None:
    import asyncio
    import dataclasses

    from delivery_child import fill
    from test_store import record

    from t2f.serve.store import DISK_FULL, Store, StoreUnavailable

    async def add_on_a_full_disk() -> str:
        store = await Store.open(small_disk / "t2f.sqlite3")
        fill(small_disk)
        try:
            long_prompt = "a face " * 40_000  # a row that needs new pages: the database must grow
            await store.add_job(dataclasses.replace(record("full"), prompt=long_prompt))
        except StoreUnavailable as refusal:
            return refusal.user_message
        finally:
            await store.close()
        return "written"

    assert asyncio.run(add_on_a_full_disk()) == DISK_FULL
    assert DISK_FULL == "The bot's disk is full, so it cannot take new faces right now; its operator has been told."
