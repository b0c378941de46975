"""The sd_notify protocol, spoken directly: systemd learns we are ready, reloading, stopping,
and alive (WATCHDOG=1) through one datagram on $NOTIFY_SOCKET.

No dependency (python-systemd needs libsystemd headers to build); the protocol is one
`sendto`. Every method is a no-op outside systemd, so the runner calls them unconditionally.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping

log = logging.getLogger("watchdog.notify")


class SystemdNotifier:
    """Talks to the service manager that started us, if any; never raises."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self.enabled: bool = self._address is not None
        self.watchdog_interval: float | None = _watchdog_interval(env) if self.enabled else None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._last_ping: float | None = None
        self._failed_before = False

    def send(self, *lines: str) -> bool:
        """Send one notification ("KEY=value" lines); False if disabled or it failed."""
        if self._address is None or not lines:
            return False
        payload = "\n".join(lines).encode("utf-8", "replace")
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(
                        socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                    )
                self._sock.sendto(payload, self._address)
                return True
            except OSError as exc:
                # Once: a vanished socket would otherwise log at every watchdog ping.
                if not self._failed_before:
                    self._failed_before = True
                    log.debug("sd_notify to %r failed: %s", self._address, exc)
                return False

    def ready(self, status: str) -> bool:
        """Startup is complete: systemd's `start` returns and dependants may start."""
        return self.send("READY=1", "STATUS=" + _one_line(status))

    def reloading(self) -> bool:
        """A reload began; READY=1 (ready()) must follow when it is done.

        MONOTONIC_USEC is what systemd >= 253 requires with Type=notify-reload to match
        the message to the reload it asked for; older versions ignore it.
        """
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> bool:
        """Shutdown began, so `systemctl status` says so rather than "running"."""
        return self.send("STOPPING=1")

    def status(self, text: str) -> bool:
        """Free text shown by `systemctl status`."""
        return self.send("STATUS=" + _one_line(text))

    def maybe_ping(self, progressing: bool, now: float | None = None) -> bool:
        """Send WATCHDOG=1 when a ping is due, but only while the main loop makes progress.

        A wedged scheduler must stop the pings: that silence is how systemd notices and
        restarts us. Returns True when a ping was sent.
        """
        if self.watchdog_interval is None or not progressing:
            return False
        now = time.monotonic() if now is None else now
        last = self._last_ping
        if last is not None and now - last < self.watchdog_interval:
            return False
        sent = self.send("WATCHDOG=1")
        if sent:
            self._last_ping = now
        return sent

    def close(self) -> None:
        """Release the socket (tests; a process exit does it too)."""
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def _socket_address(value: str) -> str | None:
    """The sendto() address for $NOTIFY_SOCKET: a path, or "@name" for an abstract socket."""
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value:
        # e.g. "vsock:2:1234" (systemd >= 254, VMs): not something a host service receives.
        log.debug("NOTIFY_SOCKET=%r is not a unix socket; notifications off", value)
    return None


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises; None if not asked of us."""
    pid = env.get("WATCHDOG_PID", "")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None  # meant for another process (e.g. the shell that exec'd us)
        except ValueError:
            return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 2 / 1_000_000


def _one_line(text: str) -> str:
    """A newline would start a new KEY=value assignment in the datagram."""
    return " ".join(str(text).splitlines())
