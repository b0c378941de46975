"""The runner's side of passive checks: the inbox their probes judge from, the push endpoint.

Reports reach the state store from anywhere (`pd-watchdog ping`, `wrap`, the push endpoint);
every housekeeping second the runner reads the rows written since its last look into the
inbox (name -> Record) and has the checks they concern judged at once, so a report takes
effect within 2 s whatever the check's interval. The probes only read the inbox (the
pure/edge split: build() knows no state_dir); binding them is done here, on each config.
A check's first-seen time is written once, so its first deadline survives restarts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from watchdog import logs
from watchdog.config import Config
from watchdog.probes.passive import Inbox, PassiveProbe
from watchdog.pushserve import PushServer
from watchdog.reports import Record, Report
from watchdog.store import Store, StoreError

log = logging.getLogger("watchdog.runner")


class PassiveFeed:
    """Keeps the inbox current from the store; `judge_now` is given the checks whose
    reports changed (the scheduler's run_now)."""

    def __init__(self, store: Store, judge_now: Callable[[Iterable[str]], None]) -> None:
        self.store = store
        self.judge_now = judge_now
        self.inbox: Inbox = {}
        self.names: frozenset[str] = frozenset()
        self.token = ""
        self.secrets: frozenset[str] = frozenset()
        self.server: PushServer | None = None
        self._seq = 0
        self._unseen: set[str] = set()  # configured, with no row in the store yet

    def apply(self, config: Config, now: float) -> None:
        """Bind the config's passive probes to the inbox; note the new ones as seen now."""
        names = []
        for check in config.checks:
            if isinstance(check.probe, PassiveProbe):
                check.probe.bind(check.name, self.inbox)
                names.append(check.name)
                if check.name not in self.inbox:  # until the store says otherwise
                    self.inbox[check.name] = Record(first_seen=now)
                    self._unseen.add(check.name)
        self.names = frozenset(names)
        self.token = config.push.token if config.push is not None else ""
        self.secrets = config.secrets | ({self.token} if self.token else set())

    def start(self, config: Config) -> None:
        """Read what the store has (the clock survives restarts), then serve push."""
        self.refresh(time.time(), judge=False)
        if config.push is None:
            return
        logs.add_secrets([config.push.token])
        host, port = config.push.listen
        server = PushServer(host, port, lambda: self.token, self.handle, lambda: self.names)
        try:
            server.start()
        except OSError as exc:
            log.error("push: cannot listen on %s:%d: %s; passive checks still take "
                      "`pd-watchdog ping` and `wrap`", host, port, exc)
            return
        self.server = server

    def refresh(self, now: float, *, judge: bool = True) -> None:
        """Take in the rows written since the last look; judge the checks they changed."""
        try:
            if self._unseen:
                self.store.passive_seen(sorted(self._unseen), now)
                self._unseen.clear()
            rows = self.store.passive_records(self._seq)
        except StoreError as exc:
            log.debug("passive: cannot read reports now: %s", exc)
            return  # the inbox keeps what it has; the next second tries again
        changed = []
        for name, record in rows:
            self._seq = max(self._seq, record.seq)
            self._unseen.discard(name)
            self.inbox[name] = record
            if name in self.names:
                changed.append(name)
        if changed and judge:
            self.judge_now(changed)

    def handle(self, name: str, kind: str, exit_code: int | None,
               message: str) -> tuple[int, bytes]:
        """Record one pushed report (on a push writer thread); the HTTP answer."""
        report = Report(kind, time.time(), exit_code=exit_code,
                        message=logs.mask(message, self.secrets))
        try:
            self.store.report(name, report)
        except StoreError as exc:
            log.warning("push: could not record a %s report of %s: %s", kind, name, exc)
            return 503, b"could not record the report now; retry shortly\n"
        return 200, b"OK\n"

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
