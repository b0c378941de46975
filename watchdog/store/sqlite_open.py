"""Opening the SQLite state file (WAL, integrity, schema version), and its errors in words an
operator can act on. SQLite-specific: a second backend brings its own opening and errors."""

from __future__ import annotations

import os
import sqlite3
import urllib.parse

from watchdog import statefile
from watchdog.store import schema
from watchdog.store.errors import StoreError

DB_NAME = "state.db"
BUSY_TIMEOUT_MS = 5000


def open_writable(
    state_dir: str, path: str, warnings: list[str]
) -> tuple[sqlite3.Connection, statefile.Identity | None]:
    """Open (creating and migrating as needed) the state file; returns it and its identity.

    Permissions we could not narrow are added to `warnings`."""
    _make_state_dir(state_dir, warnings)
    try:
        statefile.create_private(path)
    except OSError as exc:
        raise StoreError(
            f"cannot create state file {path} ({exc.strerror}); check that this user "
            f"can write {state_dir} (ls -ld {state_dir})"
        ) from exc
    try:
        conn = sqlite3.connect(
            path,
            isolation_level=None,
            check_same_thread=False,
            timeout=BUSY_TIMEOUT_MS / 1000,
        )
    except sqlite3.Error as exc:
        raise open_error(path, state_dir, exc) from exc
    try:
        check_integrity(conn, path)
        check_version(path, _user_version(conn))
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        _migrate(conn, path)
    except StoreError:
        conn.close()
        raise
    except sqlite3.Error as exc:
        conn.close()
        raise open_error(path, state_dir, exc) from exc
    identity = statefile.Identity.of(path)
    sides = [path + suffix for suffix in statefile.SIDE_FILES]
    warnings += statefile.make_private_files([path, *sides])
    return conn, identity


def _migrate(conn: sqlite3.Connection, path: str) -> None:
    """Bring the schema to SCHEMA_VERSION in one transaction (user_version holds the version)."""
    conn.execute("BEGIN IMMEDIATE")  # re-read under the write lock: two first starts race
    try:
        version = _user_version(conn)
        check_version(path, version)
        for statement in schema.steps_after(version):
            conn.execute(statement)
        if version != schema.SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version={schema.SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def open_readonly(state_dir: str, path: str) -> sqlite3.Connection:
    """Open an existing state file for reading, beside a live runner or none."""
    if not os.path.exists(path):
        raise StoreError(
            f"no state yet at {path}: pd-watchdog has not run with state_dir "
            f"{state_dir}. If the runner is a systemd service with StateDirectory=, "
            f"its state is in /var/lib/pd-watchdog: set state_dir to that in the config"
        )
    try:
        conn = _connect_readonly(path, immutable=False)
    except sqlite3.Error as exc:
        raise open_error(path, state_dir, exc) from exc
    try:
        try:
            check_integrity(conn, path)
        except sqlite3.OperationalError:
            # A WAL database needs its -shm file; a reader that may not create it (folder
            # not writable) can still read a database no runner has open: with no -wal
            # file there is nothing newer than the main file, so it is safe as immutable.
            if os.path.exists(path + "-wal"):
                raise
            conn.close()
            conn = _connect_readonly(path, immutable=True)
            check_integrity(conn, path)
        version = _user_version(conn)
        check_version(path, version)
        if version == 0:
            raise StoreError(f"no state yet at {path}: the database is still empty")
    except StoreError:
        conn.close()
        raise
    except sqlite3.Error as exc:
        conn.close()
        raise open_error(path, state_dir, exc) from exc
    return conn


def _connect_readonly(path: str, *, immutable: bool) -> sqlite3.Connection:
    uri = "file:" + urllib.parse.quote(path) + "?mode=ro"
    if immutable:
        uri += "&immutable=1"
    return sqlite3.connect(
        uri,
        uri=True,
        isolation_level=None,
        check_same_thread=False,
        timeout=BUSY_TIMEOUT_MS / 1000,
    )


def _user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _make_state_dir(state_dir: str, warnings: list[str]) -> None:
    try:
        warnings += statefile.make_private_dir(state_dir)
    except OSError as exc:
        raise StoreError(
            f"cannot create state_dir {state_dir} ({exc.strerror}); create it "
            f"(mkdir -m 700 {state_dir}) or point state_dir somewhere writable"
        ) from exc


def check_integrity(conn: sqlite3.Connection, path: str) -> None:
    rows = conn.execute("PRAGMA quick_check").fetchall()
    problems = [row[0] for row in rows if row[0] != "ok"]
    if problems:
        shown = "; ".join(problems[:3])
        raise StoreError(
            f"state file {path} is damaged (quick_check: {shown}). " + move_aside(path)
        )


def check_version(path: str, version: int) -> None:
    if version > schema.SCHEMA_VERSION:
        raise StoreError(
            f"state file {path} was written by a newer pd-watchdog (schema {version}, "
            f"this one knows up to {schema.SCHEMA_VERSION}); run that newer version, or use "
            "another state_dir"
        )


def move_aside(path: str) -> str:
    return (
        f"Move it aside (mv {path} {path}.bad) and restart; open incidents it "
        "tracked will then need resolving by hand in PagerDuty."
    )


def open_error(path: str, state_dir: str, exc: sqlite3.Error) -> StoreError:
    """Why the state file could not be opened, and what to do about it."""
    message = str(exc)
    lowered = message.lower()
    if "not a database" in lowered:
        return StoreError(
            f"state file {path} is not a valid database ({message}). " + move_aside(path)
        )
    if "malformed" in lowered or "corrupt" in lowered:
        return StoreError(f"state file {path} is damaged ({message}). " + move_aside(path))
    if "unable to open" in lowered or "readonly" in lowered or "permission" in lowered:
        return StoreError(
            f"cannot open state file {path} ({message}); check that this user can "
            f"read and write it and its folder {state_dir} (ls -l {state_dir})"
        )
    if "locked" in lowered or "busy" in lowered:
        return StoreError(
            f"state file {path} is busy ({message}); another process is holding a "
            "write transaction on it. Stop it, or use another state_dir"
        )
    return StoreError(f"cannot use state file {path} ({message})")


def runtime_error(path: str, state_dir: str, what: str, exc: sqlite3.Error) -> StoreError:
    """Why `what` failed on an open state file, and what to do about it."""
    message = str(exc)
    lowered = message.lower()
    if "full" in lowered:
        hint = f"free space on the disk holding {state_dir}"
    elif "malformed" in lowered or "not a database" in lowered:
        hint = move_aside(path)
    elif "readonly" in lowered or "permission" in lowered:
        hint = f"check that this user can write {path} and {state_dir}"
    else:
        hint = "check the disk and the file's permissions"
    return StoreError(f"could not {what} in state file {path} ({message}); {hint}")
