"""`pd-watchdog run`: wires config, store, scheduler and sender together and handles signals.

Everything that decides lives in watchdog.state; this module only moves data between the
edges and keeps one rule: a state change and the events it causes are stored together
before anything is sent.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from watchdog import __version__, aio
from watchdog.changes import ChangeNotes
from watchdog.config import Config
from watchdog.heartbeat import HeartbeatPinger
from watchdog.holding import HoldKeeper, log_hold
from watchdog.httpserve import MetricsServer
from watchdog.metrics import Metrics
from watchdog.model import Check, CheckState, Event, Policy, ProbeResult
from watchdog.notify import SystemdNotifier
from watchdog.page import History, enrich
from watchdog.passive_feed import PassiveFeed
from watchdog.recorder import Recorder
from watchdog.reloading import make_alert, make_changes, reload_runner, resync_delivery
from watchdog.remediation import Remediated, Remedies, longest_run
from watchdog.reporting import (
    NO_KEY,
    Counts,
    Reporter,
    log_reconciled,
    log_removed,
    log_result,
    log_started,
    mask_result,
    serve_metrics,
    start_heartbeat,
)
from watchdog.runtime import RuntimeFile
from watchdog.scheduler import Scheduler
from watchdog.sender import Sender
from watchdog.signals import Requests
from watchdog.state import Known, next_interval, reconcile, step
from watchdog.store import Deferred, Store, StoreError
from watchdog.vitals import Vitals

if TYPE_CHECKING:
    from watchdog.leadership.term import Term

log = logging.getLogger("watchdog.runner")

PROBE_GRACE = 10.0  # seconds running probes may finish in after SIGTERM
FLUSH_TIMEOUT = 5.0  # seconds the sender may keep sending after SIGTERM
HOUSEKEEPING = 1.0  # seconds between refreshes of STATUS= and metrics, and result flushes


class Runner:
    """One running watchdog: its config, its state, and the threads that serve them."""

    def __init__(self, config: Config, *, force_dry_run: bool = False,
                 term: Term | None = None) -> None:
        self.config = config
        self.force_dry_run = force_dry_run
        self.term = term  # this runner leads a group (watchdog.leadership): what it borrows
        self.store = term.store if term else Store.for_config(config)
        if term is None:
            self.store.lock()
        self._lock = threading.Lock()
        self._closing = False
        self.checks: dict[str, Check] = {}
        self.policies: dict[str, Policy] = {}
        self.states: dict[str, CheckState] = {}
        self.keeper = HoldKeeper()
        self.history = History()  # the last results and failing-since a page carries
        self.requests = term.requests if term else Requests()
        self.stop_requested = self.requests.stop
        self.reload_requested = self.requests.reload
        self._wake = self.requests.wake
        self.notifier = term.notifier if term else SystemdNotifier()
        self.metrics = term.metrics if term else (Metrics() if config.metrics_listen else None)
        self.metrics_server: MetricsServer | None = None
        self.heartbeat: HeartbeatPinger | None = None
        self._next_housekeeping = 0.0
        # Results that changed no state, waiting for the next flush (name -> row); a state
        # change and its events are never here: they are written at once.
        self._unsaved: dict[str, tuple[str, ProbeResult, float]] = {}
        # Checks with no result since this start or since their definition changed: "pending".
        self.pending: dict[str, float] = {}  # name -> when (wall clock) it became pending
        self._started_at = time.time()
        self.sender = Sender(self.store, *self._make_alert(config), on_result=self._on_sent)
        self.recorder = Recorder(self.store, self.sender)
        self.changes = ChangeNotes(self.recorder, self.store)  # change events (changes.py)
        self.runtime = RuntimeFile(self.store.state_dir)
        self.remedies = Remedies(self, on_remediated=self._on_remediated)
        self.scheduler = Scheduler(self._on_result, workers=config.workers,
                                   prepare=self.remedies.prepare)
        self.passive = PassiveFeed(self.store, self.scheduler.run_now)
        self.vitals = Vitals(self.scheduler, self.recorder, self.sender)
        self.reporter = Reporter(
            self.store, self.recorder, self.scheduler, self.vitals, self.notifier, self.metrics,
            counts=self._counts, dry_run_reason=self._dry_run_reason,
            forced_dry_run=force_dry_run,
        )

    @property
    def dry_run(self) -> bool:
        return self.force_dry_run or self.config.dry_run

    def _make_alert(self, config: Config) -> tuple:
        dry_run = self.force_dry_run or config.dry_run
        return make_alert(config, dry_run), make_changes(config, dry_run)

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Load what the last run left, apply the config, start sending and scheduling."""
        for warning in [*self.config.warnings, *self.store.warnings]:
            log.warning("%s", warning)
        self.runtime.open()
        if self.force_dry_run and not self.config.dry_run:
            log.warning("dry-run (--dry-run): events are logged, not sent to PagerDuty")
        stored = self.store.load_checks()
        known = {
            name: Known(row.fingerprint, row.incident_key, row.state)
            for name, row in stored.items()
        }
        for name, row in stored.items():
            self.history.seed(name, row.last_result, row.last_at, row.failing_since)
        self._started_at = time.time()
        self._apply(self.config, known, since=self._started_at)
        self._resync_delivery()
        self.passive.start(self.config)
        self.sender.start()
        self.scheduler.set_checks(self.config.checks)
        self._start_metrics()
        self._start_heartbeat(self.config)
        pending = self.store.outbox_stats(time.time())["pending"]
        log_started(self.config, len(self.checks), self.triggered_count(), pending)
        self.notifier.ready(self.reporter.status_line(pending))

    def _start_metrics(self) -> None:
        if self.metrics is None or self.config.metrics_listen is None:
            return
        self.metrics.set_info(__version__, len(self.checks), self.dry_run)
        if self.term is not None:
            return  # the member serves /metrics and /healthz across its terms
        host, port = self.config.metrics_listen
        self.metrics_server = serve_metrics(self.metrics, host, port, self.service_health)

    def _start_heartbeat(self, config: Config) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()
            self.heartbeat = None
        self.heartbeat = start_heartbeat(config, lambda: self.service_health()[0])

    def install_signal_handlers(self) -> None:
        self.requests.install()

    def loop(self) -> None:
        """Start the scheduler, then handle reloads and housekeeping until asked to stop.

        The systemd watchdog is pinged from here, only while health() (which watches the
        scheduler's loop and workers) says all is well.
        """
        self.scheduler.start()
        last_round = time.monotonic()
        while not self.stop_requested.is_set():
            if time.monotonic() - last_round > aio.PAUSE:
                # This thread did not run either: the process was stopped or the VM paused,
                # so the scheduler's quiet loop is no wedge; judge it from now on.
                self.vitals.resumed()
            last_round = time.monotonic()
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self.reload()
            now = time.monotonic()
            if now >= self._next_housekeeping:
                self._next_housekeeping = now + HOUSEKEEPING
                self._housekeeping()
            self.notifier.maybe_ping(self.health()[0])
            self._wake.wait(min(max(0.0, self._next_housekeeping - time.monotonic()), 0.5))
            self._wake.clear()

    def health(self) -> tuple[bool, str]:
        """Healthy while the loop ticks and probes still finish (watchdog.vitals)."""
        return self.vitals.health(self._longest_timeout())

    def service_health(self) -> tuple[bool, str]:
        """health() plus delivery and the state file, for the heartbeat and /healthz."""
        age = self.reporter.outbox.get("oldest_pending_age") or 0.0
        return self.vitals.service_health(self._longest_timeout(), age)

    def degraded(self) -> str | None:
        """Why the state file cannot be trusted right now (pages still go out), or None."""
        return self.vitals.degraded()

    def _longest_timeout(self) -> float:
        return max((longest_run(check) for check in self.config.checks), default=0.0)

    def _housekeeping(self) -> None:
        """Check the state files, write what waits in memory and the batched results; refresh
        what is read from outside: STATUS=, runtime.json and metrics."""
        try:
            silences = self.store.silences(time.time())
        except StoreError:
            silences = None  # the store cannot say now: the last ones read are kept
        with self._lock:
            if silences is not None:
                self.keeper.refresh(silences, time.time())
            self.changes.tick(self.keeper.holds, silences, time.time())
            if not self._closing:
                self.recorder.check_files()
                self.recorder.flush()
                self._save_unsaved()
                self.runtime.write(self.reporter.runtime_report(self._started_at, self.pending))
        self.passive.refresh(time.time())
        self.reporter.refresh(time.time())

    def _counts(self) -> Counts:
        return Counts(len(self.checks), len(self.pending), self.triggered_count())

    def _dry_run_reason(self) -> str | None:
        if self.force_dry_run:
            return "--dry-run"
        return NO_KEY if self.config.dry_run else None

    def shutdown(self) -> int:
        """Stop scheduling, let probes finish briefly, flush what can be sent; return pending."""
        self.notifier.stopping()
        if self.heartbeat is not None:
            self.heartbeat.stop()
        self.passive.stop()  # no more pushes: their writes would find the store closed
        running = self.scheduler.health().running
        if running:
            log.info("stopping: waiting up to %.0fs for %d running probes", PROBE_GRACE, running)
        if not self.scheduler.shutdown(PROBE_GRACE):
            log.warning(
                "stopping: some probes still running after %.0fs; their results are dropped",
                PROBE_GRACE,
            )
        with self._lock:
            self._closing = True
            self._save_unsaved()
            self.recorder.flush()
        pending = self.sender.stop(FLUSH_TIMEOUT)
        with self._lock:
            self.reporter.report_unrecorded()
        if pending:
            log.warning("stopped with %d events pending; they are sent at the next start", pending)
        else:
            log.info("stopped; nothing pending")
        self.store.close()
        self.runtime.close()
        if self.metrics_server is not None:
            self.metrics_server.stop()
        self.notifier.close()
        return pending

    # --- config -------------------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read the config; an invalid one is rejected and the running one kept."""
        log.info("reload: reading %s", self.config.path)
        self.notifier.reloading()
        try:
            accepted = self._reload()
        finally:
            self.notifier.ready(self.reporter.status_line(self.sender.pending_count()))
        return accepted

    def _reload(self) -> bool:
        return reload_runner(self)  # watchdog/reloading.py

    def _apply(self, config: Config, known: dict[str, Known] | None = None, *,
               since: float | None = None) -> None:
        """Reconcile and install a config in one hold of the lock, so that no probe result
        lands between reading the states and writing them back (it would be lost)."""
        now = time.time()
        with self._lock:
            self._save_unsaved()  # before rows are rewritten: a later flush must not undo them
            if known is None:
                known = {
                    name: Known(self.checks[name].fingerprint, self.checks[name].incident_key, st)
                    for name, st in self.states.items()
                }
            plan = reconcile(known, config.checks, config.pagerduty.source)
            for name, events in plan.forget.items():
                self.recorder.forget(name, events)
                self.reporter.forget(name)
                self.checks.pop(name, None)
                self.pending.pop(name, None)
                self.policies.pop(name, None)
                self.states.pop(name, None)
                self.history.forget(name)
                if self.metrics is not None:
                    self.metrics.forget(name)
                log_removed(name, events)
            changes = []  # written in one transaction below, in this order
            for check in config.checks:
                name = check.name
                state = plan.states[name]
                events = plan.events.get(name, [])
                if name in plan.changed or name not in known or events:
                    changes.append(Deferred(name, check.fingerprint, check.incident_key,
                                            state, None, now, queue=tuple(events)))
                log_reconciled(name, events, changed=name in plan.changed and bool(known))
                if name in plan.changed or name not in self.checks:
                    self.pending[name] = now if since is None else since
                if name in plan.changed:
                    self.history.forget(name)  # its counts restart, and so does failing-since
                self.checks[name] = check
                self.policies[name] = Policy.of(check)
                self.states[name] = state
            self.recorder.record_many(changes)
            self.keeper.configure(config.checks, config.maintenance)
            self.changes.apply(self.config, config)  # a reload's change event, if any
            self.passive.apply(config, now)

    def _resync_delivery(self) -> None:
        resync_delivery(self)

    # --- results ------------------------------------------------------------------------

    def _on_result(
        self, check: Check, result: ProbeResult, planned: float, started: float
    ) -> float | None:
        """Mask, step the state, record, log; return how soon to probe again (None: the
        check's interval), for the scheduler to apply."""
        # Before it is stored or sent anywhere: a plugin may print what it was given.
        result = mask_result(result, self.config.secrets)
        with self._lock:
            current = self.checks.get(check.name)
            if self._closing or current is None or current.fingerprint != check.fingerprint:
                return None  # a result from before a reload (or after shutdown): not ours any more
            before = self.states[check.name]
            policy = self.policies[check.name]
            self.changes.result_at(self.keeper.holds, started)  # a window's end before its pages
            asked = self.keeper.ask(check, before, result, policy, self.states, started)
            self.history.observe(check.name, result, started)
            after, events = step(before, result, policy, asked.inputs)
            if events:  # what a page carries, recorded with the state (watchdog/page.py)
                events = enrich(events, current, after, self.history)
            if events or after != before:
                # A change of state is written at once, with its events, before any is sent.
                self._unsaved.pop(check.name, None)
                self.recorder.record(
                    check.name, check.fingerprint, check.incident_key, after, result, started,
                    events,
                )
            else:
                # The same state again: only last_result is new; saved within HOUSEKEEPING.
                self._unsaved[check.name] = (check.name, result, started)
            self.states[check.name] = after
            self.pending.pop(check.name, None)
            asked.probe_now += self.remedies.judge(check, result.ok, after.triggered)
            if self.metrics is not None:
                self.metrics.observe_result(check.name, result, after, lag=started - planned,
                                            held=asked.inputs.hold is not None)
        log_result(check, before, after, policy, result, events)
        log_hold(check.name, before, after, asked.inputs.hold, events)
        if asked.probe_now:
            self.scheduler.run_now(asked.probe_now)
        sooner = next_interval(after, check)
        return sooner if not result.ok and sooner < check.interval else None

    def _save_unsaved(self) -> None:
        """Write the batched results (call with self._lock held); kept until that works."""
        if not self._unsaved:
            return
        rows = list(self._unsaved.values())
        if self.recorder.write(lambda: self.store.record_results(rows)):
            self._unsaved.clear()

    def _on_remediated(self, check: Check, outcome: Remediated) -> None:
        """A remediation ran and the check said whether it helped: a metric, a change event."""
        if self.metrics is not None:
            self.metrics.remediation(check.name, "fixed" if outcome.fixed else "failed")
        self.changes.remediation(check.name, *outcome.change_note())

    def _on_sent(self, event: Event, outcome: str) -> None:
        """Count a delivery attempt (the sender's callback)."""
        if self.metrics is not None:
            self.metrics.event_outcome(event.action, outcome)

    def triggered_count(self) -> int:
        with self._lock:
            return sum(1 for state in self.states.values() if state.triggered)
