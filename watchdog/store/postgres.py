"""The PostgreSQL side of the store: one connection, the group's lock on it, its health.

`PgDatabase` offers `Store` what `SqliteFile` does (db, locked, transaction, the run lock,
file_problems...), so every transaction of the store is the same on both. Its `db` is a
small adapter that runs tables.py's statements translated by pgsql.py.

Fencing by construction: the group's lock is a session-level advisory lock taken on the
very connection every write goes through. A leader whose connection is gone has lost the
lock with it (the server ends the session) and cannot commit anything either; this side
never reconnects (a new connection would hold no lock), it only reports the loss
(`file_problems`) and raises StoreError on every call, until the store is closed.

Writes are serialized as SQLite's BEGIN IMMEDIATE does (a transaction-level advisory lock
at BEGIN), so the read-then-write transactions (passive seq, silences) stay correct beside
the command line writing too.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from watchdog.dsn import Dsn
from watchdog.store import pgsql, schema
from watchdog.store.errors import StoreError, StoreLocked

DRIVER_MISSING = ("the PostgreSQL state needs the psycopg driver, which is not installed: "
                  "pip install 'pd-watchdog[postgresql]'")
VERSION_TABLE = "pd_watchdog_schema"
FLUSH_WAL = ("BEGIN; SET LOCAL synchronous_commit = on; INSERT INTO meta (name, value) "
             "VALUES ('durable_mark', now()::text) ON CONFLICT (name) DO UPDATE SET value = "
             "excluded.value; COMMIT")
APP_PREFIX = "pd-watchdog "


@dataclass(frozen=True)
class PgTarget:
    """Where a group's state lives: the URL, the lock's name, how soon a loss shows."""

    dsn: Dsn
    lock: str = "pd-watchdog"
    failover_after: float = 10.0
    member: str = ""  # shown to the others as the holder; default host:pid

    @property
    def member_name(self) -> str:
        return self.member or f"{socket.gethostname()}:{os.getpid()}"


class PgDb:
    """The DB-API face tables.py expects (execute, executemany), over a psycopg connection."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        if not params:  # as written: no placeholders to translate, no % to double
            return self.conn.execute(sql)
        return self.conn.execute(pgsql.statement(sql), params)

    def executemany(self, sql: str, rows: Sequence[Any]) -> Any:
        cursor = self.conn.cursor()
        cursor.executemany(pgsql.statement(sql), rows)
        return cursor


def _driver() -> Any:
    try:
        import psycopg
    except ImportError:
        raise StoreError(DRIVER_MISSING) from None
    return psycopg


