"""Prometheus metrics for the runner, and the small HTTP server that exposes them.

prometheus_client owns the exposition format, escaping and histogram math; this module only
decides which numbers exist. A private CollectorRegistry keeps tests (and anything else in
the process) from sharing series. Labels are check names, event actions and outcomes only:
never URLs, commands or keys, which may hold secrets.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import prometheus_client.metrics
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from watchdog.model import RESOLVE, TRIGGER, CheckState, ProbeResult

log = logging.getLogger("watchdog.metrics")

# Per check, so every bucket is multiplied by thousands of checks in each scrape: few, wide
# buckets (measured in bench/: a scrape at 5,000 checks took 1.2 s with 12 buckets).
PROBE_BUCKETS = (0.01, 0.1, 0.5, 2.5, 10)

# The *_created series double the size of every per-check counter and histogram and tell a
# scraper nothing it needs; this is prometheus_client's documented switch for them.
prometheus_client.metrics._use_created = False
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
OUTCOMES = ("sent", "retry", "dead_letter")  # watchdog.sender's SENT / RETRY / DEAD_LETTER


class _SchedulerCounters:
    """Exposes the scheduler's own skipped/missed totals as counters.

    The scheduler already counts; copying its totals at scrape time (rather than inc() by
    deltas) cannot drift, and a check removed and re-added simply shows a counter reset.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, tuple[int, int]] = {}

    def set(self, name: str, skipped: int, missed: int) -> None:
        with self._lock:
            self._values[name] = (skipped, missed)

    def forget(self, name: str) -> None:
        with self._lock:
            self._values.pop(name, None)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            values = sorted(self._values.items())
        skipped = CounterMetricFamily(
            "pd_watchdog_check_skipped",
            "Runs skipped because the previous run of the check was still going.",
            labels=["check"],
        )
        missed = CounterMetricFamily(
            "pd_watchdog_check_missed",
            "Planned runs that were already past when the scheduler got to them.",
            labels=["check"],
        )
        for name, (s, m) in values:
            skipped.add_metric([name], s)
            missed.add_metric([name], m)
        yield skipped
        yield missed

    def describe(self) -> Iterator[Metric]:
        return self.collect()


