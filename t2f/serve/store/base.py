"""The connection under every query: one lock, a worker thread per query, retries while another process
holds the database, transactions, and writes retried in the background until they land."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, Self

from t2f.errors import T2FError
from t2f.serve.jobs import JobStatus
from t2f.serve.records import JobRecord
from t2f.serve.store.schema import SCHEMA, SCHEMA_VERSION, migrate

log = logging.getLogger("t2f.serve.store")
BUSY = "The bot's database is busy right now; please try again in a minute."
DISK_FULL = "The bot's disk is full, so it cannot take new faces right now; its operator has been told."
RETRY_LATER_S = (1.0, 60.0)  # a write that must land: first wait, longest wait between tries


class StoreUnavailable(T2FError):
    """The database could not be read or written (locked by another process for too long, a full disk, or gone)."""


def job_row(row: sqlite3.Row | None) -> JobRecord | None:
    if row is None:
        return None
    values = {f.name: row[f.name] for f in fields(JobRecord)}
    return JobRecord(**{**values, "status": JobStatus(values["status"])})


def optional_bool(value: int | None) -> bool | None:
    return None if value is None else bool(value)


class StoreBase:
    """The connection and how queries run on it (the row methods are in the subject mixins)."""

    def __init__(self, connection: sqlite3.Connection, *, retries: int = 3, retry_wait_s: float = 0.5) -> None:
        self._db = connection
        self._lock = threading.Lock()
        self.retries = retries
        self.retry_wait_s = retry_wait_s
        self.retry_later_s = RETRY_LATER_S
        self._later: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(
        cls, path: Path | str, *, busy_timeout_s: float = 1.0, retries: int = 3, retry_wait_s: float = 0.5
    ) -> Self:
        """Open (and create or migrate) the database at ``path``.

        ``busy_timeout_s`` is how long one attempt waits for another connection's write lock; a query
        is tried ``retries`` more times, ``retry_wait_s`` apart, before :class:`StoreUnavailable`.
        """

        def connect() -> sqlite3.Connection:
            if str(path) != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=busy_timeout_s)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA secure_delete=ON")  # a deleted row's bytes are overwritten, not left in free pages
            db.executescript(SCHEMA)
            migrate(db)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            return db

        return cls(await asyncio.to_thread(connect), retries=retries, retry_wait_s=retry_wait_s)

    async def close(self, *, settle_s: float = 10.0) -> None:
        """Close, after giving the writes still being retried ``settle_s`` to land (the rest are logged)."""
        if self._later:
            _, left = await asyncio.wait(set(self._later), timeout=settle_s)
            for task in left:
                task.cancel()
            if left:
                log.error("closing the database with %d writes that never landed", len(left))
        await asyncio.to_thread(self._db.close)

    def eventually(self, write: Callable[[], Awaitable[None]], what: str) -> asyncio.Task[None]:
        """Run ``write`` now and, while the database refuses it (locked, a full disk), again in the background,
        waiting longer each time, until it lands. For writes that must not be lost: how a job ended, so a
        restart neither repaints nor re-sends it.

        Parameters
        ----------
        write : makes the write (called again for each try, so it must be safe to repeat).
        what : what it is, for the log.
        """

        async def keep_trying() -> None:
            wait, longest = self.retry_later_s
            while True:
                try:
                    await write()
                except StoreUnavailable as exc:
                    log.warning("%s did not land (%s); trying again in %.0f s", what, exc.user_message, wait)
                    await asyncio.sleep(wait)
                    wait = min(2 * wait, longest)
                    continue
                return

        task = asyncio.get_running_loop().create_task(keep_trying(), name=f"t2f-store: {what}")
        self._later.add(task)
        task.add_done_callback(self._later.discard)
        return task

    @property
    def writes_waiting(self) -> int:
        """Writes still being retried (:meth:`eventually`)."""
        return len(self._later)

    async def _run(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = (), *, retries: int | None = None
    ) -> list[sqlite3.Row]:
        def run() -> list[sqlite3.Row]:
            with self._lock:
                return self._db.execute(sql, params).fetchall()

        retries = self.retries if retries is None else retries
        for attempt in range(retries + 1):
            try:
                return await asyncio.to_thread(run)
            except sqlite3.OperationalError as exc:
                disk_full(exc)
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or attempt == retries:
                    log.warning("database query failed (%s, attempt %d): %s", type(exc).__name__, attempt + 1, exc)
                    raise StoreUnavailable(BUSY) from exc
                await asyncio.sleep(self.retry_wait_s * (attempt + 1))
        raise AssertionError("unreachable")

    async def _transaction(
        self, steps: Sequence[tuple[str, Sequence[Any] | dict[str, Any]]]
    ) -> list[list[sqlite3.Row]]:
        """Run ``steps`` (statement, parameters) as one transaction: all of them, or none."""

        def run() -> list[list[sqlite3.Row]]:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    rows = [self._db.execute(sql, params).fetchall() for sql, params in steps]
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
                return rows

        try:
            return await asyncio.to_thread(run)
        except sqlite3.OperationalError as exc:
            disk_full(exc)
            log.warning("database transaction failed (%s): %s", type(exc).__name__, exc)
            raise StoreUnavailable(BUSY) from exc


def disk_full(exc: sqlite3.OperationalError) -> None:
    """Raise :class:`StoreUnavailable` saying the disk is full when SQLite says so (SQLITE_FULL): no retry helps
    until the operator frees space, and the member is told that rather than "try again"."""
    if "full" in str(exc):
        log.error("the database's disk is full: %s", exc)
        raise StoreUnavailable(DISK_FULL) from exc
