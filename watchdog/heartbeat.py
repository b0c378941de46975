"""A dead man's switch: ping a URL (healthchecks.io, Cronitor, Dead Man's Snitch) on a fixed
schedule while the runner is healthy, so a watchdog that died or wedged pages someone too.

It runs on its own thread with the standard library's urllib (honouring *_proxy variables,
as such hosts often sit behind a proxy); a ping that fails is logged and retried at the next
slot, never raised. The URL usually carries a secret token, so only scheme://host is logged.
"""

from __future__ import annotations

import http.client
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

from pagerduty_api._transport import redact
from watchdog import __version__

log = logging.getLogger("watchdog.heartbeat")

MAX_BODY = 4096  # bytes of a ping's response read (and ignored) so the connection ends cleanly


class HeartbeatPinger:
    """Pings `url` now and then every `interval` seconds while healthy() is True."""

    def __init__(self, url: str, interval: float, timeout: float,
                 healthy: Callable[[], bool]) -> None:
        if interval <= 0 or timeout <= 0:
            raise ValueError("heartbeat interval and timeout must be positive")
        self.url = url
        self.interval = interval
        self.timeout = timeout
        self.healthy = healthy
        self.target = shown_target(url)
        self.pings_sent = 0  # pings the target answered with 2xx
        self.failures = 0  # pings that failed (error, non-2xx, timeout)
        self.skipped = 0  # slots skipped because healthy() was False
        self._unhealthy = False
        self._failing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._opener = urllib.request.build_opener()
        self._headers = {"User-Agent": f"pd-watchdog/{__version__}"}

    def start(self) -> None:
        """Ping now, then every interval, from a daemon thread."""
        if self._thread is not None:
            return
        self._stop = threading.Event()  # a fresh one: a thread stop() gave up on stays stopped
        self._thread = threading.Thread(
            target=self._run, args=(self._stop,), name="heartbeat", daemon=True
        )
        self._thread.start()
        log.info("heartbeat: pinging %s every %gs", self.target, self.interval)

    def stop(self, wait: float = 2.0) -> None:
        """Stop pinging; waits at most `wait` seconds for a ping in flight (the thread is a
        daemon, so a hung one never holds the exit up)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(wait)

    def _run(self, stop: threading.Event) -> None:
        # Fixed rate from the start: slots are start + k*interval; a slow ping skips slots
        # rather than bunching pings up.
        due = time.monotonic()
        while not stop.is_set():
            try:
                self.beat()
            except Exception:  # never let a bug end the heartbeat silently
                log.exception("heartbeat: unexpected error")
            now = time.monotonic()
            due += self.interval
            if due <= now:
                due += ((now - due) // self.interval + 1) * self.interval
            stop.wait(due - now)

    def beat(self) -> bool:
        """One slot: ping if healthy. True if a ping was sent and accepted."""
        if not self._is_healthy():
            self.skipped += 1
            if not self._unhealthy:
                self._unhealthy = True
                log.warning("heartbeat: runner unhealthy, not pinging %s until it recovers",
                            self.target)
            return False
        if self._unhealthy:
            self._unhealthy = False
            log.info("heartbeat: runner healthy again, pinging %s", self.target)
        error = self._ping()
        if error is None:
            self.pings_sent += 1
            if self._failing:
                self._failing = False
                log.info("heartbeat: ping to %s succeeded again", self.target)
            return True
        self.failures += 1
        self._failing = True
        log.warning("heartbeat: ping to %s failed: %s", self.target, error)
        return False

    def _is_healthy(self) -> bool:
        try:
            return bool(self.healthy())
        except Exception:
            log.exception("heartbeat: health check raised; treating as unhealthy")
            return False

    def _ping(self) -> str | None:
        """GET the URL; None on a 2xx answer, else why not (scrubbed of the URL's secrets)."""
        try:
            request = urllib.request.Request(self.url, headers=self._headers, method="GET")
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read(MAX_BODY)
                status = response.status
        except urllib.error.HTTPError as exc:
            exc.close()
            return self._scrub(f"HTTP {exc.code} {exc.reason}")
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                return f"timed out after {self.timeout:g}s"
            return self._scrub(str(exc.reason))
        except TimeoutError:  # while reading the answer
            return f"timed out after {self.timeout:g}s"
        except (OSError, ValueError, http.client.HTTPException) as exc:
            # ValueError: a malformed URL; HTTPException: a garbled answer
            return self._scrub(f"{type(exc).__name__}: {exc}")
        if not 200 <= status < 300:
            return f"HTTP {status}"
        return None

    def _scrub(self, text: str) -> str:
        """Mask any part of the URL that may be a token in an error message."""
        secrets = [self.url]
        try:
            parts = urllib.parse.urlsplit(self.url)
            secrets += [parts.path, parts.query, parts.fragment, parts.username or "",
                        parts.password or "", *parts.path.split("/")]
        except ValueError:  # unparseable: say nothing of the error rather than risk the token
            return "invalid URL"
        return redact(text, sorted({s for s in secrets if len(s) > 3}, key=len, reverse=True))


def shown_target(url: str) -> str:
    """scheme://host[:port]/… — enough to tell which target, nothing that authenticates."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port
    except ValueError:
        return "<invalid url>"
    if ":" in host:
        host = f"[{host}]"
    if port is not None:
        host = f"{host}:{port}"
    return f"{parts.scheme}://{host}/…"
