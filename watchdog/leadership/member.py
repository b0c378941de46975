"""Member: one runner of a group, from its start to its stop, through its terms.

    connecting -> waiting -> leading -> (fenced) -> connecting -> ...

Connecting: reach PostgreSQL, with backoff. Waiting: try the lock every Group.poll seconds,
saying who holds it; nothing is probed, recorded or sent. Leading: a Runner (a term) over
the fenced store, started exactly as a restart starts one. Fenced: the term's store failed
or its lock went; the term ends at once and nothing more is sent, and the member starts
over. SIGTERM/SIGINT stop the member in any phase (a leader flushes as a runner does; a
waiting member just leaves), SIGHUP re-reads the config in any phase.

Member has the Runner's outward methods (install_signal_handlers, start, loop, shutdown),
so `pd-watchdog run` drives either the same way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Any

from watchdog import __version__
from watchdog.config import Config
from watchdog.durations import format_time
from watchdog.httpserve import MetricsServer
from watchdog.leadership.fence import Fence, FencedStore, LeaseWatch
from watchdog.leadership.group import Group, group_of, open_store
from watchdog.leadership.report import LEADER_META, leader_record
from watchdog.leadership.term import MemberRequests, MemberRuntime, Term, TermNotifier
from watchdog.metrics import Metrics
from watchdog.notify import SystemdNotifier
from watchdog.probes._util import fmt_seconds
from watchdog.reloading import read_reload
from watchdog.reporting import serve_metrics
from watchdog.runner import Runner
from watchdog.statefile import make_private_dir
from watchdog.store import StoreError, lockfile

log = logging.getLogger("watchdog.leadership")

CONNECTING, WAITING, LEADING, FENCED = "connecting", "waiting", "leading", "fenced"
FIRST_RETRY = 0.2  # seconds before the second try to reach PostgreSQL (then doubling)
PAUSE_STEP = 0.5  # seconds the member sleeps at most between two looks at its signals


def member_of(config: Config, *, force_dry_run: bool = False) -> Member | None:
    """The Member config asks for (`state: {postgresql: ...}`), or None for one runner."""
    group = group_of(config)
    return None if group is None else Member(config, group, force_dry_run=force_dry_run)


class Member:
    """One member of a group: the shared parts (signals, sd_notify, /metrics, runtime.json,
    the state_dir's lock) for its whole life, a Runner for each term it leads."""

    def __init__(self, config: Config, group: Group, *, force_dry_run: bool = False) -> None:
        self.config = config
        self.group = group
        self.force_dry_run = force_dry_run
        self.requests = MemberRequests()
        self.notifier = SystemdNotifier()
        self.metrics = Metrics() if config.metrics_listen else None
        self.metrics_server: MetricsServer | None = None
        self.runtime = MemberRuntime(config.state_dir, self.facts)
        self.runner: Runner | None = None
        self.fence: Fence | None = None
        self.phase, self.reason, self.holder = CONNECTING, "starting", None
        self.phase_since = time.time()
        self._lock_fd: int | None = None

    # --- what the outside sees ------------------------------------------------------------

    def facts(self) -> dict[str, Any]:
        """For runtime.json (`status`): the group, this member, its phase, who leads."""
        return {"group": self.group.name, "member": self.group.member, "phase": self.phase,
                "phase_since": self.phase_since, "phase_reason": self.reason,
                "leader": self.group.member if self.phase == LEADING else self.holder}

    def words(self) -> str:
        """The phase in one line (log, STATUS=, /healthz)."""
        name = self.group.name
        if self.phase == LEADING:
            return f"leading group {name} since {format_time(self.phase_since, seconds=True)}"
        if self.phase == WAITING:
            held = f" held by {self.holder}" if self.holder else ""
            return f"waiting for the lock of group {name}{held}"
        if self.phase == FENCED:
            return f"fenced, not leading group {name}: {self.reason}; nothing is sent"
        return f"not leading group {name}: {self.reason}"

    def service_health(self) -> tuple[bool, str]:
        """/healthz: the leader's health while it leads; else not healthy, saying why."""
        runner, fence = self.runner, self.fence
        if self.phase == LEADING and runner is not None:
            reason = fence.reason() if fence is not None else None
            if reason is None:
                return runner.service_health()
            return False, f"fenced, not leading group {self.group.name}: {reason}"
        return False, self.words()

    def _enter(self, phase: str, reason: str = "", holder: str | None = None) -> None:
        """Note a new phase (or a new holder while waiting) and tell STATUS= and status."""
        self.phase, self.reason, self.holder = phase, reason, holder
        self.phase_since = time.time()
        if self.metrics is not None:
            self.metrics.set_leader(self.group.name, phase == LEADING)
        if phase != LEADING:
            self.notifier.status(self.words())
            self.runtime.write_waiting()

    # --- the Runner's outward methods -------------------------------------------------------

    def install_signal_handlers(self) -> None:
        self.requests.install()

    def start(self) -> None:
        """Take the local state_dir (runtime.json), listen for /metrics, say READY=1."""
        warnings = make_private_dir(self.config.state_dir)  # the config's: at each term
        self._lock_fd, _ = lockfile.take(self.config.state_dir, warnings)
        for warning in warnings:
            log.warning("%s", warning)
        self.runtime.open()
        if self.metrics is not None and self.config.metrics_listen is not None:
            self.metrics.set_info(__version__, len(self.config.checks), self.force_dry_run)
            host, port = self.config.metrics_listen
            self.metrics_server = serve_metrics(self.metrics, host, port, self.service_health)
        log.info("member %s of group %s: starting (failover_after %s)", self.group.member,
                 self.group.name, fmt_seconds(self.group.failover_after))
        self._enter(CONNECTING, "connecting to PostgreSQL")
        self.notifier.ready(self.words())

    def loop(self) -> None:
        """Connect, wait for the lock, lead; again after a fence; until SIGTERM."""
        while not self.requests.terminate.is_set():
            store = self._connect()
            if store is None:
                return
            if self._wait_for_lock(store):
                self._lead(store)
            else:
                _close(store)

    def shutdown(self) -> int:
        """Let go of what the member holds (a term ends in loop(), before this)."""
        self.notifier.stopping()
        if self.metrics_server is not None:
            self.metrics_server.stop()
        self.runtime.close_file()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        log.info("member %s of group %s: stopped", self.group.member, self.group.name)
        self.notifier.close()
        return 0

    # --- the phases -----------------------------------------------------------------------

    def _connect(self) -> Any | None:
        """The group's store, reached with backoff; None once asked to stop."""
        delay = FIRST_RETRY
        while not self.requests.terminate.is_set():
            try:
                return open_store(self.config, self.group)
            except StoreError as exc:
                reason = f"cannot reach PostgreSQL ({exc}); retrying in {fmt_seconds(delay)}"
                if self.phase != CONNECTING or self.reason != reason:
                    log.warning("member %s: %s", self.group.member, reason)
                self._enter(CONNECTING, reason)
            self._pause(delay)
            delay = min(delay * 2, self.group.reconnect_max)
        return None

    def _wait_for_lock(self, store: Any) -> bool:
        """Try the lock until it is ours (True), the connection fails or SIGTERM (False)."""
        seen: object = object()
        while not self.requests.terminate.is_set():
            try:
                if store.try_lock():
                    return True
                holder = store.lock_holder()
            except StoreError as exc:
                reason = f"lost the connection to PostgreSQL while waiting ({exc})"
                log.warning("member %s: %s; reconnecting", self.group.member, reason)
                self._enter(CONNECTING, reason)
                return False
            if holder != seen:
                seen = holder
                self._enter(WAITING, holder=holder)
                log.info("%s", self.words())
            self._pause(self.group.poll)
        return False

    def _lead(self, store: Any) -> None:
        """One term: a Runner over the fenced store until SIGTERM or the fence trips."""
        previous = self.holder
        fence = self.fence = Fence(self._fenced)
        guarded = FencedStore(store, fence)
        watch = LeaseWatch(store, fence, self.group.lease_check, self.group.failover_after)
        runner = None
        self._enter(LEADING)
        log.warning("member %s took the lock of group %s%s: leading from now on",
                    self.group.member, self.group.name,
                    f" (from {previous})" if previous else "")
        try:
            guarded.set_meta(LEADER_META, leader_record(
                self.group.member, self.group.name, self.phase_since))
            term = Term(guarded, self.requests, TermNotifier(
                self.notifier, self.requests, lambda: self.words() + "; "), self.metrics)
            runner = Runner(self.config, force_dry_run=self.force_dry_run, term=term)
            runner.runtime = self.runtime
            self.runner = runner
            if fence.reason() is not None:
                return  # tripped while the runner was made: it never starts
            watch.start()
            runner.start()
            runner.loop()
        except StoreError as exc:
            fence.trip(str(exc))
        finally:
            watch.stop()
            self._end_term(runner, store, fence)

    def _fenced(self, reason: str) -> None:
        """The fence tripped (any thread): end the term now; the sender already stopped."""
        log.error("member %s: fenced: %s; stopped recording and sending", self.group.member,
                  reason)
        runner = self.runner
        if runner is not None:
            runner.sender.halt()  # before its next attempt, from outbox or memory
        if self.metrics is not None:
            self.metrics.set_leader(self.group.name, False)
        self.requests.end_term()

    def _end_term(self, runner: Runner | None, store: Any, fence: Fence) -> None:
        """Stop the term's Runner (a fenced one sends nothing more) and let the store go."""
        reason = fence.reason()
        if reason is not None:
            self._enter(FENCED, reason)
        self.runner = None
        if runner is not None:
            self.config = runner.config  # as reloaded while it led
            try:
                runner.shutdown()
            except StoreError as exc:  # a fenced store answers nothing, not even the count
                log.debug("term shutdown: %s", exc)
            if self.metrics is not None:
                for name in runner.checks:
                    self.metrics.forget(name)  # a waiting member shows no check as current
        _close(store)
        if not self.requests.terminate.is_set():
            self.requests.stop.clear()
            log.warning("member %s: no longer leading group %s; waiting for its lock again",
                        self.group.member, self.group.name)

    def _pause(self, seconds: float) -> None:
        """Sleep, answering SIGHUP and pinging WATCHDOG=1 (waiting is no wedge)."""
        deadline = time.monotonic() + seconds
        while not self.requests.terminate.is_set():
            if self.requests.reload.is_set():
                self.requests.reload.clear()
                self._reload()
            self.notifier.maybe_ping(True)
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.requests.wake.wait(min(left, PAUSE_STEP))
            self.requests.wake.clear()

    def _reload(self) -> None:
        """SIGHUP while not leading: read the config now, for the next term."""
        log.info("reload: reading %s", self.config.path)
        self.notifier.reloading()
        config = read_reload(self.config)
        if config is not None:
            self.config = config
            log.info("reload: %d checks; they run when this member leads", len(config.checks))
        self.notifier.ready(self.words())


def _close(store: Any) -> None:
    """Close a store whose connection may be dead; that must not stop the member."""
    with contextlib.suppress(Exception):
        store.close()
