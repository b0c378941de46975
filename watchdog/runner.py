"""`pd-watchdog run`: wires config, store, scheduler and sender together and handles signals.

Everything that decides lives in watchdog.state; this module only moves data between the
edges and keeps one rule: a state change and the events it causes are stored together
before anything is sent.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from pagerduty_api import Alert
from watchdog.config import Config, ConfigError, load
from watchdog.model import Check, CheckState, Event, Policy, ProbeResult
from watchdog.scheduler import Scheduler
from watchdog.sender import LoggingAlert, Sender
from watchdog.state import Known, describe, next_interval, reconcile, step
from watchdog.store import Store

log = logging.getLogger("watchdog.runner")

PROBE_GRACE = 10.0  # seconds running probes may finish in after SIGTERM
FLUSH_TIMEOUT = 5.0  # seconds the sender may keep sending after SIGTERM


class Runner:
    """One running watchdog: its config, its state, and the threads that serve them."""

    def __init__(self, config: Config, *, force_dry_run: bool = False) -> None:
        self.config = config
        self.force_dry_run = force_dry_run
        self.store = Store(config.state_dir)
        self.store.lock()
        self._lock = threading.Lock()
        self._closing = False
        self.checks: dict[str, Check] = {}
        self.policies: dict[str, Policy] = {}
        self.states: dict[str, CheckState] = {}
        self.hooks: list[Callable[[Check, ProbeResult, CheckState, list[Event]], None]] = []
        self.stop_requested = threading.Event()
        self.reload_requested = threading.Event()
        self._wake = threading.Event()
        self.sender = Sender(self.store, self._make_alert(config))
        self.scheduler = Scheduler(self._on_result, workers=config.workers)

    @property
    def dry_run(self) -> bool:
        return self.force_dry_run or self.config.dry_run

    def _make_alert(self, config: Config):
        if self.force_dry_run or config.dry_run:
            return LoggingAlert()
        pd = config.pagerduty
        # retry_deadline=0: the sender owns retrying, durably, for as long as it takes.
        return Alert(pd.routing_key, api=pd.api, url=pd.url, source=pd.source, retry_deadline=0)

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Load what the last run left, apply the config, start sending and scheduling."""
        for warning in self.config.warnings:
            log.warning("%s", warning)
        if self.force_dry_run and not self.config.dry_run:
            log.warning("dry-run (--dry-run): events are logged, not sent to PagerDuty")
        stored = self.store.load_checks()
        known = {
            name: Known(row.fingerprint, row.incident_key, row.state)
            for name, row in stored.items()
        }
        self._apply(self.config, known)
        self.sender.start()
        self.scheduler.set_checks(self.config.checks)
        pending = self.store.outbox_stats(time.time())["pending"]
        log.info(
            "started: %d checks from %d files, %d triggered, %d events pending, state in %s",
            len(self.checks),
            len(self.config.files),
            self.triggered_count(),
            pending,
            self.config.state_dir,
        )

    def install_signal_handlers(self) -> None:
        def stop(signum, frame):
            self.stop_requested.set()
            self._wake.set()

        def reload(signum, frame):
            self.reload_requested.set()
            self._wake.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)

    def loop(self, on_tick: Callable[[], None] | None = None) -> None:
        """The scheduling thread: start due probes, handle reloads, until asked to stop."""
        while not self.stop_requested.is_set():
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self.reload()
            idle = self.scheduler.tick()
            if on_tick is not None:
                on_tick()
            self._wake.wait(min(idle, 0.5))
            self._wake.clear()

    def shutdown(self) -> int:
        """Stop scheduling, let probes finish briefly, flush what can be sent; return pending."""
        running = self.scheduler.running()
        if running:
            log.info("stopping: waiting up to %.0fs for %d running probes", PROBE_GRACE, running)
        if not self.scheduler.shutdown(PROBE_GRACE):
            log.warning(
                "stopping: some probes still running after %.0fs; their results are dropped",
                PROBE_GRACE,
            )
        with self._lock:
            self._closing = True
        pending = self.sender.stop(FLUSH_TIMEOUT)
        if pending:
            log.warning("stopped with %d events pending; they are sent at the next start", pending)
        else:
            log.info("stopped; nothing pending")
        self.store.close()
        return pending

    # --- config -------------------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read the config; an invalid one is rejected and the running one kept."""
        log.info("reload: reading %s", self.config.path)
        try:
            config = load(self.config.path)
        except ConfigError as exc:
            log.error("reload rejected, still running the previous configuration:")
            for error in exc.errors:
                log.error("  %s", error)
            return False
        if config.state_dir != self.config.state_dir:
            log.warning(
                "reload: state_dir changed to %s; that takes a restart, keeping %s",
                config.state_dir,
                self.config.state_dir,
            )
            config = replace(config, state_dir=self.config.state_dir)
        if config.workers != self.config.workers:
            log.warning(
                "reload: workers changed; that takes a restart, keeping %d", self.config.workers
            )
        if config.pagerduty != self.config.pagerduty or config.dry_run != self.config.dry_run:
            self.sender.alert = self._make_alert(config)
            log.info("reload: PagerDuty settings changed")
        for warning in config.warnings:
            log.warning("%s", warning)
        with self._lock:
            known = {
                name: Known(self.checks[name].fingerprint, self.checks[name].incident_key, state)
                for name, state in self.states.items()
            }
        self._apply(config, known)
        self.config = config
        self.scheduler.set_checks(config.checks)
        log.info("reload: %d checks from %d files", len(config.checks), len(config.files))
        return True

    def _apply(self, config: Config, known: dict[str, Known]) -> None:
        plan = reconcile(known, config.checks, config.pagerduty.source)
        queued = False
        now = time.time()
        with self._lock:
            for name, events in plan.forget.items():
                self.store.forget(name, events)
                self.checks.pop(name, None)
                self.policies.pop(name, None)
                self.states.pop(name, None)
                if events:
                    log.warning(
                        "check %s: removed while triggered; resolving %s",
                        name,
                        events[0].incident_key,
                    )
                    queued = True
                else:
                    log.info("check %s: removed", name)
            for check in config.checks:
                name = check.name
                state = plan.states[name]
                events = plan.events.get(name, [])
                if name in plan.changed or name not in known or events:
                    self.store.record(
                        name, check.fingerprint, check.incident_key, state, None, now, events
                    )
                for event in events:
                    log.warning(
                        "check %s: incident key changed; resolving old key %s",
                        name,
                        event.incident_key,
                    )
                    queued = True
                if name in plan.changed and known:
                    log.info("check %s: definition changed", name)
                self.checks[name] = check
                self.policies[name] = Policy.of(check)
                self.states[name] = state
        if queued:
            self.sender.wake()

    # --- results ------------------------------------------------------------------------

    def _on_result(self, check: Check, result: ProbeResult, planned: float, started: float) -> None:
        with self._lock:
            current = self.checks.get(check.name)
            if self._closing or current is None or current.fingerprint != check.fingerprint:
                return  # a result from before a reload (or after shutdown): not ours any more
            before = self.states[check.name]
            policy = self.policies[check.name]
            after, events = step(before, result, policy)
            self.store.record(
                check.name, check.fingerprint, check.incident_key, after, result, started, events
            )
            self.states[check.name] = after
        if events:
            self.sender.wake()
        was, now = describe(before, policy), describe(after, policy)
        if was != now:
            level = logging.WARNING if after.failures or after.triggered else logging.INFO
            log.log(level, "check %s: %s -> %s: %s", check.name, was, now, result.summary)
        for event in events:
            log.warning(
                "check %s: queued %s %s (%s): %s",
                check.name,
                event.action,
                event.incident_key,
                event.severity,
                event.summary,
            )
        if not result.ok and next_interval(after, check) < check.interval:
            self.scheduler.check_sooner(check.name, next_interval(after, check))
        for hook in self.hooks:
            hook(check, result, after, events)

    def triggered_count(self) -> int:
        with self._lock:
            return sum(1 for state in self.states.values() if state.triggered)
