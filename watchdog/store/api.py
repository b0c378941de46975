"""The runner's memory: check states and the outbox of PagerDuty events, in one SQLite file.

A state change and the events it causes are written in one transaction, so after a kill -9
or a reboot either both are there (and the sender will deliver the events) or neither is
(and the check is simply judged again). Events leave the outbox only once PagerDuty accepted
them (mark_sent) or refused them for good (dead_letter).

One connection, guarded by a lock, serves every thread; each method holds the lock only for
its own few statements. WAL mode lets `pd-watchdog status` read beside a live runner.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import sqlite3
import threading
import time
import urllib.parse
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from watchdog import statefile
from watchdog.model import RESOLVE, TRIGGER, CheckState, Event, ProbeResult

SCHEMA_VERSION = 2
DB_NAME = "state.db"
LOCK_NAME = "lock"
BUSY_TIMEOUT_MS = 5000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS checks (
    name            TEXT PRIMARY KEY,
    fingerprint     TEXT NOT NULL,
    incident_key    TEXT NOT NULL,
    state           TEXT NOT NULL,
    last_result     TEXT,
    last_at         REAL,
    triggered_since REAL,
    failing_since   REAL
);
CREATE TABLE IF NOT EXISTS outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    lane_hash    INTEGER NOT NULL,
    action       TEXT NOT NULL,
    incident_key TEXT NOT NULL,
    event        TEXT NOT NULL,
    created_at   REAL NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id         INTEGER PRIMARY KEY,
    event      TEXT NOT NULL,
    created_at REAL NOT NULL,
    failed_at  REAL NOT NULL,
    reason     TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS stats (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

# Schema changes since version 1, by the version they bring a database to.
_MIGRATIONS = {2: ["ALTER TABLE checks ADD COLUMN failing_since REAL"]}

_UPSERT_CHECK = """
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
VALUES (?, ?, ?, ?, ?)
"""

_OUTBOX_COLUMNS = "id, event, created_at, attempts, last_error"


# How a delivered outbox item ended (Store.settle).
SENT = "sent"
DRY_RUN = "dry_run"
DEAD = "dead"


class StoreError(Exception):
    """The state store cannot be used; the message names the file and what to do."""


class StoreLocked(StoreError):
    """Another pd-watchdog run holds this state_dir."""


@dataclass(frozen=True)
class Deferred:
    """A state change the store could not take when it happened, written later by replay().

    Its events were handed to the sender from memory meanwhile: `queue` are those still to
    send (they join the outbox), `sent` the actions PagerDuty accepted (counted as sent, never
    queued again), `dead` those it refused, with the reason (kept as dead letters). A
    `state` of None means the check was removed (its row is deleted).
    """

    name: str
    fingerprint: str
    incident_key: str
    state: CheckState | None
    result: ProbeResult | None
    at: float
    queue: tuple[Event, ...] = ()
    sent: tuple[str, ...] = ()
    dead: tuple[tuple[Event, str], ...] = ()
    dry_run: tuple[str, ...] = ()  # actions a dry run logged (counted apart from sent)


@dataclass(frozen=True)
class StoredCheck:
    """A check as the store remembers it (the runner's view after a restart)."""

    name: str
    fingerprint: str
    incident_key: str
    state: CheckState
    last_result: dict[str, Any] | None
    last_at: float | None
    triggered_since: float | None
    failing_since: float | None = None  # first failure of the current run of failures


@dataclass(frozen=True)
class OutboxItem:
    """An event waiting for PagerDuty, with its delivery history."""

    id: int
    event: Event
    created_at: float
    attempts: int
    last_error: str | None


def lane_hash(incident_key: str) -> int:
    """Stable across processes and Python versions (unlike hash()), so lanes never reshuffle."""
    return zlib.crc32(incident_key.encode("utf-8"))


class Store:
    """SQLite-backed state and outbox for one state_dir."""

    def __init__(self, state_dir: str, *, readonly: bool = False) -> None:
        self.state_dir = os.path.abspath(state_dir)
        self.path = os.path.join(self.state_dir, DB_NAME)
        self.readonly = readonly
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        self._lane_indexes: set[int] = set()
        self._sync_lock = threading.Lock()
        self._sync_conn: sqlite3.Connection | None = None
        self._conn: sqlite3.Connection | None = None
        self._identity: statefile.Identity | None = None
        self._lock_identity: statefile.Identity | None = None
        self.warnings: list[str] = []  # permissions we could not narrow, for the runner to log
        if readonly:
            self._conn = self._open_readonly()
        else:
            self._conn = self._open_writable()

    # ----------------------------------------------------------------- opening

    def _open_writable(self) -> sqlite3.Connection:
        self._make_state_dir()
        try:
            statefile.create_private(self.path)
        except OSError as exc:
            raise StoreError(
                f"cannot create state file {self.path} ({exc.strerror}); check that this user "
                f"can write {self.state_dir} (ls -ld {self.state_dir})"
            ) from exc
        try:
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=BUSY_TIMEOUT_MS / 1000,
            )
        except sqlite3.Error as exc:
            raise self._open_error(exc) from exc
        try:
            self._check_integrity(conn)
            self._check_version(conn.execute("PRAGMA user_version").fetchone()[0])
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("BEGIN IMMEDIATE")  # re-read under the write lock: two first starts race
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                self._check_version(version)
                if version == 0:
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                else:
                    for step in range(version + 1, SCHEMA_VERSION + 1):
                        for statement in _MIGRATIONS[step]:
                            conn.execute(statement)
                if version != SCHEMA_VERSION:
                    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except StoreError:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            raise self._open_error(exc) from exc
        self._identity = statefile.Identity.of(self.path)
        sides = [self.path + suffix for suffix in statefile.SIDE_FILES]
        self.warnings += statefile.make_private_files([self.path, *sides])
        return conn

    def _open_readonly(self) -> sqlite3.Connection:
        if not os.path.exists(self.path):
            raise StoreError(
                f"no state yet at {self.path}: pd-watchdog has not run with state_dir "
                f"{self.state_dir}. If the runner is a systemd service with StateDirectory=, "
                f"its state is in /var/lib/pd-watchdog: set state_dir to that in the config"
            )
        try:
            conn = self._connect_readonly(immutable=False)
        except sqlite3.Error as exc:
            raise self._open_error(exc) from exc
        try:
            try:
                self._check_integrity(conn)
            except sqlite3.OperationalError:
                # A WAL database needs its -shm file; a reader that may not create it (folder
                # not writable) can still read a database no runner has open: with no -wal
                # file there is nothing newer than the main file, so it is safe as immutable.
                if os.path.exists(self.path + "-wal"):
                    raise
                conn.close()
                conn = self._connect_readonly(immutable=True)
                self._check_integrity(conn)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            self._check_version(version)
            if version == 0:
                raise StoreError(f"no state yet at {self.path}: the database is still empty")
        except StoreError:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            raise self._open_error(exc) from exc
        return conn

    def _connect_readonly(self, *, immutable: bool) -> sqlite3.Connection:
        uri = "file:" + urllib.parse.quote(self.path) + "?mode=ro"
        if immutable:
            uri += "&immutable=1"
        return sqlite3.connect(
            uri,
            uri=True,
            isolation_level=None,
            check_same_thread=False,
            timeout=BUSY_TIMEOUT_MS / 1000,
        )

    def _make_state_dir(self) -> None:
        try:
            self.warnings += statefile.make_private_dir(self.state_dir)
        except OSError as exc:
            raise StoreError(
                f"cannot create state_dir {self.state_dir} ({exc.strerror}); create it "
                f"(mkdir -m 700 {self.state_dir}) or point state_dir somewhere writable"
            ) from exc

    def _check_integrity(self, conn: sqlite3.Connection) -> None:
        rows = conn.execute("PRAGMA quick_check").fetchall()
        problems = [row[0] for row in rows if row[0] != "ok"]
        if problems:
            shown = "; ".join(problems[:3])
            raise StoreError(
                f"state file {self.path} is damaged (quick_check: {shown}). " + self._move_aside()
            )

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"state file {self.path} was written by a newer pd-watchdog (schema {version}, "
                f"this one knows up to {SCHEMA_VERSION}); run that newer version, or use another "
                "state_dir"
            )

    def _move_aside(self) -> str:
        return (
            f"Move it aside (mv {self.path} {self.path}.bad) and restart; open incidents it "
            "tracked will then need resolving by hand in PagerDuty."
        )

    def _open_error(self, exc: sqlite3.Error) -> StoreError:
        message = str(exc)
        lowered = message.lower()
        if "not a database" in lowered:
            return StoreError(
                f"state file {self.path} is not a valid database ({message}). " + self._move_aside()
            )
        if "malformed" in lowered or "corrupt" in lowered:
            return StoreError(
                f"state file {self.path} is damaged ({message}). " + self._move_aside()
            )
        if "unable to open" in lowered or "readonly" in lowered or "permission" in lowered:
            return StoreError(
                f"cannot open state file {self.path} ({message}); check that this user can "
                f"read and write it and its folder {self.state_dir} (ls -l {self.state_dir})"
            )
        if "locked" in lowered or "busy" in lowered:
            return StoreError(
                f"state file {self.path} is busy ({message}); another process is holding a "
                "write transaction on it. Stop it, or use another state_dir"
            )
        return StoreError(f"cannot use state file {self.path} ({message})")

    # ------------------------------------------------------------------ locking

    def lock(self) -> None:
        """Take the state_dir for this process, or raise StoreLocked naming the holder's pid.

        flock is released by the kernel when the process dies (even kill -9), so a stale lock
        file never blocks a restart.
        """
        if self.readonly:
            raise StoreError(f"read-only store for {self.state_dir} cannot take the run lock")
        if self._lock_fd is not None:
            return
        lock_path = os.path.join(self.state_dir, LOCK_NAME)
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot open lock file {lock_path} ({exc.strerror})") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                who = f"pid {holder}" if holder else "pid unknown"
                raise StoreLocked(
                    f"state_dir {self.state_dir} is used by another pd-watchdog run ({who}); "
                    "stop it or use another state_dir"
                ) from exc
            raise StoreError(f"cannot lock {lock_path} ({exc.strerror})") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.warnings += statefile.make_private_files([lock_path])
        self._lock_fd = fd
        info = os.fstat(fd)
        self._lock_identity = statefile.Identity(info.st_dev, info.st_ino)

    # ------------------------------------------------------------ file health

    def file_problems(self) -> list[str]:
        """What happened to our files since they were opened (deleted, replaced, read-only).

        Cheap (a few stat calls): the runner asks every second."""
        if self.readonly or self._conn is None:
            return []
        found = statefile.problems(self.path, self._identity)
        if self._lock_fd is not None:
            lock_path = os.path.join(self.state_dir, LOCK_NAME)
            if statefile.Identity.of(lock_path) != self._lock_identity:
                found.append(f"lock file {lock_path} was deleted or replaced while running")
        return found

    def rebuild(self) -> None:
        """Write the open database out again as a new file at its path, and use that.

        For a state file deleted, replaced or made read-only under a running runner: the
        open connection still reads everything (from the unlinked file, or through its open
        descriptor), so nothing is lost. A file someone put in its place is moved aside, not
        overwritten. Raises StoreError when the folder cannot take a new file.
        """
        with self._lock, self._sync_lock:
            tmp = self.path + ".rebuild"
            self._copy_to(tmp)
            current = statefile.Identity.of(self.path)
            try:
                if current is not None and current != self._identity:
                    os.replace(self.path, f"{self.path}.replaced-{int(time.time())}")
                self._close_connections()
                statefile.remove_side_files(self.path)
                os.replace(tmp, self.path)
                statefile.fsync(self.state_dir)
            except OSError as exc:
                raise StoreError(
                    f"could not put a new state file at {self.path} ({exc.strerror}); check "
                    f"that this user can write {self.state_dir}"
                ) from exc
            finally:
                if self._conn is None:  # reopen whichever file is now at the path
                    self._conn = self._open_writable()
                    self._lane_indexes = set()
        self.relock()

    def _copy_to(self, tmp: str) -> None:
        """A consistent copy of the live database in a new private file (sqlite3's backup)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        try:
            statefile.create_private(tmp)
            target = sqlite3.connect(tmp)
            try:
                self._db.backup(target)
            finally:
                target.close()
            statefile.remove_side_files(tmp)
            statefile.fsync(tmp)
        except (OSError, sqlite3.Error) as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise StoreError(
                f"could not write a new copy of the state file at {tmp} ({exc}); free space "
                f"or fix the permissions of {self.state_dir}"
            ) from exc

    def _close_connections(self) -> None:
        for conn in (self._conn, self._sync_conn):
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
        self._conn = self._sync_conn = None

    def relock(self) -> None:
        """Take the lock again on a lock file that was deleted or replaced (else a second
        runner could start on this state_dir beside us). Raises StoreLocked if one did."""
        lock_path = os.path.join(self.state_dir, LOCK_NAME)
        if self._lock_fd is None or statefile.Identity.of(lock_path) == self._lock_identity:
            return
        old, self._lock_fd = self._lock_fd, None
        try:
            self.lock()
        except StoreError:
            self._lock_fd = old
            raise
        os.close(old)

    # ------------------------------------------------------------------- checks

    def load_checks(self) -> dict[str, StoredCheck]:
        """Every remembered check by name, as the runner needs it after a restart."""
        sql = (
            "SELECT name, fingerprint, incident_key, state, last_result, last_at, "
            "triggered_since, failing_since FROM checks"
        )
        with self._locked("read checks"):
            rows = self._db.execute(sql).fetchall()
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

    def record(
        self,
        name: str,
        fingerprint: str,
        incident_key: str,
        state: CheckState,
        result: ProbeResult | None,
        at: float,
        events: Sequence[Event],
    ) -> list[int]:
        """Save a check's new state and queue its events, atomically; returns the outbox ids."""
        row = _check_row(name, fingerprint, incident_key, state, result, at)
        with self._transaction("record check " + repr(name)) as db:
            db.execute(_UPSERT_CHECK, row)
            return self._append(db, events)

    def record_results(self, rows: Sequence[tuple[str, ProbeResult, float]]) -> None:
        """Save many checks' latest results, (name, result, at) each, in one transaction.

        For results that changed no state, which the runner batches (one transaction a
        second instead of one per probe): the stored state is already right, so only
        last_result and last_at are written."""
        if not rows:
            return
        with self._transaction(f"record {len(rows)} results") as db:
            db.executemany(
                _UPDATE_RESULT, [(_result_json(result), at, name) for name, result, at in rows]
            )

    def forget(self, name: str, events: Sequence[Event]) -> list[int]:
        """Drop a removed check and queue its last events (its resolve), atomically."""
        with self._transaction("forget check " + repr(name)) as db:
            db.execute("DELETE FROM checks WHERE name = ?", (name,))
            return self._append(db, events)

    def replay(self, changes: Sequence[Deferred]) -> None:
        """Write state changes that were kept in memory, in their order, in one transaction."""
        if not changes:
            return
        with self._transaction(f"record {len(changes)} changes kept in memory") as db:
            for change in changes:
                if change.state is None:
                    db.execute("DELETE FROM checks WHERE name = ?", (change.name,))
                else:
                    db.execute(_UPSERT_CHECK, _check_row(
                        change.name, change.fingerprint, change.incident_key, change.state,
                        change.result, change.at,
                    ))
                self._append(db, change.queue)
                for action in change.sent:
                    _count_sent(db, action)
                for action in change.dry_run:
                    _count_sent(db, action, DRY_RUN)
                for event, reason in change.dead:
                    (item_id,) = self._append(db, [event])
                    _move_to_dead_letters(db, item_id, reason)

    def get_meta(self, name: str) -> str | None:
        """A small fact about this state (e.g. where events were last delivered)."""
        with self._locked(f"read {name}"):
            row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, name: str, value: str) -> None:
        with self._transaction(f"write {name}") as db:
            db.execute(
                "INSERT INTO meta (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )

    def _append(self, db: sqlite3.Connection, events: Sequence[Event]) -> list[int]:
        """Queue events inside the caller's transaction (a separate method so tests can fail it)."""
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
            ids.append(int(cursor.lastrowid))
        return ids

    # ------------------------------------------------------------------- outbox

    def pending(
        self, limit: int = 100, *, lane: int | None = None, lanes: int = 1
    ) -> list[OutboxItem]:
        """The oldest queued events (by id), optionally only those whose key hashes to `lane`."""
        if lane is None or lanes <= 1:
            sql = f"SELECT {_OUTBOX_COLUMNS} FROM outbox ORDER BY id LIMIT ?"
            params: tuple[int, ...] = (limit,)
        else:
            lanes = int(lanes)
            if not 0 <= lane < lanes:
                raise ValueError(f"lane {lane} out of range for {lanes} lanes")
            # The modulus is inlined (an int) so the query matches the expression index.
            sql = (
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE lane_hash % {lanes} = ? "
                "ORDER BY id LIMIT ?"
            )
            params = (lane, limit)
        with self._locked("read outbox"):
            if lane is not None and lanes > 1:
                self._ensure_lane_index(lanes)
            rows = self._db.execute(sql, params).fetchall()
        if rows and not self.readonly:
            self._make_durable()
        items = []
        for item_id, event, created_at, attempts, last_error in rows:
            try:
                decoded = Event.from_dict(json.loads(event))
            except (ValueError, TypeError) as exc:
                # Written by a different version or damaged: park it rather than stall the lane.
                self.dead_letter(item_id, f"undecodable outbox row: {exc}")
                continue
            items.append(OutboxItem(item_id, decoded, created_at, attempts, last_error))
        return items

    def _make_durable(self) -> None:
        """fsync the WAL, so every row just read survives a power cut before it is sent.

        synchronous=NORMAL keeps record() cheap by not syncing each commit, but then a power
        cut can take back the last commits. Had one of their events already reached PagerDuty,
        the runner would come back not knowing about that incident, and never resolve it. A
        checkpoint syncs the WAL first; it runs on its own connection, so record() is not held
        up behind the fsync (a PASSIVE checkpoint never blocks writers).
        """
        with self._sync_lock:
            if self._sync_conn is None:
                try:
                    self._sync_conn = sqlite3.connect(
                        self.path, isolation_level=None, check_same_thread=False
                    )
                except sqlite3.Error as exc:
                    raise self._runtime_error("open a checkpoint connection", exc) from exc
            deadline = time.monotonic() + 2.0
            while True:
                try:
                    busy = self._sync_conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[0]
                except sqlite3.Error as exc:
                    raise self._runtime_error("checkpoint the outbox to disk", exc) from exc
                if not busy or time.monotonic() > deadline:
                    return
                time.sleep(0.005)  # another checkpoint is running; ours must cover our rows

    def _ensure_lane_index(self, lanes: int) -> None:
        """Index `lane_hash % lanes` once per lane count, dropping those of old lane counts.

        Called with the lock held. A read-only store just scans (status never filters lanes).
        """
        if lanes in self._lane_indexes or self.readonly:
            return
        db = self._db
        existing = [
            row[0]
            for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'outbox_lane_%'"
            )
        ]
        wanted = f"outbox_lane_{lanes}"
        db.execute("BEGIN IMMEDIATE")
        try:
            for name in existing:
                if name != wanted and name.removeprefix("outbox_lane_").isdigit():
                    db.execute(f"DROP INDEX IF EXISTS {name}")
            db.execute(f"CREATE INDEX IF NOT EXISTS {wanted} ON outbox ((lane_hash % {lanes}))")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._lane_indexes = {lanes}

    def mark_sent(self, item_id: int) -> None:
        """PagerDuty accepted it: drop it from the outbox and count it."""
        self.settle([(item_id, SENT, None)])

    def settle(self, outcomes: Sequence[tuple[int, str, str | None]]) -> None:
        """Take delivered items out of the outbox in one transaction, in the order given:
        (id, SENT, None) PagerDuty accepted, (id, DRY_RUN, None) a dry run logged (counted
        apart: PagerDuty never saw it), (id, DEAD, reason) refused (a dead letter).

        One transaction for several, so a sender that could not write for a while settles
        what it delivered meanwhile all at once or not at all: a restart never re-sends an
        older event of a key whose later event it has forgotten."""
        with self._transaction(f"settle {len(outcomes)} outbox items") as db:
            for item_id, outcome, reason in outcomes:
                if outcome == DEAD:
                    _move_to_dead_letters(db, item_id, reason or "refused")
                    continue
                row = db.execute(
                    "DELETE FROM outbox WHERE id = ? RETURNING action", (item_id,)
                ).fetchone()
                if row is not None:
                    _count_sent(db, row[0], outcome)

    def note_failure(self, item_id: int, error: str) -> None:
        """A delivery attempt failed and will be retried; remember how often and why."""
        with self._transaction(f"note failure of outbox item {item_id}") as db:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                (error, item_id),
            )

    def dead_letter(self, item_id: int, reason: str) -> None:
        """PagerDuty refused it for good: move it out of the outbox, keeping it for `status`."""
        self.settle([(item_id, DEAD, reason)])

    def outbox_stats(self, now: float) -> dict[str, Any]:
        """Counts for `status` and metrics."""
        with self._locked("read outbox stats"):
            db = self._db
            pending, oldest = db.execute("SELECT COUNT(*), MIN(created_at) FROM outbox").fetchone()
            dead = db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0]
            sent = dict(db.execute("SELECT name, value FROM stats").fetchall())
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

    def dead_letters(self, limit: int | None = 50) -> list[dict[str, Any]]:
        """The most recent dead letters first: id, event (dict), created_at, failed_at, reason."""
        with self._locked("read dead letters"):
            rows = self._db.execute(
                "SELECT id, event, created_at, failed_at, reason, attempts FROM dead_letters "
                "ORDER BY failed_at DESC, id DESC LIMIT ?",
                (-1 if limit is None else limit,),
            ).fetchall()
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

    def requeue_dead_letters(self, ids: Sequence[int]) -> list[int]:
        """Put dead letters back into the outbox at their old place, and return their ids.

        An item keeps its id (outbox ids are never reused), so it goes out in its original
        order relative to every other event of its key still queued."""
        with self._transaction(f"re-queue {len(ids)} dead letters") as db:
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

    def drop_dead_letters(self, ids: Sequence[int]) -> list[int]:
        """Forget dead letters for good; returns the ids that were there."""
        with self._transaction(f"drop {len(ids)} dead letters") as db:
            return [
                item_id for item_id in sorted(ids)
                if db.execute("DELETE FROM dead_letters WHERE id = ?", (item_id,)).rowcount
            ]

    # -------------------------------------------------------------------- close

    def close(self) -> None:
        """Close the database and release the run lock. Safe to call twice."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            with self._sync_lock:
                sync_conn, self._sync_conn = self._sync_conn, None
                if sync_conn is not None:
                    with contextlib.suppress(sqlite3.Error):
                        sync_conn.close()
            if self._lock_fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ helpers

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"state store {self.path} is closed")
        return self._conn

    @contextlib.contextmanager
    def _locked(self, what: str) -> Iterator[None]:
        with self._lock:
            try:
                yield
            except sqlite3.Error as exc:
                raise self._runtime_error(what, exc) from exc

    @contextlib.contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            raise StoreError(f"cannot {what}: state store {self.path} is open read-only")
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._runtime_error(what, exc) from exc
            try:
                yield db
                db.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._runtime_error(what, exc) from exc
                raise

    def _runtime_error(self, what: str, exc: sqlite3.Error) -> StoreError:
        message = str(exc)
        lowered = message.lower()
        if "full" in lowered:
            hint = f"free space on the disk holding {self.state_dir}"
        elif "malformed" in lowered or "not a database" in lowered:
            hint = self._move_aside()
        elif "readonly" in lowered or "permission" in lowered:
            hint = f"check that this user can write {self.path} and {self.state_dir}"
        else:
            hint = "check the disk and the file's permissions"
        return StoreError(f"could not {what} in state file {self.path} ({message}); {hint}")


def _count_sent(db: sqlite3.Connection, action: str, outcome: str = "sent") -> None:
    db.execute(
        "INSERT INTO stats (name, value) VALUES (?, 1) "
        "ON CONFLICT (name) DO UPDATE SET value = value + 1",
        (f"{outcome}_{action}",),
    )


def _move_to_dead_letters(db: sqlite3.Connection, item_id: int, reason: str) -> None:
    db.execute(
        "INSERT OR REPLACE INTO dead_letters (id, event, created_at, failed_at, reason, "
        "attempts) SELECT id, event, created_at, ?, ?, attempts FROM outbox WHERE id = ?",
        (time.time(), reason, item_id),
    )
    db.execute("DELETE FROM outbox WHERE id = ?", (item_id,))


def _check_row(
    name: str,
    fingerprint: str,
    incident_key: str,
    state: CheckState,
    result: ProbeResult | None,
    at: float,
) -> dict[str, Any]:
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


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
