"""The silences table: statements taking a connection, like tables.py's."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from watchdog.holds import Silence

_COLUMNS = "id, patterns, reason, created_at, until, created_by"


def insert(db: sqlite3.Connection, silence: Silence) -> None:
    db.execute(
        f"INSERT INTO silences ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
        (silence.id, json.dumps(list(silence.patterns)), silence.reason, silence.created_at,
         silence.until, silence.created_by),
    )


def select(db: sqlite3.Connection, now: float | None, since: float | None) -> list[Silence]:
    """Active at `now` (None: any), among those not ended before `since` (None: all)."""
    where, args = [], []
    if now is not None:
        where.append("created_at <= ? AND until > ?")
        args += [now, now]
    if since is not None:
        where.append("until >= ?")
        args.append(since)
    sql = f"SELECT {_COLUMNS} FROM silences"
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = db.execute(sql + " ORDER BY created_at, id", args).fetchall()
    return [Silence(id=i, patterns=tuple(json.loads(p)), reason=r, created_at=c, until=u,
                    created_by=b) for i, p, r, c, u, b in rows]


def end(db: sqlite3.Connection, ids: Sequence[str] | None, now: float) -> list[str]:
    """End the given active silences (None: every active one) now; their ids."""
    active = [s.id for s in select(db, now, None)]
    chosen = active if ids is None else [i for i in ids if i in active]
    for silence_id in chosen:
        db.execute("UPDATE silences SET until = ?, ended_at = ? WHERE id = ?",
                   (now, now, silence_id))
    return chosen


def forget_ended(db: sqlite3.Connection, before: float) -> None:
    """Drop silences that ended before `before` (kept until then for `silences --all`)."""
    db.execute("DELETE FROM silences WHERE until < ?", (before,))