class Metrics:
    """Every pd_watchdog_* series; safe to call from probe, sender and HTTP threads."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._check_up = Gauge(
            "pd_watchdog_check_up", "1 if the check's last run passed, 0 if it failed.",
            ["check"], registry=r,
        )
        self._failures = Gauge(
            "pd_watchdog_check_consecutive_failures",
            "Failures in a row of the check (0 while it passes).", ["check"], registry=r,
        )
        self._triggered = Gauge(
            "pd_watchdog_check_triggered",
            "1 while the check has an open incident on PagerDuty.", ["check"], registry=r,
        )
        self._runs = Counter(
            "pd_watchdog_check_runs", "Probe runs of the check that produced a result.",
            ["check"], registry=r,
        )
        self._duration = Histogram(
            "pd_watchdog_probe_duration_seconds", "How long the check's probe took.",
            ["check"], buckets=PROBE_BUCKETS, registry=r,
        )
        self._lag = Histogram(
            "pd_watchdog_schedule_lag_seconds",
            "Actual start of a probe minus its planned start (all checks).",
            buckets=LAG_BUCKETS, registry=r,
        )
        self._lag_max = Gauge(
            "pd_watchdog_schedule_lag_max_seconds",
            "Largest schedule lag seen since the process started.", registry=r,
        )
        self._events = Counter(
            "pd_watchdog_events", "Attempts to deliver events to PagerDuty, by outcome.",
            ["action", "outcome"], registry=r,
        )
        self._pending = Gauge(
            "pd_watchdog_outbox_pending", "Events stored but not yet accepted by PagerDuty.",
            registry=r,
        )
        self._oldest = Gauge(
            "pd_watchdog_outbox_oldest_pending_age_seconds",
            "Age of the oldest event still waiting to be sent (0 when none is).", registry=r,
        )
        self._dead = Gauge(
            "pd_watchdog_outbox_dead_letters",
            "Events PagerDuty refused for good (see `pd-watchdog status`).", registry=r,
        )
        self._info = Info("pd_watchdog", "The running pd-watchdog.", registry=r)
        self._checks = Gauge("pd_watchdog_checks", "Checks configured.", registry=r)
        self._scheduler = _SchedulerCounters()
        r.register(self._scheduler)
        self._lock = threading.Lock()
        self._max_lag = 0.0
        self._children: dict[str, tuple[Any, ...]] = {}
        for action in (TRIGGER, RESOLVE):
            for outcome in OUTCOMES:
                self._events.labels(action, outcome)  # present at 0, so rate() works at once

    def observe_result(
        self, check_name: str, result: ProbeResult, state: CheckState, *, lag: float
    ) -> None:
        """Record one probe result and the state it left the check in (a hot path: the
        check's labelled children are looked up once and kept)."""
        children = self._children.get(check_name)
        if children is None:
            children = self._children[check_name] = (
                self._check_up.labels(check_name),
                self._failures.labels(check_name),
                self._triggered.labels(check_name),
                self._runs.labels(check_name),
                self._duration.labels(check_name),
            )
        up, failures, triggered, runs, duration = children
        up.set(1 if result.ok else 0)
        failures.set(state.failures)
        triggered.set(1 if state.triggered else 0)
        runs.inc()
        duration.observe(max(0.0, result.latency))
        lag = max(0.0, lag)  # a clock step can make it negative; that is not "early"
        self._lag.observe(lag)
        if lag > self._max_lag:
            with self._lock:
                if lag > self._max_lag:
                    self._max_lag = lag
                    self._lag_max.set(lag)

    def set_skipped(self, check_name: str, skipped: int, missed: int) -> None:
        """Copy the scheduler's totals for a check (CheckStats.skipped / .missed)."""
        self._scheduler.set(check_name, skipped, missed)

    def event_outcome(self, action: str, outcome: str) -> None:
        """Count one delivery attempt (Sender's on_result)."""
        self._events.labels(action, outcome).inc()

    def set_outbox(self, stats: dict[str, Any]) -> None:
        """Copy Store.outbox_stats()."""
        self._pending.set(stats.get("pending") or 0)
        self._oldest.set(stats.get("oldest_pending_age") or 0.0)
        self._dead.set(stats.get("dead_letters") or 0)

    def forget(self, check_name: str) -> None:
        """Drop a removed check's series, so dashboards don't show it frozen forever."""
        self._children.pop(check_name, None)
        for metric in (self._check_up, self._failures, self._triggered, self._runs,
                       self._duration):
            with contextlib.suppress(KeyError):
                metric.remove(check_name)
        self._scheduler.forget(check_name)

    def set_info(self, version: str, checks: int, dry_run: bool) -> None:
        """pd_watchdog_info{version, dry_run} 1 and pd_watchdog_checks."""
        self._info.info({"version": version, "dry_run": "true" if dry_run else "false"})
        self._checks.set(checks)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10  # a client that stalls mid-request gives its thread back
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._serve(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(body=False)

    def _serve(self, *, body: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            try:
                payload = encoder(self.server.metrics.registry)
            except Exception:
                log.exception("metrics: collecting failed")
                self._reply(500, b"collecting metrics failed\n", body=body)
                return
            self._reply(200, payload, content_type, body=body)
        elif path == "/healthz":
            try:
                ok, message = self.server.healthy()
            except Exception as exc:
                log.exception("metrics: health check raised")
                ok, message = False, f"health check failed: {type(exc).__name__}"
            text = "ok\n" if ok else (message.rstrip("\n") + "\n")
            self._reply(200 if ok else 503, text.encode("utf-8", "replace"), body=body)
        else:
            self._reply(404, b"not found; try /metrics or /healthz\n", body=body)

    def _reply(self, code: int, payload: bytes, content_type: str = "text/plain; charset=utf-8",
               *, body: bool) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("metrics: %s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # restart while old connections linger in TIME_WAIT
    allow_reuse_port = False  # but never share the port with another live process

    def __init__(self, family: int, address: tuple, metrics: Metrics,
                 healthy: Callable[[], tuple[bool, str]]) -> None:
        self.address_family = family
        self.metrics = metrics
        self.healthy = healthy
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
            # "::" then means IPv6 and IPv4, like most daemons, whatever the sysctl says.
            with contextlib.suppress(OSError):
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Resets, broken pipes, garbage requests: the client's problem, not ours to print.
        log.debug("metrics: error serving %s", client_address, exc_info=True)


class MetricsServer:
    """Serves /metrics and /healthz from a daemon thread."""

    def __init__(self, metrics: Metrics, host: str, port: int,
                 healthy: Callable[[], tuple[bool, str]]) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self.healthy = healthy
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind (raises OSError if the address is taken or invalid) and serve in the background."""
        if self._server is not None:
            return
        family, sockaddr = _resolve(self.host, self.port)
        self._server = _Server(family, sockaddr, self.metrics, self.healthy)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.25},
            name="metrics-http", daemon=True,
        )
        self._thread.start()
        host, port = self.address
        log.info("metrics: serving http://%s/metrics", f"[{host}]:{port}" if ":" in host
                 else f"{host}:{port}")

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) actually bound, e.g. the real port when asked for port 0."""
        if self._server is None:
            return self.host, self.port
        bound = self._server.server_address
        return str(bound[0]), int(bound[1])

    def stop(self) -> None:
        """Stop serving and close the socket."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def _resolve(host: str, port: int) -> tuple[int, tuple]:
    """Address family and sockaddr for host ("" means all interfaces; IPv6 literals work)."""
    infos = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr
