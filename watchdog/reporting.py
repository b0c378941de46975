"""What the runner tells the outside: STATUS= (sd_notify), the metrics that are not per
result, runtime.json for `status`, the /metrics listener and the heartbeat, the log lines of
a result, and what a stop leaves unrecorded."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace

from watchdog import logs
from watchdog.config import Config
from watchdog.heartbeat import HeartbeatPinger
from watchdog.httpserve import MetricsServer
from watchdog.metrics import Metrics
from watchdog.model import TRIGGER, Check, CheckState, Event, Policy, ProbeResult
from watchdog.notify import SystemdNotifier
from watchdog.recorder import Recorder
from watchdog.scheduler import Scheduler
from watchdog.state import describe
from watchdog.store import Store, StoreError
from watchdog.vitals import Vitals
from watchdog.words import plural

log = logging.getLogger("watchdog.runner")

NO_KEY = "no routing key"  # why the runner is in dry-run, as runtime.json tells `status`


@dataclass(frozen=True)
class Counts:
    """How many checks the runner has, are pending (no result yet) and are triggered."""

    checks: int
    pending: int
    triggered: int


class Reporter:
    """Keeps STATUS= and the metrics up to date; builds the runtime.json report."""

    def __init__(self, store: Store, recorder: Recorder, scheduler: Scheduler, vitals: Vitals,
                 notifier: SystemdNotifier, metrics: Metrics | None, *,
                 counts: Callable[[], Counts], dry_run_reason: Callable[[], str | None],
                 forced_dry_run: bool) -> None:
        self.store = store
        self.recorder = recorder
        self.scheduler = scheduler
        self.vitals = vitals
        self.notifier = notifier
        self.metrics = metrics
        self.counts = counts
        self.dry_run_reason = dry_run_reason
        self.forced_dry_run = forced_dry_run
        self.outbox: dict = {}  # the latest outbox_stats
        self._status = ""
        self._skipped_shown: dict[str, tuple[int, int]] = {}

    def refresh(self, now: float) -> None:
        """Read the outbox (`now`: wall clock); push STATUS= if it changed, and the metrics."""
        try:
            stats = self.store.outbox_stats(now)
        except StoreError:
            stats = self.outbox or {"pending": 0, "dead_letters": 0}  # said by the recorder
        self.outbox = stats
        counts = self.counts()
        status = self._line(counts, stats["pending"], stats["dead_letters"])
        if status != self._status:
            self._status = status
            self.notifier.status(status)
        if self.metrics is None:
            return
        self.metrics.set_outbox(stats)
        self.metrics.set_store(self.vitals.degraded() is None, self.recorder.held)
        self.metrics.set_pending(counts.pending)
        for name, counts in list(self.scheduler.stats.items()):
            shown = (counts.skipped, counts.missed)
            if self._skipped_shown.get(name) != shown:
                self._skipped_shown[name] = shown
                self.metrics.set_skipped(name, *shown)

    def forget(self, name: str) -> None:
        """The check is gone: its skipped/missed counts are shown afresh if it comes back."""
        self._skipped_shown.pop(name, None)

    def status_line(self, pending: int, dead_letters: int = 0) -> str:
        """The one line STATUS= says: checks, triggered, events pending, and any trouble."""
        return self._line(self.counts(), pending, dead_letters)

    def _line(self, counts: Counts, pending: int, dead_letters: int) -> str:
        mode = " (dry-run)" if self.forced_dry_run else ""
        dead = f", {plural(dead_letters, 'dead letter')} (see status)" if dead_letters else ""
        degraded = self.vitals.degraded()
        waiting = f" ({counts.pending} pending)" if counts.pending else ""
        line = (
            f"{plural(counts.checks, 'check')}{waiting}, {counts.triggered} triggered, "
            f"{plural(pending, 'event')} pending{dead}{mode}"
        )
        if self.dry_run_reason() == NO_KEY:  # a forgotten key must show, not just once
            line = f"NO ROUTING KEY: dry-run, nothing is sent to PagerDuty; {line}"
        return f"DEGRADED: {degraded}; {line}" if degraded else line

    def runtime_report(self, started_at: float, pending: dict[str, float]) -> dict:
        """For `status` (see watchdog.runtime); call with the runner's lock held."""
        return {
            "pid": os.getpid(),
            "running": True,
            "degraded": self.vitals.degraded(),
            "degraded_for": self.recorder.degraded_for(),
            "dry_run": self.dry_run_reason(),
            "held": self.recorder.held,
            # What `status` needs to tell "pending" from the file's last_at, kept small: the
            # start (every check is pending until its first result since), and the checks a
            # reload changed that have not run since (a 5,000-name list would not fit).
            "started_at": started_at,
            "changed": {name: since for name, since in pending.items() if since > started_at},
            "checks": self.recorder.held_states(),
        }

    def report_unrecorded(self) -> None:
        """At a stop with changes still in memory: say what the next start will not know."""
        held = self.recorder.held_states()
        if not held:
            return
        opened = sorted(name for name, kept in held.items()
                        if kept["state"] and kept["state"].get("triggered"))
        log.error(
            "stopping with %d state changes the state file could not take (%s): they are "
            "lost. Incidents opened meanwhile that the next start will not know of: %s",
            len(held), self.recorder.trouble, ", ".join(opened) or "none",
        )


