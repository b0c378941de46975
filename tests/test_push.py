"""The push endpoint: a real PushServer on loopback (token, caps, answers), and a good ping
through a live runner's listener taking effect."""

from __future__ import annotations

import http.client
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakepd import FakePagerDuty
from procs import ROUTING_KEY, Watchdog, pdw
from watchdog import pushserve
from watchdog.pushserve import BODY_CAP, PushServer, parse_target
from watchdog.reports import FAIL, START, SUCCESS

pytestmark = pytest.mark.timeout(60)

TOKEN = "0123456789abcdef-push-token"
NAMES = frozenset({"backup", "a/b"})


@pytest.fixture
def server() -> Iterator[tuple[PushServer, list]]:
    got: list = []

    def handle(name, kind, code, message):
        got.append((name, kind, code, message))
        return 200, b"OK\n"

    push = PushServer("127.0.0.1", 0, lambda: TOKEN, handle, lambda: NAMES, read_timeout=0.5)
    push.start()
    try:
        yield push, got
    finally:
        push.stop()


def post(push: PushServer, path: str, body: bytes = b"", token: str | None = TOKEN,
         method: str = "POST") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(*push.address, timeout=10)
    try:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        conn.request(method, path, body=body, headers=headers)
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


def test_paths_name_the_check_and_the_report():
    assert parse_target("backup", NAMES) == ("backup", SUCCESS, None)
    assert parse_target("backup/start", NAMES) == ("backup", START, None)
    assert parse_target("backup/fail", NAMES) == ("backup", FAIL, None)
    assert parse_target("backup/0", NAMES) == ("backup", SUCCESS, 0)
    assert parse_target("backup/3", NAMES) == ("backup", FAIL, 3)
    assert parse_target("a/b", NAMES) == ("a/b", SUCCESS, None)
    assert parse_target("a/b/start", NAMES) == ("a/b", START, None)
    for unknown in ("nope", "backup/256", "backup/later", "", "backup/-1"):
        assert parse_target(unknown, NAMES) is None, unknown


def test_a_token_is_required_and_compared_in_constant_time(server, monkeypatch):
    push, got = server
    compared = []
    real = pushserve.hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(pushserve.hmac, "compare_digest", spy)
    assert post(push, "/ping/backup", token=None)[0] == 401
    assert post(push, "/ping/backup", token="wrong")[0] == 401
    assert post(push, "/ping/nosuch", token="wrong")[0] == 401  # no names to the unknown
    assert post(push, "/ping/backup", token=TOKEN[:-1])[0] == 401
    assert (b"wrong", TOKEN.encode()) in compared
    assert got == []
    assert post(push, "/ping/backup/fail", b"disk full") == (200, b"OK\n")
    assert got == [("backup", FAIL, None, "disk full")]


def test_unknown_checks_methods_and_big_bodies(server):
    push, got = server
    assert post(push, "/ping/nosuch")[0] == 404
    assert post(push, "/metrics")[0] == 404
    assert post(push, "/ping/backup", method="GET")[0] == 405
    assert post(push, "/ping/backup", b"x" * (BODY_CAP + 1))[0] == 413
    assert post(push, "/ping/backup/2", b"y" * BODY_CAP)[0] == 200
    assert got == [("backup", FAIL, 2, "y" * BODY_CAP)]


def test_a_chunked_flood_is_cut_at_the_cap_and_a_slow_body_times_out(server):
    push, _ = server
    with socket.create_connection(push.address, timeout=10) as sock:
        sock.sendall(f"POST /ping/backup HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}"
                     "\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        for _ in range(20):
            try:
                sock.sendall(b"400\r\n" + b"z" * 1024 + b"\r\n")
            except OSError:
                break
        assert sock.recv(64).startswith(b"HTTP/1.0 413")
    with socket.create_connection(push.address, timeout=10) as sock:
        sock.sendall(f"POST /ping/backup HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n"
                     "Content-Length: 100\r\n\r\nonly a little".encode())
        started = time.monotonic()
        assert sock.recv(64).startswith(b"HTTP/1.0 408")
        assert time.monotonic() - started < 5  # read_timeout 0.5 s, with room to spare


def test_listen_without_a_token_is_a_config_error(tmp_path: Path):
    config = tmp_path / "w.yaml"
    config.write_text("push: {listen: 9109}\nchecks: []\n")
    done = pdw("validate", str(config))
    assert done.returncode == 1
    assert f"{config}:1: push: token is required" in done.stderr


def test_a_good_ping_through_a_live_runners_listener_takes_effect(tmp_path: Path):
    with FakePagerDuty() as pd:
        config = tmp_path / "watchdog.yaml"
        config.write_text(
            f"pagerduty: {{routing_key: {ROUTING_KEY}, url: {pd.url}, source: h}}\n"
            "state_dir: ./state\n"
            "defaults: {interval: 100ms, fail_after: 1, recover_after: 1}\n"
            f"push: {{listen: '127.0.0.1:0', token: !secret {TOKEN}}}\n"
            "checks:\n  - {name: backup, passive: {expect_every: 30s, grace: 1s}}\n")
        with Watchdog(config) as proc:
            proc.wait_started()
            port = int(re.search(r"push: serving http://127\.0\.0\.1:(\d+)/",
                                 proc.log()).group(1))
            push = type("Address", (), {"address": ("127.0.0.1", port)})
            assert post(push, "/ping/backup", token="nope")[0] == 401
            assert post(push, "/ping/backup/2", f"failed; token {TOKEN}".encode()) == \
                (200, b"OK\n")
            pd.wait_for(lambda: pd.actions_for("pd-watchdog/h/backup") == ["trigger"],
                        timeout=5)
            payload = pd.events[0]["body"]["payload"]
            assert payload["summary"].startswith("backup: failed: exit code 2: failed; token ")
            assert TOKEN not in str(payload)  # masked before it was stored
            assert post(push, "/ping/backup")[0] == 200
            pd.wait_for(lambda: pd.actions_for("pd-watchdog/h/backup") ==
                        ["trigger", "resolve"], timeout=5)
            assert proc.stop() == 0
        assert TOKEN not in proc.log()
