"""The store is the promise's memory: what it says was saved must come back, all or nothing."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from stores import SQLITE, Place
from watchdog.model import CheckState, Event, ProbeResult
from watchdog.store import SCHEMA_VERSION, Store, StoreError, StoreLocked, schema

DOWN = CheckState(failures=3, triggered=True, severity="critical")
UP = CheckState(passes=2)


def trigger(key: str = "web/http", summary: str = "web down") -> Event:
    return Event("trigger", key, "web", summary, "critical", "host1", {"url": "http://x"})


def resolve(key: str = "web/http") -> Event:
    return Event("resolve", key, "web", "web up", "critical", "host1")


# The tables of schema version 1, as the first release wrote them.
V1_TABLES = (
    "CREATE TABLE checks (name TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, incident_key "
    "TEXT NOT NULL, state TEXT NOT NULL, last_result TEXT, last_at REAL, triggered_since "
    "REAL);"
    "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, lane_hash INTEGER NOT NULL,"
    " action TEXT NOT NULL, incident_key TEXT NOT NULL, event TEXT NOT NULL, created_at "
    "REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT);"
    "CREATE TABLE dead_letters (id INTEGER PRIMARY KEY, event TEXT NOT NULL, created_at REAL"
    " NOT NULL, failed_at REAL NOT NULL, reason TEXT NOT NULL, attempts INTEGER NOT NULL "
    "DEFAULT 0);"
    "CREATE TABLE stats (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);"
)


@pytest.fixture
def store(place: Place) -> Iterator[Store]:
    """A store on each backend in turn (conftest's `place`): the same tests for both."""
    s = place.open()
    yield s
    s.close()


def test_first_start_creates_private_dir_and_schema(tmp_path: Path) -> None:
    """state_dir may hold incident details: only its owner should read it."""
    state_dir = tmp_path / "a" / "b"
    Store(str(state_dir)).close()
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    conn = sqlite3.connect(state_dir / "state.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_a_version_1_state_file_is_migrated_in_place(tmp_path: Path) -> None:
    """A state file of the previous release keeps its incidents and gains failing_since."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    conn = sqlite3.connect(state_dir / "state.db")
    conn.executescript(
        V1_TABLES
        + "INSERT INTO checks VALUES ('web', 'fp', 'key', "
        "'{\"failures\": 3, \"triggered\": true, \"severity\": \"critical\"}', NULL, 5.0, 5.0);"
        "PRAGMA user_version=1;"
    )
    conn.close()
    with Store(str(state_dir)) as store:
        row = store.load_checks()["web"]
        assert row.state.triggered and row.triggered_since == 5.0 and row.failing_since is None
        store.record("web", "fp", "key", CheckState(failures=4, triggered=True), None, 9.0, [])
        assert store.load_checks()["web"].failing_since == 9.0


def _tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(path)
    names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    tables = {name: conn.execute(f"PRAGMA table_info({name})").fetchall() for name in names}
    conn.close()
    return tables


def test_a_migrated_state_file_has_the_tables_of_a_new_one(tmp_path: Path) -> None:
    """Both run the steps of schema.VERSIONS, so an upgrade never lacks what a new file has."""
    Store(str(tmp_path / "new")).close()
    (tmp_path / "old").mkdir()
    conn = sqlite3.connect(tmp_path / "old" / "state.db")
    conn.executescript(V1_TABLES + "PRAGMA user_version=1;")
    conn.close()
    Store(str(tmp_path / "old")).close()
    new, old = _tables(tmp_path / "new" / "state.db"), _tables(tmp_path / "old" / "state.db")
    assert new == old and "failing_since" in [column[1] for column in new["checks"]]


def test_schema_versions_run_from_1_without_gaps() -> None:
    """A new version is the next number (steps_after walks every number up to the newest)."""
    assert sorted(schema.VERSIONS) == list(range(1, SCHEMA_VERSION + 1))
    assert schema.steps_after(SCHEMA_VERSION) == []
    assert schema.steps_after(SCHEMA_VERSION - 1) == list(schema.VERSIONS[SCHEMA_VERSION])
    assert schema.steps_after(1) == [s for v in range(2, SCHEMA_VERSION + 1)
                                     for s in schema.VERSIONS[v]]


def test_record_round_trip_survives_reopen(place: Place) -> None:
    s = place.open()
    result = ProbeResult(False, "HTTP 500", "error", {"status": 500}, 0.25)
    ids = s.record("web", "fp1", "web/http", DOWN, result, 100.0, [trigger()])
    assert ids == [1]
    s.close()
    s = place.open()
    check = s.load_checks()["web"]
    assert check.fingerprint == "fp1" and check.incident_key == "web/http"
    assert check.state == DOWN
    assert check.last_result == {
        "ok": False,
        "summary": "HTTP 500",
        "severity": "error",
        "details": {"status": 500},
        "latency": 0.25,
    }
    assert check.last_at == 100.0 and check.triggered_since == 100.0
    (item,) = s.pending()
    assert item.id == 1 and item.event == trigger() and item.attempts == 0
    assert item.last_error is None and item.created_at > 0
    s.close()


def test_triggered_since_follows_the_incident(store: Store) -> None:
    """Set when the incident opens, kept while it stays open, cleared when it resolves."""
    store.record("web", "fp", "k", CheckState(failures=1), None, 10.0, [])
    assert store.load_checks()["web"].triggered_since is None
    store.record("web", "fp", "k", DOWN, None, 20.0, [trigger()])
    store.record("web", "fp", "k", DOWN, None, 30.0, [])
    assert store.load_checks()["web"].triggered_since == 20.0
    store.record("web", "fp", "k", UP, None, 40.0, [resolve()])
    assert store.load_checks()["web"].triggered_since is None
    store.record("web", "fp", "k", DOWN, None, 50.0, [trigger()])
    assert store.load_checks()["web"].triggered_since == 50.0


def test_record_without_result_keeps_last_result(store: Store) -> None:
    """A state-only write (e.g. a reload) must not erase what the probe last saw."""
    store.record("web", "fp", "k", DOWN, ProbeResult(False, "boom"), 10.0, [])
    store.record("web", "fp2", "k", DOWN, None, 20.0, [])
    check = store.load_checks()["web"]
    assert check.last_result is not None and check.last_result["summary"] == "boom"
    assert check.last_at == 10.0 and check.fingerprint == "fp2"


def test_record_results_writes_only_the_latest_result_in_one_go(store: Store) -> None:
    failing = CheckState(failures=1)
    store.record("a", "fp", "k-a", failing, ProbeResult(False, "down"), 1.0, [])
    store.record("b", "fp", "k-b", CheckState(), None, 1.0, [])
    store.record_results(
        [("a", ProbeResult(False, "still down"), 2.0), ("b", ProbeResult(True, "fine"), 3.0),
         ("gone", ProbeResult(True, "x"), 4.0)]  # a removed check: nothing to update
    )
    rows = store.load_checks()
    assert rows["a"].last_result["summary"] == "still down" and rows["a"].last_at == 2.0
    assert rows["a"].state == failing  # the state is left as it was
    assert rows["b"].last_result["ok"] and rows["b"].last_at == 3.0
    assert "gone" not in rows
    store.record_results([])


def test_forget_deletes_check_and_queues_resolve(store: Store) -> None:
    store.record("web", "fp", "web/http", DOWN, None, 1.0, [trigger()])
    ids = store.forget("web", [resolve()])
    assert ids == [2]
    assert store.load_checks() == {}
    assert [i.event.action for i in store.pending()] == ["trigger", "resolve"]


class FailingAppend(Store):
    """Fails after the check upsert, inside the same transaction (as a crash or full disk)."""

    armed = False
    after = 0

    def _append(self, db: Any, events: Sequence[Event]) -> list[int]:
        if not self.armed:
            return super()._append(db, events)
        ids = super()._append(db, events[: self.after])
        raise OSError(f"injected failure after {len(ids)} event(s)")


@pytest.mark.parametrize("after", [0, 1])
def test_record_is_one_transaction(place: Place, after: int) -> None:
    """A state change without its event (or the reverse) would lose a page: neither is kept."""
    store = place.open(cls=FailingAppend)
    store.record("web", "fp", "web/http", UP, None, 1.0, [])
    store.armed, store.after = True, after
    with pytest.raises(OSError, match="injected"):
        store.record("web", "fp", "web/http", DOWN, None, 2.0, [trigger(), trigger("other")])
    with pytest.raises(OSError, match="injected"):
        store.forget("web", [resolve()])
    store.close()
    reader = place.open(readonly=True)  # a fresh connection sees only committed data
    assert reader.load_checks()["web"].state == UP
    assert reader.pending() == []
    reader.close()


def test_record_rolls_back_on_unserialisable_event(store: Store) -> None:
    """A bad event must not leave the state change behind it committed."""
    bad = Event("trigger", "k", "web", "x", "critical", "h", {"obj": object()})
    with pytest.raises(TypeError):
        store.record("web", "fp", "k", DOWN, None, 1.0, [trigger(), bad])
    assert store.load_checks() == {} and store.pending() == []
    store.record("web", "fp", "k", DOWN, None, 1.0, [trigger()])  # the store still works
    assert len(store.pending()) == 1


def test_outbox_lifecycle_and_stats(place: Place) -> None:
    store = place.open()
    events = [trigger("a"), resolve("a"), trigger("b")]
    ids = store.record("web", "fp", "k", DOWN, None, 1.0, events)
    assert [i.id for i in store.pending()] == ids == [1, 2, 3]
    store.note_failure(1, "HTTP 500")
    store.note_failure(1, "HTTP 502")
    first = store.pending(limit=1)[0]
    assert first.attempts == 2 and first.last_error == "HTTP 502"
    store.mark_sent(1)
    store.mark_sent(1)  # a second mark (resend after a crash) counts once
    store.mark_sent(2)
    store.dead_letter(3, "summary is too long")
    stats = store.outbox_stats(time.time())
    assert stats == {
        "pending": 0,
        "oldest_pending_age": None,
        "dead_letters": 1,
        "sent": {"trigger": 1, "resolve": 1},
        "dry_run": {"trigger": 0, "resolve": 0},
    }
    (dead,) = store.dead_letters()
    assert dead["id"] == 3 and dead["reason"] == "summary is too long"
    assert dead["event"] == trigger("b").to_dict() and dead["failed_at"] >= dead["created_at"]
    store.close()
    store = place.open()  # the counters are persistent
    assert store.outbox_stats(time.time())["sent"] == {"trigger": 1, "resolve": 1}
    ids = store.record("web", "fp", "k", DOWN, None, 1.0, [trigger("c")])
    assert ids == [4]  # ids are never reused, even after the outbox emptied
    created = store.pending()[0].created_at
    stats = store.outbox_stats(created + 7.5)
    assert stats["pending"] == 1 and stats["oldest_pending_age"] == pytest.approx(7.5)
    store.close()


def test_pending_makes_its_rows_durable_first(tmp_path: Path) -> None:
    """With synchronous=NORMAL a power cut can undo recent commits; an event handed to the
    sender must not be one of them, or PagerDuty gets an incident the runner forgot."""
    store = Store(str(tmp_path / "live"))
    store.record("web", "fp", "k", DOWN, None, 1.0, [trigger("k")])
    store.pending()
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "state.db").write_bytes((tmp_path / "live" / "state.db").read_bytes())  # no -wal
    store.close()
    conn = sqlite3.connect(copy / "state.db")
    assert conn.execute("SELECT incident_key FROM outbox").fetchall() == [("k",)]
    conn.close()


def test_lanes_partition_keys_in_id_order_by_index(store: Store) -> None:
    """Each key lands in exactly one lane (a stable crc32), oldest first, via an index."""
    keys = [f"check-{i}" for i in range(40)]
    for key in keys:
        store.record(key, "fp", key, DOWN, None, 1.0, [trigger(key), resolve(key)])
    everything = store.pending(limit=1000)
    seen: list[int] = []
    for lane in range(4):
        items = store.pending(limit=1000, lane=lane, lanes=4)
        ids = [i.id for i in items]
        assert ids == sorted(ids)
        assert all(zlib.crc32(i.event.incident_key.encode()) % 4 == lane for i in items)
        seen += ids
    assert sorted(seen) == [i.id for i in everything]
    if store.backend == SQLITE:
        plan = store._db.execute(  # noqa: SLF001 - checking the query plan is the point
            "EXPLAIN QUERY PLAN SELECT id FROM outbox WHERE lane_hash % 4 = 1 ORDER BY id "
            "LIMIT 5").fetchall()
        assert "USING INDEX outbox_lane_4" in str(plan) and "TEMP B-TREE" not in str(plan)
    else:  # too few rows for the planner to prefer it: that it exists is the point
        indexes = store._db.execute(  # noqa: SLF001
            "SELECT indexname FROM pg_indexes WHERE tablename = 'outbox'").fetchall()
        assert ("outbox_lane_4",) in indexes
    assert len(store.pending(limit=3, lane=0, lanes=4)) == 3
    with pytest.raises(ValueError):
        store.pending(lane=4, lanes=4)


def test_concurrent_record_and_drain(store: Store) -> None:
    """Probe threads write while sender threads drain through the one shared connection."""
    errors: list[BaseException] = []

    def probe(n: int) -> None:
        try:
            for i in range(50):
                key = f"c{n}-{i}"
                store.record(key, "fp", key, DOWN, ProbeResult(False, "x"), 1.0, [trigger(key)])
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    def drain(lane: int) -> None:
        try:
            for _ in range(200):
                for item in store.pending(10, lane=lane, lanes=2):
                    store.mark_sent(item.id)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=probe, args=(n,)) for n in range(4)]
    threads += [threading.Thread(target=drain, args=(lane,)) for lane in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    stats = store.outbox_stats(time.time())
    assert stats["pending"] + stats["sent"]["trigger"] == 200
    assert len(store.load_checks()) == 200


# ----------------------------------------------------------------- the run lock

HOLDER = """
import sys, time
from watchdog.store import Store
store = Store(sys.argv[1])
store.lock()
print("locked", flush=True)
time.sleep(60)
"""


def test_lock_refuses_second_process_and_is_freed_by_kill(tmp_path: Path) -> None:
    """Two runners on one state_dir would double-page; a dead one must not block a restart."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        second = Store(str(tmp_path))
        expected = rf"used by another pd-watchdog run \(pid {holder.pid}\)"
        with pytest.raises(StoreLocked, match=expected):
            second.lock()
        holder.kill()  # kill -9: no cleanup runs, the kernel drops the flock
        holder.wait(5)
        second.lock()
        assert (tmp_path / "lock").read_text().strip() == str(os.getpid())
        second.close()
    finally:
        holder.kill()
        holder.wait(5)


def test_lock_refuses_second_store_in_same_process(tmp_path: Path) -> None:
    first = Store(str(tmp_path))
    first.lock()
    first.lock()  # idempotent
    second = Store(str(tmp_path))
    with pytest.raises(StoreLocked, match="stop it or use another state_dir"):
        second.lock()
    first.close()  # close releases it
    second.lock()
    second.close()


# ------------------------------------------------------------------- read-only


def test_readonly_beside_locked_writer_does_not_block(tmp_path: Path) -> None:
    """`pd-watchdog status` must answer while the runner holds the lock and even mid-write."""
    live = Store(str(tmp_path))
    live.lock()
    live.record("web", "fp", "k", DOWN, None, 1.0, [trigger("k")])
    live._db.execute("BEGIN IMMEDIATE")  # noqa: SLF001 - hold a write transaction open
    live._db.execute("DELETE FROM outbox")  # noqa: SLF001 - uncommitted
    started = time.monotonic()
    reader = Store(str(tmp_path), readonly=True)
    assert list(reader.load_checks()) == ["web"]
    assert reader.outbox_stats(time.time())["pending"] == 1  # sees only committed data
    assert time.monotonic() - started < 2
    with pytest.raises(StoreError, match="read-only"):
        reader.record("x", "fp", "k", DOWN, None, 1.0, [])
    with pytest.raises(StoreError, match="cannot take the run lock"):
        reader.lock()
    live._db.execute("ROLLBACK")  # noqa: SLF001
    live.close()
    assert reader.pending()[0].event.incident_key == "k"  # still works after the runner left
    reader.close()
    again = Store(str(tmp_path), readonly=True)  # and opens after it left
    assert again.outbox_stats(time.time())["pending"] == 1
    again.close()


def test_readonly_without_state(tmp_path: Path) -> None:
    """status before the first run explains itself and creates nothing."""
    missing = tmp_path / "nothing"
    with pytest.raises(StoreError, match=f"no state yet at {missing}/state.db"):
        Store(str(missing), readonly=True)
    assert not missing.exists()


# ----------------------------------------------------------- broken state files


def test_garbage_file_is_refused_with_instructions(tmp_path: Path) -> None:
    """Never a silent reset: that would forget open incidents and leave them open forever."""
    db = tmp_path / "state.db"
    db.write_bytes(b"this is not sqlite " * 500)
    for readonly in (False, True):
        with pytest.raises(StoreError) as info:
            Store(str(tmp_path), readonly=readonly)
        message = str(info.value)
        assert f"state file {db} is not a valid database" in message
        assert f"mv {db} {db}.bad" in message and "resolving by hand" in message
    assert db.read_bytes().startswith(b"this is not sqlite")  # untouched


def test_damaged_pages_are_caught_by_quick_check(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    for i in range(300):
        store.record(f"c{i}", "fp", f"k{i}", DOWN, ProbeResult(False, "x" * 200), 1.0, [])
    store.close()
    db = tmp_path / "state.db"
    data = bytearray(db.read_bytes())
    page = 4096
    assert len(data) > 4 * page
    data[2 * page : 4 * page] = b"\xff" * (2 * page)  # wreck two b-tree pages
    db.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=rf"state file {db} is (damaged|not a valid)") as info:
        Store(str(tmp_path))
    assert f"mv {db} {db}.bad" in str(info.value)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """An older binary must not scribble over a newer version's state."""
    Store(str(tmp_path)).close()
    conn = sqlite3.connect(tmp_path / "state.db")
    conn.execute("PRAGMA user_version=99")
    conn.close()
    for readonly in (False, True):
        with pytest.raises(StoreError, match=r"newer pd-watchdog \(schema 99"):
            Store(str(tmp_path), readonly=readonly)


def test_unreadable_file_is_refused(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root: chmod 000 does not stop root from opening the file")
    Store(str(tmp_path)).close()
    (tmp_path / "state.db").chmod(0)
    try:
        with pytest.raises(StoreError, match=str(tmp_path / "state.db")):
            Store(str(tmp_path))
    finally:
        (tmp_path / "state.db").chmod(0o600)


def test_closed_store_says_so(place: Place) -> None:
    store = place.open()
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.load_checks()


def test_silences_are_stored_listed_and_ended_beside_a_live_writer(place: Place) -> None:
    """The runner's store and a second connection (the CLI's) share the silences table."""
    from watchdog.holds import Silence

    runner = place.open()
    runner.lock()
    cli = place.open()
    cli.add_silence(Silence("a1", ("db-*",), "backup", created_at=100.0, until=200.0,
                            created_by="ops@h"))
    cli.add_silence(Silence("b2", ("web",), "deploy", created_at=100.0, until=150.0))
    assert [s.id for s in runner.silences(120.0)] == ["a1", "b2"]
    assert [s.id for s in runner.silences(160.0)] == ["a1"]  # b2 ended by itself
    [a1] = runner.silences(120.0)[:1]
    assert a1.patterns == ("db-*",) and a1.created_by == "ops@h" and a1.until == 200.0
    assert cli.end_silences(["a1", "nope"], 130.0) == ["a1"]
    assert runner.silences(131.0) == [runner.silences(None)[1]]  # only b2 left active
    assert cli.end_silences(None, 131.0) == ["b2"] and runner.silences(131.0) == []
    assert {s.id for s in runner.silences(None, since=120.0)} == {"a1", "b2"}  # kept, ended
    cli.close()
    runner.close()
