"""The PostgreSQL backend's own promises: the group's lock on the store's connection
(fencing by construction), a lost connection noticed and never silently mended, the schema
set up at open, the password never shown, and SQLite's statements translated in one place."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from pgserver import PgServer
from procs import ROOT, wait_for
from stores import Place
from watchdog.dsn import Dsn
from watchdog.model import CheckState, Event
from watchdog.store import SCHEMA_VERSION, Store, StoreError, StoreLocked, lane_hash, pgsql
from watchdog.store.postgres import PgTarget

DOWN = CheckState(failures=3, triggered=True, severity="critical")
TRIGGER = Event("trigger", "k", "web", "web down", "critical", "host1")


@pytest.fixture
def pg(pg_dsn: str, tmp_path: Path) -> Place:
    return Place("postgresql", str(tmp_path / "state"), pg_dsn)


def member(place: Place, name: str, **kwargs) -> Store:
    target = PgTarget(Dsn(place.dsn), failover_after=5.0, member=name, **kwargs)
    return Store(place.state_dir, postgresql=target)


HOLDER = """
import sys, time
from watchdog.dsn import Dsn
from watchdog.store import Store
from watchdog.store.postgres import PgTarget
store = Store(sys.argv[1], postgresql=PgTarget(Dsn(sys.argv[2]), member="web-1:77"))
store.lock()
print("locked", flush=True)
time.sleep(60)
"""


def test_one_member_holds_the_lock_and_a_kill_9_frees_it(pg: Place) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, pg.state_dir, pg.dsn],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    second = member(pg, "web-2:88")
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert second.try_lock() is False
        assert second.lock_holder() == "web-1:77"
        with pytest.raises(StoreLocked, match="the group 'pd-watchdog' .* is led by web-1:77"):
            second.lock()
        holder.kill()  # kill -9: its socket closes, the server ends its session and lock
        holder.wait(5)
        stop = threading.Event()
        assert second.wait_for_lock(stop, poll=0.05) is True
        assert second.holds_lock() and second.lock_holder() == "web-2:88"
    finally:
        holder.kill()
        holder.wait(5)
        second.close()


def test_groups_with_other_lock_names_do_not_exclude_each_other(pg: Place) -> None:
    with member(pg, "a:1", lock="edge") as edge, member(pg, "b:2", lock="core") as core:
        assert edge.try_lock() and core.try_lock()
        with member(pg, "c:3", lock="edge") as other:
            assert not other.try_lock() and other.lock_holder() == "a:1"


def test_waiting_for_the_lock_stops_when_asked(pg: Place) -> None:
    with member(pg, "a:1") as leader, member(pg, "b:2") as waiting:
        assert leader.try_lock()
        stop = threading.Event()
        threading.Timer(0.2, stop.set).start()
        started = time.monotonic()
        assert waiting.wait_for_lock(stop, poll=0.05) is False
        assert time.monotonic() - started < 5
        assert waiting.lock_holder() == "a:1" and not waiting.holds_lock()


def test_a_leader_whose_session_is_ended_cannot_commit_and_says_so(pg: Place) -> None:
    """Fencing by construction: the lock and the writes share one connection."""
    with member(pg, "a:1") as leader, member(pg, "b:2") as other:
        assert leader.try_lock()
        assert leader.file_problems() == []
        pid = leader._db.execute("SELECT pg_backend_pid()").fetchone()[0]  # noqa: SLF001
        with psycopg.connect(pg.dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert wait_for(other.try_lock, timeout=5, what="the lock to be free")
        with pytest.raises(StoreError, match="lost the connection to PostgreSQL"):
            leader.record("web", "fp", "k", DOWN, None, 1.0, [TRIGGER])
        (problem,) = leader.file_problems()
        assert problem.startswith("lost the connection to PostgreSQL at postgresql://")
        with pytest.raises(StoreError, match="lost the connection"):
            leader.holds_lock()
        with pytest.raises(StoreError, match="cannot be taken up again in place"):
            leader.rebuild()
        assert other.pending() == []  # nothing of the fenced leader's got in


def test_a_stopped_server_is_noticed_and_not_reconnected_behind_our_back(
        pg_server: PgServer, pg: Place) -> None:
    store = member(pg, "a:1")
    try:
        assert store.try_lock()
        pg_server.stop()
        with pytest.raises(StoreError, match="lost the connection to PostgreSQL"):
            store.record("web", "fp", "k", DOWN, None, 1.0, [TRIGGER])
        pg_server.start()
        with pytest.raises(StoreError, match="lost the connection"):
            store.load_checks()  # a new connection would hold no lock: the store stays fenced
        assert store.file_problems()
    finally:
        store.close()
        if not pg_server.running:
            pg_server.start()
    with pg.open() as again:  # a new store is the way back (a new member term)
        assert again.try_lock() and again.load_checks() == {}


def test_the_connection_is_set_to_notice_a_vanished_peer_within_failover_after(
        pg: Place) -> None:
    with member(pg, "a:1") as store:
        show = {name: store._db.execute(f"SHOW {name}").fetchone()[0]  # noqa: SLF001
                for name in ("statement_timeout", "lock_timeout", "tcp_keepalives_idle",
                             "tcp_keepalives_count", "application_name")}
    assert show == {"statement_timeout": "5s", "lock_timeout": "2500ms",
                    "tcp_keepalives_idle": "1", "tcp_keepalives_count": "3",
                    "application_name": "pd-watchdog a:1"}
    options = pgsql.connect_options(10.0, "x", readonly=False)
    assert options["keepalives_idle"] + 3 * options["keepalives_interval"] <= 10
    assert options["tcp_user_timeout"] == 8000 and options["connect_timeout"] == 5


def test_commits_are_asynchronous_and_the_outbox_is_flushed_before_it_is_sent(
        pg: Place) -> None:
    """As SQLite's synchronous=NORMAL plus make_durable: no WAL flush per record(), one
    synchronous commit (flushing all before it) when pending() hands rows to the sender."""
    with member(pg, "a:1") as store:
        assert store._db.execute("SHOW synchronous_commit").fetchone() == ("off",)  # noqa: SLF001
        store.record("web", "fp", "k", DOWN, None, 1.0, [TRIGGER])
        assert store.get_meta("durable_mark") is None
        store.pending()
        first = store.get_meta("durable_mark")
        assert first is not None
        store.pending()  # nothing committed since: no second flush
        assert store.get_meta("durable_mark") == first


def test_the_schema_is_set_up_once_and_a_newer_one_refused(pg: Place) -> None:
    with pytest.raises(StoreError, match="no state yet at postgresql://"):
        pg.open(readonly=True)
    pg.open().close()
    with psycopg.connect(pg.dsn, autocommit=True) as admin:
        tables = {row[0] for row in admin.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"checks", "outbox", "dead_letters", "stats", "meta", "silences",
                "passive", "pd_watchdog_schema"} <= tables
        kinds = dict(admin.execute("SELECT column_name, data_type FROM "
                                   "information_schema.columns WHERE table_name = 'outbox'"))
        assert kinds["id"] == "bigint" and kinds["lane_hash"] == "bigint"
        assert kinds["created_at"] == "double precision"
        admin.execute("UPDATE pd_watchdog_schema SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match="written by a newer pd-watchdog"):
        pg.open()


def test_a_lane_hash_above_2_to_the_31_fits(pg: Place) -> None:
    key = next(f"k{i}" for i in range(100) if lane_hash(f"k{i}") > 2**31)
    with pg.open() as store:
        (item_id,) = store.record("web", "fp", key, DOWN, None, 1.0, [
            Event("trigger", key, "web", "down", "critical", "h")])
        assert [i.id for i in store.pending(lane=lane_hash(key) % 3, lanes=3)] == [item_id]


def test_the_password_is_never_in_an_error(pg_server: PgServer) -> None:
    url = f"postgresql://watchdog:Sekr1tPass@127.0.0.1:{pg_server.port}/no_such_db"
    with pytest.raises(StoreError) as info:
        Store("/nonexistent", postgresql=PgTarget(Dsn(url), failover_after=3.0))
    assert "Sekr1tPass" not in str(info.value)
    assert "postgresql://watchdog:***@127.0.0.1" in str(info.value)
    assert "no_such_db" in str(info.value)


def test_without_the_driver_it_says_what_to_install(pg: Place, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(StoreError, match=r"pip install 'pd-watchdog\[postgresql\]'"):
        pg.open()


def test_the_statements_are_translated_in_one_place() -> None:
    assert pgsql.statement("SELECT a FROM t WHERE x % 4 = ? AND y = :name") == \
        "SELECT a FROM t WHERE x %% 4 = %s AND y = %(name)s"
    assert pgsql.statement("INSERT OR IGNORE INTO t (a) VALUES (?) RETURNING a") == \
        "INSERT INTO t (a) VALUES (%s) ON CONFLICT DO NOTHING RETURNING a"
    assert pgsql.statement("INSERT OR IGNORE INTO t (a) VALUES (?)") == \
        "INSERT INTO t (a) VALUES (%s) ON CONFLICT DO NOTHING"
    assert pgsql.ddl("CREATE TABLE r (id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER, "
                     "at REAL, body BLOB) WITHOUT ROWID") == (
        "CREATE TABLE r (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n BIGINT, "
        "at DOUBLE PRECISION, body BYTEA)")


def test_sqlite_answers_the_same_lock_questions(tmp_path: Path) -> None:
    with Store(str(tmp_path)) as first, Store(str(tmp_path)) as second:
        assert first.lock_holder() is None
        assert first.try_lock() and first.holds_lock()
        assert not second.try_lock() and not second.holds_lock()
        assert second.lock_holder() is not None and first.backend == "sqlite"
