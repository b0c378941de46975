"""SystemdNotifier (sd_notify) against a real AF_UNIX datagram socket standing in for systemd's."""

from __future__ import annotations

import os
import select
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from watchdog.notify import SystemdNotifier

pytestmark = pytest.mark.timeout(20)


class FakeSystemd:
    """The receiving end of $NOTIFY_SOCKET; messages() returns each datagram's assignments."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(5.0)

    def receive(self) -> dict[str, str]:
        data = self.sock.recv(65536).decode()
        return dict(line.split("=", 1) for line in data.split("\n"))

    def nothing_pending(self) -> bool:
        """Sends are synchronous on AF_UNIX: a datagram sent is already queued here."""
        readable, _, _ = select.select([self.sock], [], [], 0)
        return not readable

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def path_systemd(tmp_path: Path) -> Iterator[tuple[FakeSystemd, str]]:
    path = str(tmp_path / "notify.sock")
    fake = FakeSystemd(path)
    yield fake, path
    fake.close()


@pytest.fixture
def abstract_systemd() -> Iterator[tuple[FakeSystemd, str]]:
    name = f"pd-watchdog-test-{uuid.uuid4().hex}"
    fake = FakeSystemd("\0" + name)
    yield fake, "@" + name
    fake.close()


def test_lifecycle_messages_over_a_path_socket(path_systemd):
    fake, path = path_systemd
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.watchdog_interval is None

    assert notifier.ready("3 checks\nloaded")
    assert fake.receive() == {"READY": "1", "STATUS": "3 checks loaded"}

    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notifier.reloading()
    message = fake.receive()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert message["RELOADING"] == "1"
    assert before <= int(message["MONOTONIC_USEC"]) <= after

    assert notifier.status("reload: 4 checks")
    assert fake.receive() == {"STATUS": "reload: 4 checks"}
    assert notifier.stopping()
    assert fake.receive() == {"STOPPING": "1"}
    notifier.close()


def test_abstract_socket(abstract_systemd):
    fake, address = abstract_systemd
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "2000000"})
    assert notifier.enabled
    assert notifier.ready("up")
    assert fake.receive() == {"READY": "1", "STATUS": "up"}
    assert notifier.maybe_ping(True, now=100.0)
    assert fake.receive() == {"WATCHDOG": "1"}
    notifier.close()


def test_watchdog_interval_is_half_of_watchdog_usec_and_pings_only_when_due(path_systemd):
    fake, path = path_systemd
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000",
                         "WATCHDOG_PID": str(os.getpid())})
    assert notifier.watchdog_interval == 15.0

    assert notifier.maybe_ping(True, now=1000.0)  # the first one goes at once
    assert fake.receive() == {"WATCHDOG": "1"}
    assert not notifier.maybe_ping(True, now=1014.9)
    assert fake.nothing_pending()
    assert notifier.maybe_ping(True, now=1015.0)
    assert fake.receive() == {"WATCHDOG": "1"}
    notifier.close()


def test_no_ping_while_the_loop_is_not_progressing(path_systemd):
    fake, path = path_systemd
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"})
    assert notifier.maybe_ping(True, now=10.0)
    assert fake.receive() == {"WATCHDOG": "1"}
    for now in (10.6, 11.0, 20.0, 100.0):  # due, but the scheduler is wedged
        assert not notifier.maybe_ping(False, now=now)
    assert fake.nothing_pending()
    assert notifier.maybe_ping(True, now=100.1)  # progress again: pings resume
    assert fake.receive() == {"WATCHDOG": "1"}
    notifier.close()


def test_real_clock_default(path_systemd):
    fake, path = path_systemd
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})  # 0.05 s
    assert notifier.maybe_ping(True)
    assert not notifier.maybe_ping(True)  # well within 50 ms of the first
    deadline = time.monotonic() + 5
    while not notifier.maybe_ping(True):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert fake.receive() == {"WATCHDOG": "1"}
    assert fake.receive() == {"WATCHDOG": "1"}
    notifier.close()


def test_watchdog_pid_of_another_process_disables_pings(path_systemd):
    fake, path = path_systemd
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000",
                         "WATCHDOG_PID": str(os.getpid() + 1)})
    assert notifier.enabled  # READY etc. still go out
    assert notifier.watchdog_interval is None
    assert not notifier.maybe_ping(True, now=0.0)
    assert fake.nothing_pending()


@pytest.mark.parametrize("env", [
    {},
    {"NOTIFY_SOCKET": ""},
    {"NOTIFY_SOCKET": "vsock:2:1234"},
    {"NOTIFY_SOCKET": "@"},
])
def test_disabled_outside_systemd(env):
    notifier = SystemdNotifier(env)
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    assert not notifier.ready("x")
    assert not notifier.maybe_ping(True)


@pytest.mark.parametrize("usec", ["", "abc", "0", "-5"])
def test_bad_watchdog_usec_means_no_watchdog(tmp_path, usec):
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "x.sock"), "WATCHDOG_USEC": usec})
    assert notifier.watchdog_interval is None


def test_send_never_raises_when_systemd_is_gone(tmp_path, caplog):
    caplog.set_level("DEBUG", logger="watchdog.notify")
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "missing.sock"),
                         "WATCHDOG_USEC": "1000000"})
    assert notifier.enabled
    assert not notifier.ready("up")
    assert not notifier.stopping()
    assert not notifier.maybe_ping(True, now=1.0)
    failures = [r for r in caplog.records if r.name == "watchdog.notify"]
    assert len(failures) == 1  # logged once, not at every ping
    notifier.close()


def test_uses_os_environ_by_default(monkeypatch, path_systemd):
    fake, path = path_systemd
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    notifier = SystemdNotifier()
    assert notifier.enabled
    assert notifier.stopping()
    assert fake.receive() == {"STOPPING": "1"}
    notifier.close()
