"""The database's tables, and how an older database is brought up to them."""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 6
SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL,
    guild_id INTEGER,
    channel_id INTEGER,
    prompt TEXT NOT NULL,
    negative_prompt TEXT NOT NULL DEFAULT '',
    seed INTEGER NOT NULL,
    steps INTEGER NOT NULL,
    guidance REAL NOT NULL,
    size INTEGER NOT NULL,
    output TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    finished_at REAL,
    outcome TEXT,
    timings TEXT,
    message_id INTEGER,
    interaction_token TEXT,
    application_id INTEGER,
    report TEXT,
    source TEXT NOT NULL DEFAULT 'text',
    profile TEXT NOT NULL DEFAULT 'quality'
);
CREATE INDEX IF NOT EXISTS jobs_by_user ON jobs (guild_id, user_id, created_at);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status);
CREATE TABLE IF NOT EXISTS guild_settings (
    guild_id INTEGER PRIMARY KEY,
    allowed_channels TEXT NOT NULL DEFAULT '[]',
    cooldown_s REAL,
    daily_quota INTEGER,
    queue_cap INTEGER,
    blocked_terms TEXT NOT NULL DEFAULT '[]',
    photo_input INTEGER,
    allow_suggestive INTEGER
);
CREATE TABLE IF NOT EXISTS refusals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id INTEGER,
    channel_id INTEGER,
    user_id INTEGER NOT NULL,
    category TEXT NOT NULL,
    language TEXT NOT NULL DEFAULT '',
    field TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS refusals_by_guild ON refusals (guild_id, created_at);
CREATE TABLE IF NOT EXISTS bans (
    guild_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    banned_by INTEGER NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
    guild_id INTEGER,
    actor_id INTEGER NOT NULL,
    subject_id INTEGER NOT NULL,
    action TEXT NOT NULL,
    faces INTEGER NOT NULL,
    counted_today INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_subject ON audit (guild_id, subject_id, created_at);
CREATE TABLE IF NOT EXISTS guild_removals (guild_id INTEGER PRIMARY KEY, due_at REAL NOT NULL);
"""


def migrate(db: sqlite3.Connection) -> None:
    """Bring an older database up to :data:`SCHEMA_VERSION` (version 1 had no report column, version 2 no
    job source nor a server's photo switch, version 3 no suggestive switch; version 4 came in two kinds, one
    without the refusals table and one without the audit and pending server removals: :data:`SCHEMA`
    creates whichever tables are missing; version 5 had no painting profile: its jobs were all ``quality``)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    if "report" not in columns:
        db.execute("ALTER TABLE jobs ADD COLUMN report TEXT")
    if "source" not in columns:
        db.execute("ALTER TABLE jobs ADD COLUMN source TEXT NOT NULL DEFAULT 'text'")
    if "profile" not in columns:
        db.execute("ALTER TABLE jobs ADD COLUMN profile TEXT NOT NULL DEFAULT 'quality'")
    guild_columns = {row[1] for row in db.execute("PRAGMA table_info(guild_settings)")}
    if "photo_input" not in guild_columns:
        db.execute("ALTER TABLE guild_settings ADD COLUMN photo_input INTEGER")
    if "allow_suggestive" not in guild_columns:
        db.execute("ALTER TABLE guild_settings ADD COLUMN allow_suggestive INTEGER")
