"""The heartbeat pinger against real loopback targets: one answers, one fails, one hangs."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from watchdog import __version__
from watchdog.heartbeat import HeartbeatPinger, shown_target

pytestmark = pytest.mark.timeout(20)

TOKEN = "4f1c2d9e-7777-4b0e-9aaa-5ecret5ecret"
QUERY_SECRET = "qs-secret-value"


class Target:
    """A loopback HTTP server that records each ping (path, User-Agent, time)."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.pings: list[tuple[str, str, float]] = []
        self.cond = threading.Condition()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                with target.cond:
                    target.pings.append(
                        (self.path, self.headers.get("User-Agent", ""), time.monotonic())
                    )
                    target.cond.notify_all()
                body = b"OK"
                self.send_response(target.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait_for(self, count: int, timeout: float = 5.0) -> list[tuple[str, str, float]]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.pings) >= count, timeout), (
                f"{len(self.pings)} pings, wanted {count}"
            )
            return list(self.pings)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def target() -> Iterator[Target]:
    t = Target()
    yield t
    t.close()


@pytest.fixture
def beats() -> Iterator[Callable[..., HeartbeatPinger]]:
    made: list[HeartbeatPinger] = []

    def make(url: str, interval: float = 0.1, timeout: float = 2.0,
             healthy: Callable[[], bool] = lambda: True) -> HeartbeatPinger:
        hb = HeartbeatPinger(url, interval, timeout, healthy)
        made.append(hb)
        return hb

    yield make
    for hb in made:
        hb.stop()


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_pings_on_schedule_with_user_agent(target, beats):
    hb = beats(f"{target.base}/ping/{TOKEN}?k={QUERY_SECRET}", interval=0.1)
    started = time.monotonic()
    hb.start()
    pings = target.wait_for(6, timeout=5)
    path, agent, first = pings[0]
    assert path == f"/ping/{TOKEN}?k={QUERY_SECRET}"
    assert agent == f"pd-watchdog/{__version__}"
    assert first - started < 1.0  # right at start, not after an interval
    # slot k is at start + k*interval: the sixth ping cannot come before 0.5 s
    assert pings[5][2] - started >= 0.49
    wait_until(lambda: hb.pings_sent >= 6)
    assert hb.failures == 0
    hb.stop()
    assert not any(t.name == "heartbeat" and t.is_alive() for t in threading.enumerate())


def test_first_ping_at_start_then_waits_the_interval(target, beats):
    hb = beats(f"{target.base}/ping", interval=60)
    hb.start()
    target.wait_for(1)
    wait_until(lambda: hb.pings_sent == 1)
    hb.stop(wait=2)
    assert len(target.pings) == 1


def test_skips_while_unhealthy_and_warns_once_per_streak(target, beats, caplog):
    caplog.set_level(logging.INFO, logger="watchdog.heartbeat")
    healthy = threading.Event()
    hb = beats(f"{target.base}/ping/{TOKEN}", interval=0.05, healthy=healthy.is_set)
    hb.start()
    wait_until(lambda: hb.skipped >= 4)
    assert target.pings == []
    assert hb.pings_sent == 0

    healthy.set()
    target.wait_for(2)
    healthy.clear()
    skipped = hb.skipped
    wait_until(lambda: hb.skipped >= skipped + 3)
    hb.stop()

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # one per unhealthy streak, not one per skipped slot
    assert all("unhealthy" in w for w in warnings)
    assert any("healthy again" in r.getMessage() for r in caplog.records)


def test_health_check_that_raises_counts_as_unhealthy(target, beats, caplog):
    def broken() -> bool:
        raise RuntimeError("bug")

    hb = beats(f"{target.base}/ping", interval=0.05, healthy=broken)
    hb.start()
    wait_until(lambda: hb.skipped >= 2)
    assert target.pings == []


@pytest.mark.parametrize("status", [500, 404, 302])
def test_non_2xx_is_a_logged_failure(beats, caplog, status):
    bad = Target(status=status)
    try:
        hb = beats(f"{bad.base}/ping/{TOKEN}?k={QUERY_SECRET}", interval=0.05)
        hb.start()
        wait_until(lambda: hb.failures >= 2)
        hb.stop()
        assert hb.pings_sent == 0
    finally:
        bad.close()
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"HTTP {status}" in m for m in messages), messages
    assert_no_secret(caplog)


def test_connection_refused_is_logged_not_raised(beats, caplog):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    hb = beats(f"http://127.0.0.1:{port}/ping/{TOKEN}?k={QUERY_SECRET}", interval=0.05)
    hb.start()
    wait_until(lambda: hb.failures >= 2)
    hb.stop()
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("refused" in m.lower() for m in messages), messages
    assert all(f"http://127.0.0.1:{port}/…" in m for m in messages)
    assert_no_secret(caplog)


def test_a_hanging_target_is_bounded_by_timeout(beats, caplog):
    # A listener that never accepts: the kernel completes the connection, nobody answers.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        hb = beats(f"http://127.0.0.1:{port}/ping/{TOKEN}", interval=0.05, timeout=0.3)
        started = time.monotonic()
        assert hb.beat() is False
        elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 2.0
    assert hb.failures == 1
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("timed out after 0.3s" in m for m in messages), messages
    assert_no_secret(caplog)


def test_recovery_after_failures_is_logged(beats, caplog):
    caplog.set_level(logging.INFO, logger="watchdog.heartbeat")
    flaky = Target(status=503)
    try:
        hb = beats(f"{flaky.base}/ping", interval=0.05)
        hb.start()
        wait_until(lambda: hb.failures >= 1)
        flaky.status = 200
        wait_until(lambda: hb.pings_sent >= 1)
    finally:
        flaky.close()
    assert any("succeeded again" in r.getMessage() for r in caplog.records)


def test_bad_url_is_a_failure_not_an_exception(beats, caplog):
    hb = beats(f"http://127.0.0.1:notaport/{TOKEN}", interval=60)
    assert hb.beat() is False
    assert hb.failures == 1
    assert_no_secret(caplog)


def test_shown_target_keeps_only_scheme_and_host():
    assert shown_target(f"https://hc-ping.com/{TOKEN}") == "https://hc-ping.com/…"
    assert (
        shown_target(f"https://user:pw@example.com:8443/p/{TOKEN}?x=1")
        == "https://example.com:8443/…"
    )
    assert shown_target("http://[::1]:9/x") == "http://[::1]:9/…"
    assert shown_target("http://[::1]:notaport/x") == "<invalid url>"


def test_interval_must_be_positive():
    with pytest.raises(ValueError):
        HeartbeatPinger("http://127.0.0.1/", 0, 1, lambda: True)


def assert_no_secret(caplog) -> None:
    text = "\n".join(
        r.getMessage() + (str(r.exc_info) if r.exc_info else "") for r in caplog.records
    )
    assert TOKEN not in text
    assert QUERY_SECRET not in text


def test_unparseable_url_is_a_failure_without_the_token(beats, caplog):
    hb = beats(f"http://[::1/{TOKEN}", interval=60)
    assert hb.beat() is False
    assert hb.failures == 1
    assert hb.target == "<invalid url>"
    assert_no_secret(caplog)
