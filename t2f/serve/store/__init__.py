"""SQLite storage for jobs (which double as the audit log), refused prompts, guild settings, bans, and what
was done to members' data (the ``audit`` table: who had whose faces forgotten, never a prompt).

The only package with SQL. The database runs in WAL mode; every query runs on a worker thread
(``asyncio.to_thread``) behind one lock, so the event loop never waits on disk. Rows come back as
dataclasses. Another process holding the write lock (a backup, an admin's sqlite3 shell) makes a
query wait ``busy_timeout_s`` and retry a few times; after that it raises :class:`StoreUnavailable`,
whose message asks the member to try again (or says the disk is full, when it is). A write that must
land whatever happens (how a job ended) goes through :meth:`Store.eventually`, which keeps trying in the
background until it does. Deleted rows are overwritten (``secure_delete``) and, after a member's data is
forgotten, the write-ahead log is truncated, so a forgotten prompt is nowhere in the files.

By subject: ``schema`` (the tables and their migrations), ``base`` (the connection, retries, transactions),
``jobs``, ``servers`` (settings, bans, meta) and ``privacy`` (refused prompts, forgetting, retention, a
server the bot left).
"""

from t2f.serve.store.base import BUSY, DISK_FULL, StoreUnavailable
from t2f.serve.store.jobs import JobRows
from t2f.serve.store.privacy import PrivacyRows
from t2f.serve.store.schema import SCHEMA_VERSION
from t2f.serve.store.servers import ServerRows

__all__ = ["BUSY", "DISK_FULL", "SCHEMA_VERSION", "Store", "StoreUnavailable"]


class Store(JobRows, ServerRows, PrivacyRows):
    """Async facade over one SQLite connection. Open with :meth:`open`, close with :meth:`close`."""