def mask_result(result: ProbeResult, secrets: frozenset[str]) -> ProbeResult:
    """The result with every secret masked in its summary and details."""
    if not secrets:
        return result
    summary = logs.mask(result.summary, secrets)
    details = logs.mask_data(result.details, secrets)
    if summary is result.summary and details is result.details:
        return result
    return replace(result, summary=summary, details=details)


def log_result(check: Check, before: CheckState, after: CheckState, policy: Policy,
               result: ProbeResult, events: list[Event]) -> None:
    """Log a change of what the check is said to be, and every event it queued."""
    if after != before:
        was, now = describe(before, policy), describe(after, policy)
        if was != now:
            # A check getting worse is a warning; one getting better is news, not trouble.
            level = logging.INFO if result.ok else logging.WARNING
            log.log(level, "check %s: %s -> %s: %s", check.name, was, now, result.summary)
    for event in events:
        log.log(
            logging.WARNING if event.action == TRIGGER else logging.INFO,
            "check %s: queued %s %s (%s): %s",
            check.name,
            event.action,
            event.incident_key,
            event.severity,
            event.summary,
        )


def log_started(config: Config, checks: int, triggered: int, pending: int) -> None:
    log.info("started: %s from %s, %d triggered, %s pending, state in %s",
             plural(checks, "check"), plural(len(config.files), "file"), triggered,
             plural(pending, "event"), config.state_dir)


def log_removed(name: str, events: list[Event]) -> None:
    """A reload removed the check; `events` resolve its open incident, if it had one."""
    if events:
        log.warning("check %s: removed while triggered; resolving %s", name,
                    events[0].incident_key)
    else:
        log.info("check %s: removed", name)


def log_reconciled(name: str, events: list[Event], *, changed: bool) -> None:
    """A reload kept the check: `events` resolve its old incident keys; `changed`: its
    definition changed."""
    for event in events:
        log.warning("check %s: incident key changed; resolving old key %s", name,
                    event.incident_key)
    if changed:
        log.info("check %s: definition changed", name)


def serve_metrics(metrics: Metrics, host: str, port: int,
                  healthy: Callable[[], tuple[bool, str]]) -> MetricsServer | None:
    """The /metrics and /healthz listener, started; None if it cannot listen (logged)."""
    server = MetricsServer(metrics, host, port, healthy)
    try:
        server.start()
    except OSError as exc:
        # Paging matters more than metrics: say so loudly, keep running.
        log.error(
            "metrics: cannot listen on %s:%d: %s; running without /metrics", host, port, exc
        )
        return None
    return server


def start_heartbeat(config: Config, healthy: Callable[[], bool]) -> HeartbeatPinger | None:
    """The heartbeat pinger of config (started), or None when it has none."""
    if config.heartbeat is None:
        return None
    logs.add_secrets([config.heartbeat.url])  # ping URLs carry their token
    beat = config.heartbeat
    pinger = HeartbeatPinger(beat.url, beat.interval, beat.timeout, healthy)
    pinger.start()
    return pinger
