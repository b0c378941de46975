"""`pd-watchdog run`: wires config, store, scheduler and sender together and handles signals.

Everything that decides lives in watchdog.state; this module only moves data between the
edges and keeps one rule: a state change and the events it causes are stored together
before anything is sent.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import threading
import time
from dataclasses import replace

from pagerduty_api import Alert
from watchdog import __version__, aio, logs
from watchdog.config import Config, ConfigError, load
from watchdog.config.reload import keep_running, restart_changes
from watchdog.heartbeat import HeartbeatPinger
from watchdog.httpserve import MetricsServer
from watchdog.metrics import Metrics
from watchdog.model import TRIGGER, Check, CheckState, Event, Policy, ProbeResult
from watchdog.notify import SystemdNotifier
from watchdog.recorder import Recorder
from watchdog.runtime import RuntimeFile
from watchdog.scheduler import Scheduler
from watchdog.sender import LoggingAlert, Sender
from watchdog.state import Known, describe, next_interval, reconcile, retrigger, step
from watchdog.store import Store, StoreError
from watchdog.words import plural

log = logging.getLogger("watchdog.runner")

PROBE_GRACE = 10.0  # seconds running probes may finish in after SIGTERM
FLUSH_TIMEOUT = 5.0  # seconds the sender may keep sending after SIGTERM
NO_KEY = "no routing key"  # why the runner is in dry-run, as runtime.json tells `status`
HOUSEKEEPING = 1.0  # seconds between refreshes of STATUS= and metrics, and result flushes
STALL = 30.0  # seconds without a finished probe, all workers busy, before we call it wedged
LOOP_STALL = 10.0  # seconds without a scheduler tick (it ticks at least every 0.5 s): wedged
DELIVERY_STALL = 600.0  # seconds an event may wait for PagerDuty before we stop saying healthy


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
        self.stop_requested = threading.Event()
        self.reload_requested = threading.Event()
        self._wake = threading.Event()
        self.notifier = SystemdNotifier()
        self.metrics = Metrics() if config.metrics_listen else None
        self.metrics_server: MetricsServer | None = None
        self.heartbeat: HeartbeatPinger | None = None
        self._next_housekeeping = 0.0
        self._resumed = 0.0  # monotonic: when the process last came back from a pause
        self._status = ""
        self._outbox: dict = {}
        # Results that changed no state, waiting for the next flush (name -> row); a state
        # change and its events are never here: they are written at once.
        self._unsaved: dict[str, tuple[str, ProbeResult, float]] = {}
        self._skipped_shown: dict[str, tuple[int, int]] = {}
        # Checks with no result since this start or since their definition changed: "pending".
        self.pending: dict[str, float] = {}  # name -> when (wall clock) it became pending
        self._started_at = time.time()
        self.sender = Sender(self.store, self._make_alert(config), on_result=self._on_sent)
        self.recorder = Recorder(self.store, self.sender)
        self.runtime = RuntimeFile(self.store.state_dir)
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
        self._started_at = time.time()
        self._apply(self.config, known, since=self._started_at)
        self._resync_delivery()
        self.sender.start()
        self.scheduler.set_checks(self.config.checks)
        self._start_metrics()
        self._start_heartbeat(self.config)
        pending = self.store.outbox_stats(time.time())["pending"]
        log.info(
            "started: %s from %s, %d triggered, %s pending, state in %s",
            plural(len(self.checks), "check"),
            plural(len(self.config.files), "file"),
            self.triggered_count(),
            plural(pending, "event"),
            self.config.state_dir,
        )
        self.notifier.ready(self._status_line(pending))

    def _start_metrics(self) -> None:
        if self.metrics is None or self.config.metrics_listen is None:
            return
        self.metrics.set_info(__version__, len(self.checks), self.dry_run)
        host, port = self.config.metrics_listen
        server = MetricsServer(self.metrics, host, port, self.service_health)
        try:
            server.start()
        except OSError as exc:
            # Paging matters more than metrics: say so loudly, keep running.
            log.error(
                "metrics: cannot listen on %s:%d: %s; running without /metrics", host, port, exc
            )
            return
        self.metrics_server = server

    def _start_heartbeat(self, config: Config) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()
            self.heartbeat = None
        if config.heartbeat is None:
            return
        logs.add_secrets([config.heartbeat.url])  # ping URLs carry their token
        beat = config.heartbeat
        self.heartbeat = HeartbeatPinger(
            beat.url, beat.interval, beat.timeout, lambda: self.service_health()[0]
        )
        self.heartbeat.start()

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
                self._resumed = time.monotonic()
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
        """Healthy while the loop ticks and probes still finish (for WATCHDOG=1, heartbeat,
        /healthz): a stuck loop or a pool whose every worker hangs is not healthy."""
        now = time.monotonic()
        vitals = self.scheduler.health(now)
        quiet = min(vitals.last_tick_age, now - self._resumed)
        if quiet > LOOP_STALL:
            return False, f"scheduler loop has not run for {quiet:.0f}s"
        if (
            vitals.busy_workers >= vitals.workers
            and vitals.last_finished_age > STALL + self._longest_timeout()
        ):
            return False, "every probe worker is stuck; no probe finished recently"
        return True, "ok"

    def service_health(self) -> tuple[bool, str]:
        """health() plus delivery and the state file, for the heartbeat and /healthz: a
        runner that cannot get pages to PagerDuty, or cannot record them, must stop saying it
        is fine. (Not for WATCHDOG=1: a restart fixes neither PagerDuty nor a full disk.)"""
        healthy, why = self.health()
        if not healthy:
            return healthy, why
        degraded = self.degraded()
        if degraded:
            return False, degraded
        age = self._outbox.get("oldest_pending_age") or 0.0
        if age > DELIVERY_STALL:
            return False, f"an event has waited {age:.0f}s for PagerDuty; see `status`"
        return True, "ok"

    def degraded(self) -> str | None:
        """Why the state file cannot be trusted right now (pages still go out), or None."""
        trouble = self.recorder.trouble or self.sender.settle_error
        if trouble is None:
            return None
        held = self.recorder.held
        kept = f"; {held} state changes kept in memory" if held else ""
        return f"degraded: cannot record state ({trouble}){kept}; pages still go out"

    def _longest_timeout(self) -> float:
        return max((check.timeout for check in self.config.checks), default=0.0)

    def _housekeeping(self) -> None:
        """Check the state files, write what waits in memory and the batched results; refresh
        what is read from outside: STATUS=, runtime.json and metrics."""
        with self._lock:
            if not self._closing:
                self.recorder.check_files()
                self.recorder.flush()
                self._save_unsaved()
                self.runtime.write(self._runtime_report())
        try:
            stats = self.store.outbox_stats(time.time())
        except StoreError:
            stats = self._outbox or {"pending": 0, "dead_letters": 0}  # said by the recorder
        self._outbox = stats
        status = self._status_line(stats["pending"], stats["dead_letters"])
        if status != self._status:
            self._status = status
            self.notifier.status(status)
        if self.metrics is not None:
            self.metrics.set_outbox(stats)
            self.metrics.set_store(self.degraded() is None, self.recorder.held)
            self.metrics.set_pending(len(self.pending))
            for name, counts in list(self.scheduler.stats.items()):
                shown = (counts.skipped, counts.missed)
                if self._skipped_shown.get(name) != shown:
                    self._skipped_shown[name] = shown
                    self.metrics.set_skipped(name, *shown)

    def _status_line(self, pending: int, dead_letters: int = 0) -> str:
        mode = " (dry-run)" if self.force_dry_run else ""
        dead = f", {plural(dead_letters, 'dead letter')} (see status)" if dead_letters else ""
        degraded = self.degraded()
        waiting = f" ({len(self.pending)} pending)" if self.pending else ""
        line = (
            f"{plural(len(self.checks), 'check')}{waiting}, {self.triggered_count()} triggered, "
            f"{plural(pending, 'event')} pending{dead}{mode}"
        )
        if self._dry_run_reason() == NO_KEY:  # a forgotten key must show, not just once
            line = f"NO ROUTING KEY: dry-run, nothing is sent to PagerDuty; {line}"
        return f"DEGRADED: {degraded}; {line}" if degraded else line

    def _dry_run_reason(self) -> str | None:
        if self.force_dry_run:
            return "--dry-run"
        return NO_KEY if self.config.dry_run else None

    def _runtime_report(self) -> dict:
        """For `status` (see watchdog.runtime): call with self._lock held."""
        return {
            "pid": os.getpid(),
            "running": True,
            "degraded": self.degraded(),
            "degraded_for": self.recorder.degraded_for(),
            "dry_run": self._dry_run_reason(),
            "held": self.recorder.held,
            # What `status` needs to tell "pending" from the file's last_at, kept small: the
            # start (every check is pending until its first result since), and the checks a
            # reload changed that have not run since (a 5,000-name list would not fit).
            "started_at": self._started_at,
            "changed": {name: since for name, since in self.pending.items()
                        if since > self._started_at},
            "checks": self.recorder.held_states(),
        }

    def shutdown(self) -> int:
        """Stop scheduling, let probes finish briefly, flush what can be sent; return pending."""
        self.notifier.stopping()
        if self.heartbeat is not None:
            self.heartbeat.stop()
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
            self._report_unrecorded()
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
            self.notifier.ready(self._status_line(self.sender.pending_count()))
        return accepted

    def _reload(self) -> bool:
        try:
            config = load(self.config.path)
        except ConfigError as exc:
            log.error("reload rejected, still running the previous configuration:")
            for error in exc.errors:
                log.error("  %s", error)
            return False
        logs.add_secrets(config.secrets)
        # The restart-only settings are the ones their model marks so (config/reload.py).
        changes = restart_changes(self.config.settings, config.settings)
        for change in changes:
            log.warning(
                "reload: %s changed to %s; that takes a restart, keeping %s",
                change.key, change.show(change.new), change.show(change.old),
            )
        if changes:
            settings = keep_running(self.config.settings, config.settings, changes)
            config = replace(config, settings=settings)
        delivery_changed = (
            config.pagerduty != self.config.pagerduty or config.dry_run != self.config.dry_run
        )
        if delivery_changed:
            self.sender.set_alert(self._make_alert(config))
            log.info("reload: PagerDuty settings changed")
        for warning in config.warnings:
            log.warning("%s", warning)
        heartbeat_changed = config.heartbeat != self.config.heartbeat
        self._apply(config)
        self.config = config
        self.scheduler.set_checks(config.checks)
        if heartbeat_changed:
            self._start_heartbeat(config)
        if delivery_changed:
            self._resync_delivery()
        if self.metrics is not None:
            self.metrics.set_info(__version__, len(self.checks), self.dry_run)
        log.info("reload: %s from %s", plural(len(config.checks), "check"),
                 plural(len(config.files), "file"))
        return True

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
                self._skipped_shown.pop(name, None)
                self.checks.pop(name, None)
                self.pending.pop(name, None)
                self.policies.pop(name, None)
                self.states.pop(name, None)
                if self.metrics is not None:
                    self.metrics.forget(name)
                if events:
                    log.warning(
                        "check %s: removed while triggered; resolving %s",
                        name,
                        events[0].incident_key,
                    )
                else:
                    log.info("check %s: removed", name)
            for check in config.checks:
                name = check.name
                state = plan.states[name]
                events = plan.events.get(name, [])
                if name in plan.changed or name not in known or events:
                    self.recorder.record(
                        name, check.fingerprint, check.incident_key, state, None, now, events
                    )
                for event in events:
                    log.warning(
                        "check %s: incident key changed; resolving old key %s",
                        name,
                        event.incident_key,
                    )
                if name in plan.changed and known:
                    log.info("check %s: definition changed", name)
                if name in plan.changed or name not in self.checks:
                    self.pending[name] = now if since is None else since
                self.checks[name] = check
                self.policies[name] = Policy.of(check)
                self.states[name] = state

    def _resync_delivery(self) -> None:
        """Re-send the trigger of every open incident when events start going somewhere new.

        Events that went to dry-run, or to a key PagerDuty refused, never opened an incident
        there; without this, a check triggered then would stay silent until it recovers.
        """
        pd = self.config.pagerduty
        if self.dry_run:
            target = "dry-run"
        else:
            target = hashlib.sha256(f"{pd.api}|{pd.url}|{pd.routing_key}".encode()).hexdigest()
        previous = self.store.get_meta("delivery_target")
        if previous is not None and previous != target and target != "dry-run":
            stored = self.store.load_checks()
            resent = 0
            now = time.time()
            with self._lock:
                for name, state in self.states.items():
                    row = stored.get(name)
                    summary = (
                        (row.last_result or {}).get("summary", "failing") if row else "failing"
                    )
                    events = retrigger(
                        state, self.policies[name], summary, "re-sent: PagerDuty settings changed"
                    )
                    if events:
                        check = self.checks[name]
                        self.recorder.record(
                            name, check.fingerprint, check.incident_key, state, None, now, events
                        )
                        resent += 1
            if resent:
                log.warning(
                    "PagerDuty settings changed since these incidents opened: "
                    "re-sending the trigger of %d open incidents",
                    resent,
                )
        with self._lock:
            self.recorder.write(lambda: self.store.set_meta("delivery_target", target))

    # --- results ------------------------------------------------------------------------

    def _on_result(
        self, check: Check, result: ProbeResult, planned: float, started: float
    ) -> float | None:
        """Mask, step the state, record, log; return how soon to probe again (None: the
        check's interval), for the scheduler to apply."""
        secrets = self.config.secrets
        if secrets:
            # Before it is stored or sent anywhere: a plugin may print what it was given.
            summary = logs.mask(result.summary, secrets)
            details = logs.mask_data(result.details, secrets)
            if summary is not result.summary or details is not result.details:
                result = replace(result, summary=summary, details=details)
        with self._lock:
            current = self.checks.get(check.name)
            if self._closing or current is None or current.fingerprint != check.fingerprint:
                return None  # a result from before a reload (or after shutdown): not ours any more
            before = self.states[check.name]
            policy = self.policies[check.name]
            after, events = step(before, result, policy)
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
            if self.metrics is not None:
                self.metrics.observe_result(check.name, result, after, lag=started - planned)
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
        sooner = next_interval(after, check)
        return sooner if not result.ok and sooner < check.interval else None

    def _save_unsaved(self) -> None:
        """Write the batched results (call with self._lock held); kept until that works."""
        if not self._unsaved:
            return
        rows = list(self._unsaved.values())
        if self.recorder.write(lambda: self.store.record_results(rows)):
            self._unsaved.clear()

    def _report_unrecorded(self) -> None:
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

    def _on_sent(self, event: Event, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.event_outcome(event.action, outcome)

    def triggered_count(self) -> int:
        with self._lock:
            return sum(1 for state in self.states.values() if state.triggered)
