"""Helpers for end-to-end tests: the real `pd-watchdog` process and loopback targets."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROUTING_KEY = "0123456789abcdef0123456789abcdef"


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    """Poll until predicate() is truthy; fail with `what` when the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def pdw(
    *args: str, cwd: Path | None = None, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run a one-shot `pd-watchdog` command (validate, check, status) as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "watchdog", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


class Target:
    """A loopback HTTP target whose health a test flips: up answers 200, down 503."""

    def __init__(self) -> None:
        self.up = True
        self.hits = 0
        target = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                target.hits += 1
                status, body = (200, b"ok") if target.up else (503, b"down")
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/health"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Watchdog:
    """A real `pd-watchdog run` process, its stderr in a file, always cleaned up."""

    def __init__(self, config: Path, *args: str, env: dict | None = None) -> None:
        self.config = config
        self.args = args
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.env.pop("JOURNAL_STREAM", None)
        self.log_path = config.parent / "watchdog.log"
        self.proc: subprocess.Popen | None = None
        self.runs = 0

    def start(self) -> Watchdog:
        self.runs += 1
        with open(self.log_path, "ab") as log:
            log.write(f"=== start {self.runs}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "watchdog", "run", str(self.config), *self.args],
                cwd=self.config.parent,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 10.0, count: int = 1) -> None:
        wait_for(lambda: self.log().count(text) >= count, timeout, what=f"log line {text!r}")

    def wait_started(self, timeout: float = 15.0) -> None:
        """Wait until the current run (since its start marker) has logged that it started."""
        marker = f"=== start {self.runs}\n"
        wait_for(
            lambda: "started:" in self.log().rpartition(marker)[2],
            timeout,
            what=f"run {self.runs} to start",
        )

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def wait(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise

    def __enter__(self) -> Watchdog:
        return self.start()

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
