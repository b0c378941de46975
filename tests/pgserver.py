"""A real PostgreSQL server for the suite: initdb in a temp dir, loopback and a unix socket.

Started once per session (tests/conftest.py's `pg_server`), as an unprivileged user: initdb
refuses root, so as root the `postgres` system user of the Debian package runs it (through
runuser) in a temp dir chowned to it. fsync is off and the buffers small: this is a test
server, its data dies with the session. Each test gets a fresh database (`pg_dsn`), so no
test sees another's rows or advisory locks.

Tests that need the server gone (a leader cut off from PostgreSQL, a restart) call
`stop()` and `start()`: the port stays the same, so DSNs handed out stay valid.

Where PostgreSQL cannot be had the tests skip with the reason, except under CI=true, where
they fail: CI must not silently skip the PostgreSQL backend.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

SUPERUSER = "watchdog"
START_DEADLINE = 30.0


class Unavailable(Exception):
    """PostgreSQL (or psycopg) cannot be had on this machine; the message says why."""


def find_bindir() -> str:
    """The folder holding initdb, pg_ctl and postgres (the newest Debian one, else PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[-3]) if p.split("/")[-3].isdigit() else 0)
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(initdb)
    raise Unavailable("PostgreSQL's initdb was not found (apt-get install postgresql, "
                      "or put its bin folder on PATH)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgServer:
    """One throwaway PostgreSQL cluster: start(), stop(), and a fresh database per test."""

    def __init__(self, *, durable: bool = False) -> None:
        """durable: the server's default durability (fsync, synchronous commits), as a
        production server runs, for the bench; the suite's server skips them for speed."""
        try:
            import psycopg  # the driver the backend and these tests need
        except ImportError as exc:
            raise Unavailable("psycopg is not installed (pip install -e '.[test]')") from exc
        self.psycopg = psycopg
        self.bindir = find_bindir()
        self._as: list[str] = []
        owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise Unavailable("running as root and there is no `postgres` user for "
                                  "initdb (it refuses root)") from exc
            self._as = ["runuser", "-u", "postgres", "--"]
        self.dir = tempfile.mkdtemp(prefix="pdw-pg-")
        if owner is not None:
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "server.log")
        self.host = "127.0.0.1"
        self.port = _free_port()
        self._names = itertools.count(1)
        self.running = False
        self.durable = durable
        self._run("initdb", "-D", self.data, "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--locale=C")

    # ------------------------------------------------------------------ control

    def start(self) -> None:
        """Start the server and wait (with a deadline) until it answers."""
        speed = [] if self.durable else ["-c fsync=off", "-c synchronous_commit=off",
                                         "-c full_page_writes=off", "-c shared_buffers=16MB"]
        options = " ".join([
            f"-c port={self.port}", "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.dir}", *speed,
            "-c max_connections=60", "-c log_min_messages=warning",
        ])
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-o", options,
                  "-w", "-t", str(int(START_DEADLINE)), "start")
        self._wait_ready()
        self.running = True

    def stop(self) -> None:
        """Stop at once (as a crash would: -m immediate); safe to call when stopped."""
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            try:
                self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "-t", "20",
                          "stop")
            except Unavailable:
                self._kill_postmaster()
        self.running = False

    def restart(self) -> None:
        self.stop()
        self.start()

    def postmaster_pid(self) -> int | None:
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as file:
                return int(file.readline())
        except (OSError, ValueError):
            return None

    def destroy(self) -> None:
        """Stop the server and delete its folder: nothing is left behind."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    # ---------------------------------------------------------------- databases

    def dsn(self, dbname: str = "postgres", user: str = SUPERUSER) -> str:
        return f"postgresql://{user}@{self.host}:{self.port}/{dbname}"

    def create_database(self) -> str:
        """A new empty database; its name."""
        name = f"t{os.getpid()}_{next(self._names)}"
        with self.psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        with self.psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    # ------------------------------------------------------------------ helpers

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_DEADLINE
        pg_isready = os.path.join(self.bindir, "pg_isready")
        while True:
            done = subprocess.run([pg_isready, "-q", "-h", self.host, "-p", str(self.port)],
                                  capture_output=True, timeout=START_DEADLINE)
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise Unavailable(f"PostgreSQL did not answer within {START_DEADLINE}s: "
                                  + self._log_tail())
            time.sleep(0.05)

    def _run(self, tool: str, *args: str) -> None:
        command = [*self._as, os.path.join(self.bindir, tool), *args]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=60,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise Unavailable(f"{tool} failed: {exc}") from exc
        if done.returncode != 0:
            raise Unavailable(f"{tool} failed ({done.returncode}): "
                              f"{(done.stderr or done.stdout).strip()[-500:]} {self._log_tail()}")

    def _kill_postmaster(self) -> None:
        pid = self.postmaster_pid()
        if pid is not None:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def _log_tail(self) -> str:
        try:
            with open(self.log, errors="replace") as file:
                return file.read()[-500:]
        except OSError:
            return ""
