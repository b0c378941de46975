"""What a leading Runner borrows from its member, and how each behaves across terms.

A member outlives its terms: its signal handlers, its sd_notify socket, its /metrics and
/healthz listener and its runtime.json stay while Runners come and go. The Runner uses them
as its own (runner.Runner(term=...)), with three differences: a stop that ends a term is
not a stop of the service (no STOPPING=1 unless SIGTERM asked for it), STATUS= says which
group this member leads, and runtime.json carries the member's facts for `status`.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from watchdog.metrics import Metrics
from watchdog.notify import SystemdNotifier
from watchdog.runtime import RuntimeFile
from watchdog.signals import Requests


class MemberRequests(Requests):
    """The runner's stop/reload flags, plus `terminate`: only SIGTERM/SIGINT end the member;
    a fence sets `stop` alone, which ends the term."""

    def __init__(self) -> None:
        super().__init__()
        self.terminate = threading.Event()

    def install(self) -> None:
        super().install()

        def terminate(signum, frame):
            self.terminate.set()
            self.stop.set()
            self.wake.set()

        signal.signal(signal.SIGTERM, terminate)
        signal.signal(signal.SIGINT, terminate)

    def end_term(self) -> None:
        """Set `stop` for the running term, from any thread."""
        self.stop.set()
        self.wake.set()


class TermNotifier:
    """The member's SystemdNotifier as a term sees it."""

    def __init__(self, notifier: SystemdNotifier, requests: MemberRequests,
                 prefix: Callable[[], str]) -> None:
        self._notifier = notifier
        self._requests = requests
        self._prefix = prefix

    def __getattr__(self, name: str) -> Any:
        return getattr(self._notifier, name)

    def ready(self, status: str) -> bool:
        return self._notifier.ready(self._prefix() + status)

    def status(self, text: str) -> bool:
        return self._notifier.status(self._prefix() + text)

    def stopping(self) -> bool:
        """STOPPING=1 only when the service stops, not when a fenced term ends."""
        return self._requests.terminate.is_set() and self._notifier.stopping()

    def close(self) -> None:
        """The member closes the socket when it exits."""


class MemberRuntime:
    """runtime.json for the member's whole life: its facts (group, phase, leader) in every
    report, a term's report while it leads."""

    def __init__(self, state_dir: str, facts: Callable[[], dict[str, Any]]) -> None:
        self.file = RuntimeFile(state_dir)
        self._facts = facts
        self._opened = False

    def open(self) -> None:
        """Opened once by the member (a term's start calls this too)."""
        if not self._opened:
            self._opened = True
            self.file.open()

    def write(self, report: dict[str, Any]) -> None:
        self.file.write({**report, **self._facts()})

    def write_waiting(self) -> None:
        """What `status` shows while no term runs: this member, and who leads."""
        self.file.write({"pid": os.getpid(), "running": True, **self._facts()})

    def close(self) -> None:
        """A term ends: the member writes the next report (write_waiting)."""

    def close_file(self) -> None:
        self.file.close()


@dataclass(frozen=True)
class Term:
    """What runner.Runner takes from the member while it leads."""

    store: Any  # fence.FencedStore over the group's Store
    requests: MemberRequests
    notifier: TermNotifier
    metrics: Metrics | None
