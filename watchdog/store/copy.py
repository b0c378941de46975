"""Copying a SQLite state into a PostgreSQL one, row for row, in one transaction.

For `pd-watchdog migrate-state`. Every table of the schema is copied as it is (names,
incident keys, states, outbox ids, dead letters, silences, passive seqs, counters and
meta), so the runner that next opens the PostgreSQL state sees exactly what the SQLite one
would have: open incidents stay open under the same keys, pending events go out in their
order. The tables are read from the schema, not listed here: a new table is copied too.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Any

from watchdog.store.api import Store
from watchdog.store.errors import StoreError

SKIP = ("sqlite_sequence",)


def tables_of(source: Store) -> list[str]:
    """The state's tables, in creation order (the schema's order)."""
    with source._locked("list the tables"):  # noqa: SLF001 - the store package's own
        rows = source._db.execute(  # noqa: SLF001
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY rowid").fetchall()
    return [row[0] for row in rows if row[0] not in SKIP]


def rows_in(target: Store, tables: list[str]) -> dict[str, int]:
    """How many rows each of `tables` holds in the target (empty tables left out)."""
    counts = {}
    with target._locked("count the rows"):  # noqa: SLF001
        for table in tables:
            count = target._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: SLF001
            if count:
                counts[table] = int(count)
    return counts


def copy_state(source: Store, target: Store, *, replace: bool) -> dict[str, int]:
    """Copy every table of `source` (SQLite) into `target` (PostgreSQL) in one transaction;
    `replace` empties the target's tables first. Returns the rows copied per table."""
    tables = tables_of(source)
    with source._locked("read the state"):  # noqa: SLF001
        data = {table: _read(source._db, table) for table in tables}  # noqa: SLF001
        high = _sequences(source._db)  # noqa: SLF001
    copied: dict[str, int] = {}
    with target._transaction("copy the state") as db:  # noqa: SLF001
        for table in tables:
            columns, rows = data[table]
            if replace:
                db.execute(f"DELETE FROM {table}")
            if rows:
                marks = ", ".join("?" for _ in columns)
                db.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                               rows)
            copied[table] = len(rows)
        for table in tables:  # after every table: the outbox's ids include dead letters'
            _advance_identity(db, table, high.get(table, 0))
    return copied


def _read(db: sqlite3.Connection, table: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    cursor = db.execute(f"SELECT * FROM {table} ORDER BY rowid")
    return [column[0] for column in cursor.description], cursor.fetchall()


def _sequences(db: sqlite3.Connection) -> dict[str, int]:
    """AUTOINCREMENT's high-water marks: ids handed out once are never handed out again."""
    with contextlib.suppress(sqlite3.Error):
        return {name: int(seq) for name, seq in db.execute(
            "SELECT name, seq FROM sqlite_sequence").fetchall()}
    return {}


def _advance_identity(db: Any, table: str, high: int) -> None:
    """Move an identity column's sequence past every id copied (and SQLite's mark)."""
    row = db.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(?) AND attidentity "
        "<> '' AND NOT attisdropped", (table,)).fetchone()
    if row is None:
        return
    column = row[0]
    top = db.execute(f"SELECT COALESCE(max({column}), 0) FROM {table}").fetchone()[0]
    extra = 0
    if table == "outbox":  # dead letters keep their outbox ids, to go back in their place
        extra = db.execute("SELECT COALESCE(max(id), 0) FROM dead_letters").fetchone()[0]
    last = max(int(top), int(high), int(extra))
    if last > 0:
        db.execute("SELECT setval(pg_get_serial_sequence(?, ?), ?)", (table, column, last))


def require_sqlite(store: Store) -> None:
    if store.backend != "sqlite":
        raise StoreError("the source of a migration is a SQLite state (state_dir)")
