"""The suite's PostgreSQL server (tests/pgserver.py): real, loopback, isolated per test,
stoppable and restartable, and gone at the end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from pgserver import PgServer
from procs import wait_for


def test_each_test_gets_an_empty_database_of_its_own(pg_server: PgServer, pg_dsn: str) -> None:
    other = pg_server.create_database()
    try:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE mine (x int)")
            conn.execute("INSERT INTO mine VALUES (1)")
        with psycopg.connect(pg_server.dsn(other), autocommit=True) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM pg_tables WHERE tablename = 'mine'").fetchone()
        assert tables == (0,)
    finally:
        pg_server.drop_database(other)


def test_the_server_listens_on_loopback_only(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        listen = conn.execute("SHOW listen_addresses").fetchone()[0]
        fsync = conn.execute("SHOW fsync").fetchone()[0]
    assert listen == "127.0.0.1"
    assert fsync == "off"


def test_stop_and_start_keep_the_port(pg_server: PgServer, pg_dsn: str) -> None:
    pg_server.stop()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pg_dsn, connect_timeout=2)
    pg_server.start()
    with psycopg.connect(pg_dsn, connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_session_leaves_no_server_and_no_folder_behind(tmp_path) -> None:
    script = (
        "import sys; sys.path.insert(0, 'tests'); from pgserver import PgServer\n"
        "s = PgServer(); s.start(); print(s.dir); print(open(s.data + '/postmaster.pid')"
        ".readline().strip()); s.destroy()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert done.returncode == 0, done.stderr
    folder, pid = done.stdout.split()
    assert not os.path.exists(folder)
    wait_for(lambda: _gone(int(pid)), timeout=10, what=f"postmaster {pid} to exit")


def _gone(pid: int) -> bool:
    """No such process, or a zombie left for whoever reaps orphans (pg_ctl daemonizes)."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_under_ci_a_missing_postgresql_fails_rather_than_skips(tmp_path) -> None:
    test = tmp_path / "test_needs_pg.py"
    test.write_text("def test_it(pg_server):\n    pass\n")
    here = Path(__file__).parent
    (tmp_path / "conftest.py").write_text((here / "conftest.py").read_text())
    (tmp_path / "pgserver.py").write_text(
        (here / "pgserver.py").read_text()
        .replace('glob.glob("/usr/lib/postgresql/*/bin/initdb")', "[]"))
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = "/nonexistent"
    for ci, outcome in ((None, "1 skipped"), ("true", "1 error")):
        if ci:
            env["CI"] = ci
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:cov",
             str(test)], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
        assert outcome in done.stdout, done.stdout
        assert "initdb was not found" in done.stdout or ci is None
