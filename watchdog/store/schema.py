"""The tables, as the list of schema versions and the statements that bring a database to each.

A new database runs every step from 1; an older one runs the steps after its version. So a
schema change (e.g. issue 13's tables) is one new entry at the end of VERSIONS: its number
becomes SCHEMA_VERSION, and an old state file and a new one end up with the same tables.
Never edit a step that has shipped: state files in the field already ran it.

The statements are SQLite's dialect; the PostgreSQL side runs the same steps translated by
pgsql.ddl (INTEGER -> BIGINT, REAL -> DOUBLE PRECISION, INTEGER PRIMARY KEY -> identity), so
a new step here is the only edit for both.
"""

from __future__ import annotations

VERSIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE IF NOT EXISTS checks (
            name            TEXT PRIMARY KEY,
            fingerprint     TEXT NOT NULL,
            incident_key    TEXT NOT NULL,
            state           TEXT NOT NULL,
            last_result     TEXT,
            last_at         REAL,
            triggered_since REAL
        )""",
        """CREATE TABLE IF NOT EXISTS outbox (
            id           INTEGER PRIMARY KEY AUTOINCREMENT,
            lane_hash    INTEGER NOT NULL,
            action       TEXT NOT NULL,
            incident_key TEXT NOT NULL,
            event        TEXT NOT NULL,
            created_at   REAL NOT NULL,
            attempts     INTEGER NOT NULL DEFAULT 0,
            last_error   TEXT
        )""",
        """CREATE TABLE IF NOT EXISTS dead_letters (
            id         INTEGER PRIMARY KEY,
            event      TEXT NOT NULL,
            created_at REAL NOT NULL,
            failed_at  REAL NOT NULL,
            reason     TEXT NOT NULL,
            attempts   INTEGER NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE IF NOT EXISTS stats (
            name  TEXT PRIMARY KEY,
            value INTEGER NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS meta (
            name  TEXT PRIMARY KEY,
            value TEXT NOT NULL
        )""",
    ),
    2: ("ALTER TABLE checks ADD COLUMN failing_since REAL",),
    3: (
        # Silences (`pd-watchdog silence`): written by the command line beside a live runner,
        # read by it every second. Ended ones are kept a while for `silences --all`.
        """CREATE TABLE IF NOT EXISTS silences (
            id         TEXT PRIMARY KEY,
            patterns   TEXT NOT NULL,
            reason     TEXT NOT NULL,
            created_at REAL NOT NULL,
            until      REAL NOT NULL,
            created_by TEXT NOT NULL DEFAULT '',
            ended_at   REAL
        )""",
    ),
    4: (
        # Passive checks (`pd-watchdog ping`, `wrap`, the push endpoint): one row per check,
        # written beside a live runner, read by it every second (rows past its last seq).
        """CREATE TABLE IF NOT EXISTS passive (
            name       TEXT PRIMARY KEY,
            first_seen REAL NOT NULL,
            success_at REAL,
            start_at   REAL,
            failure_at REAL,
            exit_code  INTEGER,
            duration   REAL,
            message    TEXT,
            seq        INTEGER NOT NULL
        )""",
    ),
}

SCHEMA_VERSION = max(VERSIONS)


def steps_after(version: int) -> list[str]:
    """The statements that bring a database at `version` (0: empty) to SCHEMA_VERSION, in order."""
    return [
        statement
        for step in range(version + 1, SCHEMA_VERSION + 1)
        for statement in VERSIONS[step]
    ]