class PgDatabase:
    """The group's database, open for the runner (writable) or for `status` (read-only)."""

    def __init__(self, target: PgTarget, state_dir: str, *, readonly: bool = False) -> None:
        self.psycopg = _driver()
        self.target = target
        self.state_dir = os.path.abspath(state_dir)
        self.path = str(target.dsn)  # redacted: it names the store in every message
        self.readonly = readonly
        self.warnings: list[str] = []
        self.mutex = threading.Lock()
        self._key = pgsql.lock_key(target.lock)
        self._holding = False
        self._lost: str | None = None
        self._lane_indexes: set[int] = set()
        self._undurable = False  # committed asynchronously since the last flush
        self._sync_lock = threading.Lock()
        self._sync_conn: Any = None  # make_durable's own connection (it holds no lock)
        self._conn: Any = self._connect()
        try:
            self._migrate()
        except BaseException:
            self._conn.close()
            raise

    # -------------------------------------------------------------- connection

    def _connect(self, purpose: str = "") -> Any:
        options = pgsql.connect_options(self.target.failover_after,
                                        APP_PREFIX + self.target.member_name + purpose,
                                        self.readonly)
        try:
            return self.psycopg.connect(self.target.dsn.text, autocommit=True, **options)
        except self.psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL at {self.path} "
                             f"({self._words(exc)}); check the URL, the server and that "
                             "this host may connect (pg_hba.conf)") from None

    def _migrate(self) -> None:
        """Bring the schema to SCHEMA_VERSION in one transaction, SQLite's steps translated."""
        conn = self._conn
        try:
            version = self._version()
            if version == schema.SCHEMA_VERSION:
                return
            self._check_version(version)
            if self.readonly:
                raise StoreError(f"no state yet at {self.path}: pd-watchdog has not run on "
                                 "this database" if version == 0 else
                                 f"the state at {self.path} is of an older schema "
                                 f"({version}); start the runner once to bring it up to date")
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", pgsql.MIGRATE_LOCK)
                conn.execute(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} "
                             "(version BIGINT NOT NULL)")
                version = self._version()
                self._check_version(version)
                for sql in schema.steps_after(version):
                    conn.execute(pgsql.ddl(sql))
                conn.execute(f"DELETE FROM {VERSION_TABLE}")
                conn.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES (%s)",
                             (schema.SCHEMA_VERSION,))
        except self.psycopg.Error as exc:
            raise StoreError(f"cannot set up the tables at {self.path} "
                             f"({self._words(exc)}); the user needs CREATE on the "
                             "database (or its schema) the first time") from None

    def _version(self) -> int:
        exists = self._conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                                    (VERSION_TABLE,)).fetchone()[0]
        if not exists:
            return 0
        row = self._conn.execute(f"SELECT max(version) FROM {VERSION_TABLE}").fetchone()
        return int(row[0] or 0)

    def _check_version(self, version: int) -> None:
        if version > schema.SCHEMA_VERSION:
            raise StoreError(
                f"the state at {self.path} was written by a newer pd-watchdog (schema "
                f"{version}, this one knows up to {schema.SCHEMA_VERSION}); run that newer "
                "version on every member of the group")

    def _words(self, exc: BaseException) -> str:
        """The driver's message, one line, the password taken out."""
        text = " ".join(str(exc).split()) or type(exc).__name__
        password = self.target.dsn.password
        return text.replace(password, "***") if password else text

    # -------------------------------------------------------------- statements

    @property
    def db(self) -> PgDb:
        if self._conn is None:
            raise StoreError(f"state store {self.path} is closed")
        if self._lost is not None:
            raise StoreError(self._lost_words())
        return PgDb(self._conn)

    @contextlib.contextmanager
    def locked(self, what: str) -> Iterator[None]:
        with self.mutex:
            try:
                yield
            except self.psycopg.Error as exc:
                raise self.runtime_error(what, exc) from None

    @contextlib.contextmanager
    def transaction(self, what: str) -> Iterator[PgDb]:
        """One write transaction: committed whole, or rolled back and raised."""
        if self.readonly:
            raise StoreError(f"cannot {what}: state store {self.path} is open read-only")
        with self.mutex:
            db = self.db
            try:
                # Pipelined: the statements go out without waiting for each answer, so a
                # transaction costs a round trip per value read back (an outbox id) plus
                # one, not one per statement: on a busy host each can wait for the server
                # to be scheduled, and the event loop waits with it.
                with self._conn.pipeline():
                    self._conn.execute("BEGIN")
                    self._conn.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                                       pgsql.WRITE_LOCK)
                    yield db
                    self._conn.execute("COMMIT")
                self._undurable = True
            except BaseException as exc:
                self._rollback()
                if isinstance(exc, self.psycopg.Error):
                    raise self.runtime_error(what, exc) from None
                raise

    def _rollback(self) -> None:
        with contextlib.suppress(self.psycopg.Error):
            self._conn.execute("ROLLBACK")

    def runtime_error(self, what: str, exc: BaseException) -> StoreError:
        """Why `what` failed; a failure of the connection marks it lost for good."""
        words = self._words(exc)
        if self._conn is None or self._conn.broken or self._conn.closed or isinstance(
                exc, self.psycopg.OperationalError):
            self._lost = self._lost or words
            return StoreError(f"could not {what}: {self._lost_words()}")
        return StoreError(f"could not {what} in PostgreSQL at {self.path} ({words})")

    def _lost_words(self) -> str:
        return f"lost the connection to PostgreSQL at {self.path} ({self._lost})"

    def ensure_lane_index(self, lanes: int) -> None:
        """Index `lane_hash % lanes` once per lane count, as the SQLite side does."""
        if lanes in self._lane_indexes or self.readonly:
            return
        wanted = f"outbox_lane_{lanes}"
        db = self.db
        names = [row[0] for row in db.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'outbox' "
            "AND indexname LIKE 'outbox_lane_%' AND schemaname = current_schema()")]
        for name in names:
            if name != wanted and name.removeprefix("outbox_lane_").isdigit():
                db.execute(f"DROP INDEX IF EXISTS {name}")
        db.execute(f"CREATE INDEX IF NOT EXISTS {wanted} ON outbox ((lane_hash % {lanes}))")
        self._lane_indexes = {lanes}

    def make_durable(self) -> None:
        """Flush the WAL of every commit so far, so each row just read survives a crash of
        the server before it is sent (and reaches a synchronous standby).

        As SQLite's synchronous=NORMAL, the session commits asynchronously
        (synchronous_commit=off: no WAL flush per record(), ~9 ms each on this disk); a
        commit with synchronous_commit on flushes the WAL up to it, and so every earlier
        commit of the server. Only when something was committed since the last flush, and
        on a second connection (as SQLite's checkpoint), so record() does not wait behind
        the fsync. That connection writes nothing but meta's durable_mark: it holds no lock
        and records no state, so the fencing of the main connection stands."""
        if not self._undurable or self.readonly:
            return
        with self._sync_lock:  # on a connection of its own: record() is not held up
            self._undurable = False  # a commit from now on sets it again
            try:
                if self._sync_conn is None:
                    self._sync_conn = self._connect(" (flush)")
                self._sync_conn.execute(FLUSH_WAL)
            except (self.psycopg.Error, StoreError) as exc:
                self._undurable = True
                if self._sync_conn is not None:
                    with contextlib.suppress(Exception):
                        self._sync_conn.close()
                self._sync_conn = None
                raise StoreError(f"could not flush the outbox to disk in PostgreSQL at "
                                 f"{self.path} ({self._words(exc)})") from None

    # ----------------------------------------------------------------- the lock

    def try_lock(self) -> bool:
        """See Store.try_lock."""
        if self.readonly:
            raise StoreError(f"read-only store for {self.path} cannot take the group's lock")
        if self._holding:
            return True
        with self.locked("take the group's lock"):
            got = bool(self.db.execute("SELECT pg_try_advisory_lock(?)",
                                       (self._key,)).fetchone()[0])
        self._holding = got
        return got

    def take_run_lock(self) -> None:
        """See Store.lock: the group's lock now, or StoreLocked naming its holder."""
        if not self.try_lock():
            holder = self.lock_holder() or "another session"
            raise StoreLocked(f"the group {self.target.lock!r} at {self.path} is led by "
                              f"{holder}; this member waits for it (or use another lock "
                              "name)")

    def holds_lock(self) -> bool:
        """See Store.holds_lock (one round trip: the server's word, not our memory)."""
        if not self._holding:
            return False
        classid, objid = pgsql.key_halves(self._key)
        with self.locked("check the group's lock"):
            row = self.db.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND pid = pg_backend_pid() AND classid = ? AND objid = ? AND objsubid = 1",
                (classid, objid)).fetchone()
        return bool(row[0])

    def lock_holder(self) -> str | None:
        """See Store.lock_holder."""
        classid, objid = pgsql.key_halves(self._key)
        with self.locked("see who holds the group's lock"):
            row = self.db.execute(
                "SELECT a.application_name, l.pid FROM pg_locks l LEFT JOIN "
                "pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND "
                "l.granted AND l.classid = ? AND l.objid = ? AND l.objsubid = 1 "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = "
                "current_database()) LIMIT 1", (classid, objid)).fetchone()
        if row is None:
            return None
        name, pid = row
        if name and name.startswith(APP_PREFIX):
            return name[len(APP_PREFIX):]
        return f"server process {pid}"

    def relock(self) -> None:
        """Nothing to take again: the lock lives on the connection, not in a file."""

    # ------------------------------------------------------------------ health

    def file_problems(self) -> list[str]:
        """See Store.file_problems: no round trip, the connection's state and the last
        statement's failure."""
        if self._conn is None:
            return []
        if self._lost is None and (self._conn.broken or self._conn.closed):
            self._lost = "the connection was closed"
        return [self._lost_words()] if self._lost is not None else []

    def rebuild(self) -> None:
        """A lost connection cannot be mended in place: its lock is gone with it."""
        raise StoreError(f"{self._lost_words() if self._lost else 'the connection'} cannot "
                         "be taken up again in place: the group's lock went with it; this "
                         "runner stops recording and sending until it leads again")

    def close(self) -> None:
        with self.mutex:
            conn, self._conn = self._conn, None
            self._holding = False
            with self._sync_lock:
                sync, self._sync_conn = self._sync_conn, None
            for each in (conn, sync):
                if each is not None:
                    with contextlib.suppress(Exception):
                        each.close()
