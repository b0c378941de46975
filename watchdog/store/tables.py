"""The statements on the store's tables, each written against a DB-API connection.

`Store` decides what goes into one transaction and calls these inside it; none of them
begins, commits or locks. The SQL is portable but for its placeholders (`?` and `:name`,
SQLite's paramstyle): the PostgreSQL side passes an adapter that translates them (pgsql.py).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from watchdog.model import RESOLVE, TRIGGER, CheckState, Event, ProbeResult
from watchdog.store.records import DEAD, SENT, OutboxItem, StoredCheck, lane_hash

UPSERT_CHECK = """
INSERT INTO checks (name, fingerprint, incident_key, state, last_result, last_at, triggered_since,
                    failing_since)
VALUES (:name, :fingerprint, :incident_key, :state, :last_result, :last_at, :triggered_since,
        :failing_since)
ON CONFLICT (name) DO UPDATE SET
    fingerprint = excluded.fingerprint,
    incident_key = excluded.incident_key,
    state = excluded.state,
    last_result = COALESCE(excluded.last_result, checks.last_result),
    last_at = COALESCE(excluded.last_at, checks.last_at),
    triggered_since = CASE
        WHEN excluded.triggered_since IS NULL THEN NULL
        ELSE COALESCE(checks.triggered_since, excluded.triggered_since)
    END,
    failing_since = CASE
        WHEN excluded.failing_since IS NULL THEN NULL
        ELSE COALESCE(checks.failing_since, excluded.failing_since)
    END
"""

_UPDATE_RESULT = "UPDATE checks SET last_result = ?, last_at = ? WHERE name = ?"

_INSERT_EVENT = """
INSERT INTO outbox (lane_hash, action, incident_key, event, created_at)
VALUES (?, ?, ?, ?, ?) RETURNING id
"""

_OUTBOX_COLUMNS = "id, event, created_at, attempts, last_error"

_CHECK_COLUMNS = (
    "name, fingerprint, incident_key, state, last_result, last_at, triggered_since, failing_since"
)

# ------------------------------------------------------------------------ checks


def check_rows(db: sqlite3.Connection) -> list[Any]:
    return db.execute(f"SELECT {_CHECK_COLUMNS} FROM checks").fetchall()


def decode_checks(rows: Sequence[Any]) -> dict[str, StoredCheck]:
    """The rows of check_rows by name (decoded outside the lock: it is the slow part)."""
    out: dict[str, StoredCheck] = {}
    for name, fingerprint, key, state, last_result, last_at, since, failing in rows:
        out[name] = StoredCheck(
            name=name,
            fingerprint=fingerprint,
            incident_key=key,
            state=CheckState.from_dict(json.loads(state)),
            last_result=json.loads(last_result) if last_result is not None else None,
            last_at=last_at,
            triggered_since=since,
            failing_since=failing,
        )
    return out


def check_row(
    name: str,
    fingerprint: str,
    incident_key: str,
    state: CheckState,
    result: ProbeResult | None,
    at: float,
) -> dict[str, Any]:
    """The parameters of UPSERT_CHECK (built before the transaction: JSON is the slow part)."""
    return {
        "name": name,
        "fingerprint": fingerprint,
        "incident_key": incident_key,
        "state": json.dumps(state.to_dict()),
        "last_result": _result_json(result) if result is not None else None,
        "last_at": at if result is not None else None,
        "triggered_since": at if state.triggered else None,
        "failing_since": at if state.failures else None,
    }


def update_results(db: sqlite3.Connection, rows: Sequence[tuple[str, ProbeResult, float]]) -> None:
    db.executemany(
        _UPDATE_RESULT, [(_result_json(result), at, name) for name, result, at in rows]
    )


def delete_check(db: sqlite3.Connection, name: str) -> None:
    db.execute("DELETE FROM checks WHERE name = ?", (name,))


def _result_json(result: ProbeResult) -> str:
    # Built by hand, not dataclasses.asdict: that deep-copies the details on the hot path
    # (one row per probe result).
    return json.dumps(
        {
            "ok": result.ok,
            "summary": result.summary,
            "severity": result.severity,
            "details": result.details,
            "latency": result.latency,
        },
        default=str,
    )


# ------------------------------------------------------------------------ outbox


def append_events(db: sqlite3.Connection, events: Sequence[Event]) -> list[int]:
    """Queue events; returns their outbox ids."""
    now = time.time()
    ids = []
    for event in events:
        cursor = db.execute(
            _INSERT_EVENT,
            (
                lane_hash(event.incident_key),
                event.action,
                event.incident_key,
                json.dumps(event.to_dict()),
                now,
            ),
        )
        ids.append(int(cursor.fetchone()[0]))
    return ids


def pending_query(limit: int, lane: int | None, lanes: int) -> tuple[str, tuple[int, ...]]:
    """The query for Store.pending, and its parameters."""
    if lane is None or lanes <= 1:
        return f"SELECT {_OUTBOX_COLUMNS} FROM outbox ORDER BY id LIMIT ?", (limit,)
    lanes = int(lanes)
    if not 0 <= lane < lanes:
        raise ValueError(f"lane {lane} out of range for {lanes} lanes")
    # The modulus is inlined (an int) so the query matches the expression index.
    sql = (
        f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE lane_hash % {lanes} = ? "
        "ORDER BY id LIMIT ?"
    )
    return sql, (lane, limit)


def outbox_item(row: Sequence[Any]) -> OutboxItem:
    """A row of pending_query; ValueError or TypeError when its event cannot be decoded."""
    item_id, event, created_at, attempts, last_error = row
    return OutboxItem(item_id, Event.from_dict(json.loads(event)), created_at, attempts, last_error)


def settle(db: sqlite3.Connection, outcomes: Sequence[tuple[int, str, str | None]]) -> None:
    for item_id, outcome, reason in outcomes:
        if outcome == DEAD:
            move_to_dead_letters(db, item_id, reason or "refused")
            continue
        row = db.execute("DELETE FROM outbox WHERE id = ? RETURNING action", (item_id,)).fetchone()
        if row is not None:
            count_sent(db, row[0], outcome)


def note_failure(db: sqlite3.Connection, item_id: int, error: str) -> None:
    db.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
        (error, item_id),
    )


def count_sent(db: sqlite3.Connection, action: str, outcome: str = SENT) -> None:
    db.execute(
        "INSERT INTO stats (name, value) VALUES (?, 1) "
        "ON CONFLICT (name) DO UPDATE SET value = stats.value + 1",
        (f"{outcome}_{action}",),
    )


def outbox_counts(db: sqlite3.Connection) -> tuple[int, float | None, int, dict[str, int]]:
    """Pending events, the oldest one's created_at, dead letters, and the sent counters."""
    pending, oldest = db.execute("SELECT COUNT(*), MIN(created_at) FROM outbox").fetchone()
    dead = db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0]
    sent = dict(db.execute("SELECT name, value FROM stats").fetchall())
    return pending, oldest, dead, sent


