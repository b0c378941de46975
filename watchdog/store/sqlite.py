"""The SQLite side of the store: one state file, its connections, its lock, its health.

`SqliteFile` is what `Store` runs its transactions through. It owns the lock that makes the
store thread-safe: one connection serves every thread, and each caller holds the lock only
for its own few statements. WAL mode lets `pd-watchdog status` read beside a live runner.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator

from watchdog import statefile
from watchdog.store import lockfile
from watchdog.store.errors import StoreError, StoreLocked
from watchdog.store.sqlite_open import DB_NAME, open_readonly, open_writable, runtime_error


class SqliteFile:
    """The state file of one state_dir, open for writing (the runner) or reading (status)."""

    def __init__(self, state_dir: str, *, readonly: bool = False) -> None:
        self.state_dir = os.path.abspath(state_dir)
        self.path = os.path.join(self.state_dir, DB_NAME)
        self.readonly = readonly
        self.mutex = threading.Lock()  # one connection, many threads: see the module docstring
        self._lock_fd: int | None = None
        self._lane_indexes: set[int] = set()
        self._sync_lock = threading.Lock()
        self._sync_conn: sqlite3.Connection | None = None
        self._conn: sqlite3.Connection | None = None
        self._identity: statefile.Identity | None = None
        self._lock_identity: statefile.Identity | None = None
        self.warnings: list[str] = []  # permissions we could not narrow, for the runner to log
        if readonly:
            self._conn = open_readonly(self.state_dir, self.path)
        else:
            self._conn, self._identity = open_writable(self.state_dir, self.path, self.warnings)

    # -------------------------------------------------------------- statements

    @property
    def db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"state store {self.path} is closed")
        return self._conn

    @contextlib.contextmanager
    def locked(self, what: str) -> Iterator[None]:
        """Hold the lock for a few reads; a database error becomes a StoreError about `what`."""
        with self.mutex:
            try:
                yield
            except sqlite3.Error as exc:
                raise self.runtime_error(what, exc) from exc

    @contextlib.contextmanager
    def transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock: committed whole, or rolled back and raised."""
        if self.readonly:
            raise StoreError(f"cannot {what}: state store {self.path} is open read-only")
        with self.mutex:
            db = self.db
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self.runtime_error(what, exc) from exc
            try:
                yield db
                db.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self.runtime_error(what, exc) from exc
                raise

    def runtime_error(self, what: str, exc: sqlite3.Error) -> StoreError:
        return runtime_error(self.path, self.state_dir, what, exc)

    def ensure_lane_index(self, lanes: int) -> None:
        """Index `lane_hash % lanes` once per lane count, dropping those of old lane counts.

        Called with the lock held. A read-only store just scans (status never filters lanes).
        """
        if lanes in self._lane_indexes or self.readonly:
            return
        db = self.db
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

    def make_durable(self) -> None:
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
                    raise self.runtime_error("open a checkpoint connection", exc) from exc
            deadline = time.monotonic() + 2.0
            while True:
                try:
                    busy = self._sync_conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[0]
                except sqlite3.Error as exc:
                    raise self.runtime_error("checkpoint the outbox to disk", exc) from exc
                if not busy or time.monotonic() > deadline:
                    return
                time.sleep(0.005)  # another checkpoint is running; ours must cover our rows

    # ----------------------------------------------------------------- the run lock

    def take_run_lock(self) -> None:
        """See Store.lock."""
        if self.readonly:
            raise StoreError(f"read-only store for {self.state_dir} cannot take the run lock")
        if self._lock_fd is not None:
            return
        self._lock_fd, self._lock_identity = lockfile.take(self.state_dir, self.warnings)

    def try_lock(self) -> bool:
        """See Store.try_lock."""
        try:
            self.take_run_lock()
        except StoreLocked:
            return False
        return True

    def holds_lock(self) -> bool:
        """See Store.holds_lock."""
        return self._lock_fd is not None

    def lock_holder(self) -> str | None:
        """See Store.lock_holder: the pid in the lock file, while someone holds it."""
        if self._lock_fd is not None:
            return f"pid {os.getpid()}"
        pid = lockfile.holder(self.state_dir)
        return f"pid {pid}" if pid else None

    def relock(self) -> None:
        """See Store.relock."""
        lock_path = lockfile.lock_path(self.state_dir)
        if self._lock_fd is None or statefile.Identity.of(lock_path) == self._lock_identity:
            return
        old, self._lock_fd = self._lock_fd, None
        try:
            self.take_run_lock()
        except StoreError:
            self._lock_fd = old
            raise
        os.close(old)

    # ------------------------------------------------------------------ file health

    def file_problems(self) -> list[str]:
        """See Store.file_problems."""
        if self.readonly or self._conn is None:
            return []
        found = statefile.problems(self.path, self._identity)
        if self._lock_fd is not None:
            lock_path = lockfile.lock_path(self.state_dir)
            if statefile.Identity.of(lock_path) != self._lock_identity:
                found.append(f"lock file {lock_path} was deleted or replaced while running")
        return found

    def rebuild(self) -> None:
        """See Store.rebuild."""
        with self.mutex, self._sync_lock:
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
                    self._conn, self._identity = open_writable(
                        self.state_dir, self.path, self.warnings
                    )
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
                self.db.backup(target)
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

    def close(self) -> None:
        """See Store.close."""
        with self.mutex:
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
