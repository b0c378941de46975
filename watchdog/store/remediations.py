"""The remediations table: statements taking a connection, like silences.py's.

Plain SQL on purpose (no RETURNING, no upsert): a row is keyed by (check_name, ran_at), so
another backend runs the same statements."""

from __future__ import annotations

import sqlite3

from watchdog.store.records import RemediationRun

_COLUMNS = "check_name, ran_at, finished_at, exit_code, output"


def insert(db: sqlite3.Connection, check: str, ran_at: float) -> None:
    db.execute("INSERT INTO remediations (check_name, ran_at) VALUES (?, ?)", (check, ran_at))


def finish(db: sqlite3.Connection, run: RemediationRun) -> None:
    db.execute(
        "UPDATE remediations SET finished_at = ?, exit_code = ?, output = ? "
        "WHERE check_name = ? AND ran_at = ?",
        (run.finished_at, run.exit_code, run.output, run.check, run.ran_at),
    )


def select(db: sqlite3.Connection, since: float) -> list[RemediationRun]:
    """Every run that started at `since` or later, oldest first."""
    rows = db.execute(f"SELECT {_COLUMNS} FROM remediations WHERE ran_at >= ? "
                      "ORDER BY ran_at, check_name", (since,)).fetchall()
    return [RemediationRun(*row) for row in rows]


def prune(db: sqlite3.Connection, before: float) -> None:
    """Drop runs older than any window still counts."""
    db.execute("DELETE FROM remediations WHERE ran_at < ?", (before,))
