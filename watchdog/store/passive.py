"""The passive table: one row per passive check, its Record (watchdog.reports); statements
taking a connection, like tables.py's. Written by the command line (`ping`, `wrap`) and the
push endpoint beside a live runner, read by the runner every second (rows past a `seq`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from watchdog.reports import Record

_COLUMNS = ("first_seen, success_at, start_at, failure_at, exit_code, duration, message, "
            "seq")
_NEXT_SEQ = "(SELECT COALESCE(MAX(seq), 0) + 1 FROM passive)"


def _record(row: tuple) -> Record:
    first, success, start, failure, code, duration, message, seq = row
    return Record(first_seen=first, success_at=success, start_at=start, failure_at=failure,
                  exit_code=code, duration=duration, message=message or "", seq=seq)


def select(db: sqlite3.Connection, name: str) -> Record | None:
    row = db.execute(f"SELECT {_COLUMNS} FROM passive WHERE name = ?", (name,)).fetchone()
    return None if row is None else _record(row)


def changed(db: sqlite3.Connection, since: int) -> list[tuple[str, Record]]:
    """The rows written after `seq` `since` (0: all), oldest write first."""
    rows = db.execute(f"SELECT name, {_COLUMNS} FROM passive WHERE seq > ? ORDER BY seq",
                      (since,)).fetchall()
    return [(row[0], _record(row[1:])) for row in rows]


def write(db: sqlite3.Connection, name: str, record: Record) -> None:
    """Store the record under the next seq (inside the caller's write transaction, so two
    writers never take the same one)."""
    db.execute(
        f"INSERT INTO passive (name, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, {_NEXT_SEQ}) "
        "ON CONFLICT (name) DO UPDATE SET first_seen = excluded.first_seen, "
        "success_at = excluded.success_at, start_at = excluded.start_at, "
        "failure_at = excluded.failure_at, exit_code = excluded.exit_code, "
        "duration = excluded.duration, message = excluded.message, seq = excluded.seq",
        (name, record.first_seen, record.success_at, record.start_at, record.failure_at,
         record.exit_code, record.duration, record.message),
    )


def seen(db: sqlite3.Connection, names: Iterable[str], now: float) -> None:
    """Note `now` as first seen for the checks that have no row yet."""
    for name in names:
        db.execute(f"INSERT INTO passive (name, first_seen, seq) VALUES (?, ?, {_NEXT_SEQ}) "
                   "ON CONFLICT (name) DO NOTHING", (name, now))
