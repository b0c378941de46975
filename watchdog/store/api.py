"""`Store`: the store's public face, and what goes into each of its transactions.

Each method here is one transaction (or one locked read) through the connection side
(`SqliteFile`, or `PgDatabase` for a group's PostgreSQL), made of statements from `tables`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import Any

from watchdog.holds import Silence
from watchdog.model import CheckState, Event, ProbeResult
from watchdog.reports import Record, Report, fold
from watchdog.store import passive, remediations, silences, tables
from watchdog.store.records import (
    DEAD,
    DRY_RUN,
    SENT,
    Deferred,
    OutboxItem,
    RemediationRun,
    StoredCheck,
)
from watchdog.store.sqlite import SqliteFile

KEEP_ENDED_SILENCES = 7 * 86400.0  # for `pd-watchdog silences --all`
SQLITE = "sqlite"
POSTGRESQL = "postgresql"


class Store:
    """State and outbox: SQLite in one state_dir, or a group's PostgreSQL database.

    `Store(state_dir)` is the SQLite file; `Store(state_dir, postgresql=PgTarget(...))`
    (or `Store.for_config(config)`) the database. The methods and their transactions are
    the same on both.
    """

    def __init__(self, state_dir: str, *, readonly: bool = False,
                 postgresql: Any | None = None) -> None:
        if postgresql is not None:
            from watchdog.store.postgres import PgDatabase

            self._file: Any = PgDatabase(postgresql, state_dir, readonly=readonly)
            self.backend = POSTGRESQL
        else:
            self._file = SqliteFile(state_dir, readonly=readonly)
            self.backend = SQLITE
        self.state_dir = self._file.state_dir
        self.path = self._file.path  # the file, or the URL without its password
        self.readonly = readonly

    @classmethod
    def for_config(cls, config: Any, *, readonly: bool = False, member: str = "") -> Store:
        """The store a loaded config names: its `state:` PostgreSQL, else state_dir's SQLite.

        `member` names this runner to the others of its group (default host:pid)."""
        return cls(config.state_dir, readonly=readonly, postgresql=target_of(config, member))

    @property
    def warnings(self) -> list[str]:
        """Permissions we could not narrow, for the runner to log."""
        return self._file.warnings

    # ------------------------------------------------------------------ locking

    def lock(self) -> None:
        """Take the run lock now, or raise StoreLocked naming its holder.

        SQLite: flock on state_dir's lock file, released by the kernel when the process
        dies (even kill -9), so a stale lock file never blocks a restart. PostgreSQL: the
        group's advisory lock on this store's connection (see try_lock)."""
        self._file.take_run_lock()

    def try_lock(self) -> bool:
        """Take the run lock if it is free: True when this store holds it (now or already).

        On PostgreSQL it is the group's session-level advisory lock (pg_try_advisory_lock
        on a key derived from `lock`), taken on the same connection every write goes
        through: a leader whose connection is gone has lost it, and can commit nothing."""
        return self._file.try_lock()

    def wait_for_lock(self, stop: threading.Event, poll: float = 0.5) -> bool:
        """Block until the run lock is ours (True) or `stop` is set (False), trying every
        `poll` seconds: a waiting member stops at once on SIGTERM. Raises StoreError when
        the store fails meanwhile (e.g. the connection to PostgreSQL is lost)."""
        while not stop.is_set():
            if self.try_lock():
                return True
            stop.wait(poll)
        return False

    def holds_lock(self) -> bool:
        """Whether this store still holds the run lock. PostgreSQL: one round trip asking
        the server (pg_locks), so a session the server ended shows; StoreError if the
        connection is gone."""
        return self._file.holds_lock()

    def lock_holder(self) -> str | None:
        """Who holds the run lock, in words ("host:pid" of a member, "pid N" of a SQLite
        runner), or None when nobody does."""
        return self._file.lock_holder()

    def relock(self) -> None:
        """Take the lock again on a lock file that was deleted or replaced (else a second
        runner could start on this state_dir beside us). Raises StoreLocked if one did.
        Nothing to do on PostgreSQL (the lock is the connection's)."""
        self._file.relock()

    # ------------------------------------------------------------ file health

    def file_problems(self) -> list[str]:
        """What happened to our files since they were opened (deleted, replaced, read-only);
        on PostgreSQL, "lost the connection to PostgreSQL ..." once it is gone.

        Cheap (a few stat calls; no round trip on PostgreSQL): the runner asks every second."""
        return self._file.file_problems()

    def rebuild(self) -> None:
        """Write the open database out again as a new file at its path, and use that.

        For a state file deleted, replaced or made read-only under a running runner: the
        open connection still reads everything (from the unlinked file, or through its open
        descriptor), so nothing is lost. A file someone put in its place is moved aside, not
        overwritten. Raises StoreError when the folder cannot take a new file.
        """
        self._file.rebuild()

    # ------------------------------------------------------------------- checks

    def load_checks(self) -> dict[str, StoredCheck]:
        """Every remembered check by name, as the runner needs it after a restart."""
        with self._locked("read checks"):
            rows = tables.check_rows(self._db)
        return tables.decode_checks(rows)

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
        row = tables.check_row(name, fingerprint, incident_key, state, result, at)
        with self._transaction("record check " + repr(name)) as db:
            db.execute(tables.UPSERT_CHECK, row)
            return self._append(db, events)

    def record_results(self, rows: Sequence[tuple[str, ProbeResult, float]]) -> None:
        """Save many checks' latest results, (name, result, at) each, in one transaction.

        For results that changed no state, which the runner batches (one transaction a
        second instead of one per probe): the stored state is already right, so only
        last_result and last_at are written."""
        if not rows:
            return
        with self._transaction(f"record {len(rows)} results") as db:
            tables.update_results(db, rows)

    def forget(self, name: str, events: Sequence[Event]) -> list[int]:
        """Drop a removed check and queue its last events (its resolve), atomically."""
        with self._transaction("forget check " + repr(name)) as db:
            tables.delete_check(db, name)
            return self._append(db, events)

    def replay(self, changes: Sequence[Deferred]) -> None:
        """Write state changes in their order, in one transaction: those kept in memory
        while the store failed, or many new ones at once (Recorder.record_many)."""
        if not changes:
            return
        with self._transaction(f"record {len(changes)} changes kept in memory") as db:
            for change in changes:
                if change.state is None:
                    tables.delete_check(db, change.name)
                else:
                    db.execute(tables.UPSERT_CHECK, tables.check_row(
                        change.name, change.fingerprint, change.incident_key, change.state,
                        change.result, change.at,
                    ))
                self._append(db, change.queue)
                for action in change.sent:
                    tables.count_sent(db, action)
                for action in change.dry_run:
                    tables.count_sent(db, action, DRY_RUN)
                for event, reason in change.dead:
                    (item_id,) = self._append(db, [event])
                    tables.move_to_dead_letters(db, item_id, reason)

    def queue(self, events: Sequence[Event], meta: dict[str, str] | None = None) -> list[int]:
        """Queue events of no check (change events) with the meta that says they were
        queued, atomically: a crash leaves both or neither. Returns the outbox ids."""
        with self._transaction(f"queue {len(events)} events") as db:
            for name, value in (meta or {}).items():
                tables.set_meta(db, name, value)
            return self._append(db, events)

    def get_meta(self, name: str) -> str | None:
        """A small fact about this state (e.g. where events were last delivered)."""
        with self._locked(f"read {name}"):
            return tables.get_meta(self._db, name)

    def set_meta(self, name: str, value: str) -> None:
        with self._transaction(f"write {name}") as db:
            tables.set_meta(db, name, value)

    # ------------------------------------------------------------- remediations

    def remediation_started(self, check: str, ran_at: float, forget_before: float) -> None:
        """Count a run before it starts (a runner that dies in it still counted it); drop
        runs that started before `forget_before` (no window reaches back that far)."""
        with self._transaction("record a remediation") as db:
            remediations.insert(db, check, ran_at)
            remediations.prune(db, forget_before)

    def remediation_finished(self, run: RemediationRun) -> None:
        with self._transaction("record a remediation's end") as db:
            remediations.finish(db, run)

    def remediations(self, since: float) -> list[RemediationRun]:
        """Runs started at `since` or later, oldest first."""
        with self._locked("read remediations"):
            return remediations.select(self._db, since)

    # ----------------------------------------------------------------- silences

    def add_silence(self, silence: Silence) -> None:
        with self._transaction("add a silence") as db:
            silences.insert(db, silence)
            silences.forget_ended(db, silence.created_at - KEEP_ENDED_SILENCES)

    def silences(self, now: float | None, since: float | None = None) -> list[Silence]:
        """Silences active at `now` (None: any) that had not ended before `since`."""
        with self._locked("read silences"):
            return silences.select(self._db, now, since)

    def end_silences(self, ids: Sequence[str] | None, now: float) -> list[str]:
        """End these active silences (None: all of them) now; the ids that were ended."""
        with self._transaction("end silences") as db:
            return silences.end(db, ids, now)

    # ------------------------------------------------------------------ passive

    def report(self, name: str, report: Report) -> Record:
        """Fold a report into the passive check's record, in one transaction; the record."""
        with self._transaction(f"record a {report.kind} report of {name!r}") as db:
            record = fold(passive.select(db, name), report)
            passive.write(db, name, record)
        return record

    def passive_records(self, since: int = 0) -> list[tuple[str, Record]]:
        """The passive records written after seq `since` (0: all), oldest write first."""
        with self._locked("read passive reports"):
            return passive.changed(self._db, since)

    def passive_seen(self, names: Sequence[str], now: float) -> None:
        """Note `now` as when these passive checks were first seen, unless known already."""
        if names:
            with self._transaction("note new passive checks") as db:
                passive.seen(db, names, now)

    def _append(self, db: Any, events: Sequence[Event]) -> list[int]:
        """Queue events inside the caller's transaction (a separate method so tests can fail it)."""
        return tables.append_events(db, events)

    # ------------------------------------------------------------------- outbox

    def pending(
        self, limit: int = 100, *, lane: int | None = None, lanes: int = 1
    ) -> list[OutboxItem]:
        """The oldest queued events (by id), optionally only those whose key hashes to `lane`."""
        sql, params = tables.pending_query(limit, lane, lanes)
        with self._locked("read outbox"):
            if lane is not None and lanes > 1:
                self._file.ensure_lane_index(int(lanes))
            rows = self._db.execute(sql, params).fetchall()
        if rows and not self.readonly:
            self._file.make_durable()
        items = []
        for row in rows:
            try:
                items.append(tables.outbox_item(row))
            except (ValueError, TypeError) as exc:
                # Written by a different version or damaged: park it rather than stall the lane.
                self.dead_letter(row[0], f"undecodable outbox row: {exc}")
        return items

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
            tables.settle(db, outcomes)

    def note_failure(self, item_id: int, error: str) -> None:
        """A delivery attempt failed and will be retried; remember how often and why."""
        with self._transaction(f"note failure of outbox item {item_id}") as db:
            tables.note_failure(db, item_id, error)

    def dead_letter(self, item_id: int, reason: str) -> None:
        """PagerDuty refused it for good: move it out of the outbox, keeping it for `status`."""
        self.settle([(item_id, DEAD, reason)])

    def outbox_stats(self, now: float) -> dict[str, Any]:
        """Counts for `status` and metrics."""
        with self._locked("read outbox stats"):
            counts = tables.outbox_counts(self._db)
        return tables.outbox_stats(now, *counts)

    def dead_letters(self, limit: int | None = 50) -> list[dict[str, Any]]:
        """The most recent dead letters first: id, event (dict), created_at, failed_at, reason."""
        with self._locked("read dead letters"):
            rows = tables.dead_letter_rows(self._db, limit)
        return tables.decode_dead_letters(rows)

    def requeue_dead_letters(self, ids: Sequence[int]) -> list[int]:
        """Put dead letters back into the outbox at their old place, and return their ids.

        An item keeps its id (outbox ids are never reused), so it goes out in its original
        order relative to every other event of its key still queued."""
        with self._transaction(f"re-queue {len(ids)} dead letters") as db:
            return tables.requeue_dead_letters(db, ids)

    def drop_dead_letters(self, ids: Sequence[int]) -> list[int]:
        """Forget dead letters for good; returns the ids that were there."""
        with self._transaction(f"drop {len(ids)} dead letters") as db:
            return tables.drop_dead_letters(db, ids)

    # -------------------------------------------------------------------- close

    def close(self) -> None:
        """Close the database and release the run lock. Safe to call twice."""
        self._file.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ helpers

    @property
    def _db(self) -> Any:
        return self._file.db

    def _locked(self, what: str) -> contextlib.AbstractContextManager[None]:
        return self._file.locked(what)

    def _transaction(self, what: str) -> contextlib.AbstractContextManager[Any]:
        return self._file.transaction(what)


def target_of(config: Any, member: str = "") -> Any | None:
    """The PgTarget of a config's `state:` section, or None when its state is SQLite."""
    state = getattr(config.settings, "state", None)
    if state is None or state.postgresql is None:
        return None
    from watchdog.store.postgres import PgTarget

    return PgTarget(state.postgresql, state.lock, state.failover_after, member)