def outbox_stats(
    now: float, pending: int, oldest: float | None, dead: int, sent: dict[str, int]
) -> dict[str, Any]:
    """Store.outbox_stats from outbox_counts."""
    return {
        "pending": pending,
        "oldest_pending_age": max(0.0, now - oldest) if oldest is not None else None,
        "dead_letters": dead,
        "sent": {
            TRIGGER: sent.get("sent_" + TRIGGER, 0),
            RESOLVE: sent.get("sent_" + RESOLVE, 0),
        },
        # logged by a dry run, never sent: apart, so `sent` is what PagerDuty got
        "dry_run": {
            TRIGGER: sent.get("dry_run_" + TRIGGER, 0),
            RESOLVE: sent.get("dry_run_" + RESOLVE, 0),
        },
    }


# ------------------------------------------------------------------ dead letters


def move_to_dead_letters(db: sqlite3.Connection, item_id: int, reason: str) -> None:
    db.execute(
        "INSERT INTO dead_letters (id, event, created_at, failed_at, reason, attempts) "
        "SELECT id, event, created_at, ?, ?, attempts FROM outbox WHERE id = ? "
        "ON CONFLICT (id) DO UPDATE SET event = excluded.event, created_at = "
        "excluded.created_at, failed_at = excluded.failed_at, reason = excluded.reason, "
        "attempts = excluded.attempts",
        (time.time(), reason, item_id),
    )
    db.execute("DELETE FROM outbox WHERE id = ?", (item_id,))


def dead_letter_rows(db: sqlite3.Connection, limit: int | None) -> list[Any]:
    sql = ("SELECT id, event, created_at, failed_at, reason, attempts FROM dead_letters "
           "ORDER BY failed_at DESC, id DESC")
    if limit is None:
        return db.execute(sql).fetchall()
    return db.execute(sql + " LIMIT ?", (limit,)).fetchall()


def decode_dead_letters(rows: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for item_id, event, created_at, failed_at, reason, attempts in rows:
        try:
            decoded: Any = json.loads(event)
        except ValueError:
            decoded = event
        out.append(
            {
                "id": item_id,
                "event": decoded,
                "created_at": created_at,
                "failed_at": failed_at,
                "reason": reason,
                "attempts": attempts,
            }
        )
    return out


def requeue_dead_letters(db: sqlite3.Connection, ids: Sequence[int]) -> list[int]:
    done = []
    for item_id in sorted(ids):
        row = db.execute(
            "SELECT event, created_at FROM dead_letters WHERE id = ?", (item_id,)
        ).fetchone()
        if row is None:
            continue
        event = Event.from_dict(json.loads(row[0]))
        db.execute(
            "INSERT INTO outbox (id, lane_hash, action, incident_key, event, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (item_id, lane_hash(event.incident_key), event.action, event.incident_key,
             row[0], row[1]),
        )
        db.execute("DELETE FROM dead_letters WHERE id = ?", (item_id,))
        done.append(item_id)
    return done


def drop_dead_letters(db: sqlite3.Connection, ids: Sequence[int]) -> list[int]:
    return [
        item_id for item_id in sorted(ids)
        if db.execute("DELETE FROM dead_letters WHERE id = ?", (item_id,)).rowcount
    ]


# -------------------------------------------------------------------------- meta


def get_meta(db: sqlite3.Connection, name: str) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
    return None if row is None else str(row[0])


def set_meta(db: sqlite3.Connection, name: str, value: str) -> None:
    db.execute(
        "INSERT INTO meta (name, value) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (name, value),
    )
