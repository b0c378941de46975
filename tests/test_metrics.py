"""Metrics scraped from the real MetricsServer over loopback, parsed by prometheus_client."""

from __future__ import annotations

import contextlib
import http.client
import math
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from watchdog.httpserve import MetricsServer
from watchdog.metrics import (
    LAG_BUCKETS,
    PROBE_BUCKETS,
    Metrics,
    escape_label_value,
)
from watchdog.model import CheckState, ProbeResult

pytestmark = pytest.mark.timeout(20)


class Health:
    def __init__(self) -> None:
        self.value: tuple[bool, str] = (True, "ok")

    def __call__(self) -> tuple[bool, str]:
        return self.value


@pytest.fixture
def served() -> Iterator[tuple[Metrics, MetricsServer, Health]]:
    metrics = Metrics()
    health = Health()
    server = MetricsServer(metrics, "127.0.0.1", 0, health)
    server.start()
    yield metrics, server, health
    server.stop()


def get(server: MetricsServer, path: str, method: str = "GET",
        headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode(), dict(response.getheaders())
    finally:
        conn.close()


def scrape(server: MetricsServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} from GET /metrics."""
    status, body, headers = get(server, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def check(name: str, **extra: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"check": name, **extra}.items()))


def test_probe_results_are_exported_exactly(served):
    metrics, server, _ = served
    metrics.observe_result("web", ProbeResult(ok=True, summary="200", latency=0.02),
                           CheckState(passes=1), lag=0.003)
    metrics.observe_result("web", ProbeResult(ok=False, summary="503", latency=0.7),
                           CheckState(failures=1), lag=0.2)
    metrics.observe_result("db", ProbeResult(ok=False, summary="down", latency=12.0),
                           CheckState(failures=3, triggered=True, severity="critical"), lag=0.0004)

    s = scrape(server)
    assert s[("pd_watchdog_check_up", check("web"))] == 0
    assert s[("pd_watchdog_check_up", check("db"))] == 0
    assert s[("pd_watchdog_check_consecutive_failures", check("web"))] == 1
    assert s[("pd_watchdog_check_consecutive_failures", check("db"))] == 3
    assert s[("pd_watchdog_check_triggered", check("web"))] == 0
    assert s[("pd_watchdog_check_triggered", check("db"))] == 1
    assert s[("pd_watchdog_check_runs_total", check("web"))] == 2
    assert s[("pd_watchdog_check_runs_total", check("db"))] == 1

    web = {le: s[("pd_watchdog_probe_duration_seconds_bucket", check("web", le=_le(le)))]
           for le in PROBE_BUCKETS}
    assert web[0.01] == 0 and web[0.1] == 1 and web[0.5] == 1 and web[2.5] == 2 and web[10] == 2
    assert s[("pd_watchdog_probe_duration_seconds_count", check("web"))] == 2
    assert s[("pd_watchdog_probe_duration_seconds_sum", check("web"))] == pytest.approx(0.72)
    assert s[("pd_watchdog_probe_duration_seconds_bucket", check("db", le="10.0"))] == 0
    assert s[("pd_watchdog_probe_duration_seconds_bucket", check("db", le="+Inf"))] == 1
    assert not [key for key in s if key[0].endswith("_created")]  # no *_created series

    lag = {le: s[("pd_watchdog_schedule_lag_seconds_bucket", (("le", _le(le)),))]
           for le in LAG_BUCKETS}
    assert lag[0.001] == 1 and lag[0.0025] == 1 and lag[0.005] == 2 and lag[0.25] == 3
    assert s[("pd_watchdog_schedule_lag_seconds_count", ())] == 3
    assert s[("pd_watchdog_schedule_lag_seconds_sum", ())] == pytest.approx(0.2034)
    assert s[("pd_watchdog_schedule_lag_max_seconds", ())] == pytest.approx(0.2)

    metrics.observe_result("web", ProbeResult(ok=True, summary="200", latency=0.01),
                           CheckState(passes=1), lag=0.05)
    s = scrape(server)
    assert s[("pd_watchdog_check_up", check("web"))] == 1
    assert s[("pd_watchdog_check_consecutive_failures", check("web"))] == 0
    assert s[("pd_watchdog_schedule_lag_max_seconds", ())] == pytest.approx(0.2)  # a max


def _le(bound: float) -> str:
    return str(float(bound))


def test_scheduler_counters_events_outbox_and_info(served):
    metrics, server, _ = served
    metrics.set_skipped("web", 2, 5)
    metrics.set_skipped("web", 3, 7)  # totals, not increments
    metrics.event_outcome("trigger", "retry")
    metrics.event_outcome("trigger", "retry")
    metrics.event_outcome("trigger", "sent")
    metrics.event_outcome("resolve", "dead_letter")
    metrics.set_outbox({"pending": 4, "oldest_pending_age": 12.5, "dead_letters": 1,
                        "sent": {"trigger": 9, "resolve": 8}})
    metrics.set_info("1.2.3", 17, True)

    s = scrape(server)
    assert s[("pd_watchdog_check_skipped_total", check("web"))] == 3
    assert s[("pd_watchdog_check_missed_total", check("web"))] == 7
    events = {k[1]: v for k, v in s.items() if k[0] == "pd_watchdog_events_total"}
    assert events == {
        (("action", "trigger"), ("outcome", "retry")): 2,
        (("action", "trigger"), ("outcome", "sent")): 1,
        (("action", "trigger"), ("outcome", "dead_letter")): 0,
        (("action", "resolve"), ("outcome", "retry")): 0,
        (("action", "resolve"), ("outcome", "sent")): 0,
        (("action", "resolve"), ("outcome", "dead_letter")): 1,
    }
    assert s[("pd_watchdog_outbox_pending", ())] == 4
    assert s[("pd_watchdog_outbox_oldest_pending_age_seconds", ())] == 12.5
    assert s[("pd_watchdog_outbox_dead_letters", ())] == 1
    assert s[("pd_watchdog_info", (("dry_run", "true"), ("version", "1.2.3")))] == 1
    assert s[("pd_watchdog_checks", ())] == 17

    metrics.set_outbox({"pending": 0, "oldest_pending_age": None, "dead_letters": 1})
    s = scrape(server)
    assert s[("pd_watchdog_outbox_pending", ())] == 0
    assert s[("pd_watchdog_outbox_oldest_pending_age_seconds", ())] == 0


def test_forget_removes_a_checks_series(served):
    metrics, server, _ = served
    for name in ("keep", "gone"):
        metrics.observe_result(name, ProbeResult(ok=True, summary="", latency=0.1),
                               CheckState(passes=1), lag=0.01)
        metrics.set_skipped(name, 1, 1)
    metrics.forget("gone")
    metrics.forget("never-seen")  # harmless

    s = scrape(server)
    labelled = {dict(labels).get("check") for _, labels in s}
    assert "keep" in labelled
    assert "gone" not in labelled
    assert s[("pd_watchdog_schedule_lag_seconds_count", ())] == 2  # not per check: kept


def test_check_names_are_escaped_not_trusted(served):
    metrics, server, _ = served
    odd = 'we"ird\\name\nwith newline'
    metrics.observe_result(odd, ProbeResult(ok=True, summary=""), CheckState(), lag=0)
    assert scrape(server)[("pd_watchdog_check_up", check(odd))] == 1


def test_healthz_follows_healthy(served):
    _, server, health = served
    assert get(server, "/healthz")[:2] == (200, "ok\n")
    health.value = (False, "scheduler stalled for 42s")
    assert get(server, "/healthz")[:2] == (503, "scheduler stalled for 42s\n")
    health.value = (True, "fine")
    assert get(server, "/healthz")[:2] == (200, "ok\n")


def test_healthz_raising_is_a_503_not_a_crash():
    def broken() -> tuple[bool, str]:
        raise RuntimeError("bug")

    server = MetricsServer(Metrics(), "127.0.0.1", 0, broken)
    server.start()
    try:
        status, body, _ = get(server, "/healthz")
        assert status == 503 and "RuntimeError" in body
        assert get(server, "/metrics")[0] == 200
    finally:
        server.stop()


def test_other_paths_404_and_head_and_query_strings(served):
    _, server, _ = served
    assert get(server, "/")[0] == 404
    assert get(server, "/metrics/x")[0] == 404
    assert get(server, "/metrics?name[]=x")[0] == 200
    status, body, headers = get(server, "/metrics", method="HEAD")
    assert status == 200 and body == "" and int(headers["Content-Length"]) > 0
    assert get(server, "/metrics", method="POST")[0] == 405


def test_always_text_0_0_4_whatever_is_asked(served):
    metrics, server, _ = served
    metrics.set_info("1", 1, False)
    prometheus = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                  "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
    for accept in ("", prometheus, "text/plain;version=1.0.0"):
        status, body, headers = get(server, "/metrics", headers={"Accept": accept})
        assert status == 200
        assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert "# EOF" not in body
        assert list(text_string_to_metric_families(body))


def test_client_errors_do_not_kill_the_server(served):
    _, server, _ = served
    host, port = server.address
    # garbage, a half request, a reset: none may stop the next scrape
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"\x00\x01garbage\r\n\r\n")
        sock.recv(1024)
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"GET /metr")
    sock = socket.create_connection((host, port), timeout=5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
    sock.close()  # RST while the server may be writing
    assert get(server, "/metrics")[0] == 200


def test_concurrent_scrapes_and_observations(served):
    metrics, server, _ = served
    stop = threading.Event()

    def observe() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            metrics.observe_result(f"c{n % 20}", ProbeResult(ok=n % 2 == 0, summary=""),
                                   CheckState(failures=n % 3), lag=0.001)
            if n % 7 == 0:
                metrics.forget(f"c{n % 20}")

    threads = [threading.Thread(target=observe) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(8):
            scrape(server)
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)


def test_ipv6_loopback():
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    metrics = Metrics()
    metrics.set_info("1", 2, False)
    server = MetricsServer(metrics, "::1", 0, lambda: (True, "ok"))
    server.start()
    try:
        host, port = server.address
        assert host == "::1" and port > 0
        conn = http.client.HTTPConnection("::1", port, timeout=5)
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        assert response.status == 200
        assert "pd_watchdog_checks 2.0" in response.read().decode()
        conn.close()
    finally:
        server.stop()


def test_port_in_use_raises_on_start(served):
    _, server, _ = served
    host, port = server.address
    other = MetricsServer(Metrics(), host, port, lambda: (True, "ok"))
    with pytest.raises(OSError):
        other.start()


# --- the hand-written per-check block, against prometheus_client's own rendering ----------


class Reference:
    """What Metrics exposed when prometheus_client rendered every series: the same families,
    HELP texts and buckets, fed through Gauge/Counter/Histogram, as the expected values."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.up = Gauge("pd_watchdog_check_up",
                        "1 if the check's last run passed, 0 if it failed.", ["check"], registry=r)
        self.failures = Gauge("pd_watchdog_check_consecutive_failures",
                              "Failures in a row of the check (0 while it passes).", ["check"],
                              registry=r)
        self.triggered = Gauge("pd_watchdog_check_triggered",
                               "1 while the check has an open incident on PagerDuty.", ["check"],
                               registry=r)
        self.runs = Counter("pd_watchdog_check_runs",
                            "Probe runs of the check that produced a result.", ["check"],
                            registry=r)
        self.check_held = Gauge(
            "pd_watchdog_check_held",
            "1 while the check's triggers are held back (maintenance window, silence or a "
            "failing parent; resolves are never held).", ["check"], registry=r)
        self.flapping = Gauge(
            "pd_watchdog_check_flapping",
            "1 while the check is flapping (one incident held open until it settles).",
            ["check"], registry=r)
        self.duration = Histogram("pd_watchdog_probe_duration_seconds",
                                  "How long the check's probe took.", ["check"],
                                  buckets=PROBE_BUCKETS, registry=r)
        self.lag = Histogram("pd_watchdog_schedule_lag_seconds",
                             "Actual start of a probe minus its planned start (all checks).",
                             buckets=LAG_BUCKETS, registry=r)
        self.lag_max = Gauge("pd_watchdog_schedule_lag_max_seconds",
                             "Largest schedule lag seen since the process started.", registry=r)
        self.events = Counter("pd_watchdog_events",
                              "Attempts to deliver events to PagerDuty, by outcome.",
                              ["action", "outcome"], registry=r)
        self.pending = Gauge("pd_watchdog_outbox_pending",
                             "Events stored but not yet accepted by PagerDuty.", registry=r)
        self.oldest = Gauge("pd_watchdog_outbox_oldest_pending_age_seconds",
                            "Age of the oldest event still waiting to be sent (0 when none is).",
                            registry=r)
        self.dead = Gauge("pd_watchdog_outbox_dead_letters",
                          "Events PagerDuty refused for good (see `pd-watchdog status`).",
                          registry=r)
        self.store_ok = Gauge(
            "pd_watchdog_state_store_ok",
            "1 while the state file takes every write; 0 while changes are kept in memory "
            "(pages still go out; see `pd-watchdog status`).", registry=r)
        self.store_ok.set(1)
        self.held = Gauge("pd_watchdog_state_unrecorded_changes",
                          "State changes kept in memory because the state file could not take "
                          "them.", registry=r)
        self.remediations = Counter(
            "pd_watchdog_remediations", "Remediation runs, by whether the check passed again "
            "before paging (fixed) or not (failed).", ["check", "outcome"], registry=r)
        self.info = Info("pd_watchdog", "The running pd-watchdog.", registry=r)
        self.checks = Gauge("pd_watchdog_checks", "Checks configured.", registry=r)
        self.pending_checks = Gauge(
            "pd_watchdog_checks_pending",
            "Checks with no result yet since the start or since their definition changed.",
            registry=r)
        self.leader = Gauge(
            "pd_watchdog_leader", "1 while this member leads its group (state: postgresql), "
            "0 while it waits for the group's lock.", ["group"], registry=r)
        self.scheduler: dict[str, tuple[int, int]] = {}
        r.register(self)  # collect() below: skipped/missed, as _SchedulerCounters did
        self.max = 0.0
        for action in ("trigger", "resolve"):
            for outcome in ("sent", "retry", "dead_letter"):
                self.events.labels(action, outcome)

    def collect(self):
        skipped = CounterMetricFamily(
            "pd_watchdog_check_skipped",
            "Runs skipped because the previous run of the check was still going.",
            labels=["check"])
        missed = CounterMetricFamily(
            "pd_watchdog_check_missed",
            "Planned runs that were already past when the scheduler got to them.",
            labels=["check"])
        for name, (s, m) in sorted(self.scheduler.items()):
            skipped.add_metric([name], s)
            missed.add_metric([name], m)
        yield skipped
        yield missed

    def observe_result(self, name, result, state, *, lag, held=False):
        self.up.labels(name).set(1 if result.ok else 0)
        self.check_held.labels(name).set(1 if held else 0)
        self.flapping.labels(name).set(1 if state.flapping else 0)
        self.failures.labels(name).set(state.failures)
        self.triggered.labels(name).set(1 if state.triggered else 0)
        self.runs.labels(name).inc()
        self.duration.labels(name).observe(max(0.0, result.latency))
        lag = max(0.0, lag)
        self.lag.observe(lag)
        if lag > self.max:
            self.max = lag
            self.lag_max.set(lag)

    def set_skipped(self, name, skipped, missed):
        self.scheduler[name] = (skipped, missed)

    def forget(self, name):
        for metric in (self.up, self.failures, self.triggered, self.runs, self.duration,
                       self.check_held, self.flapping):
            with contextlib.suppress(KeyError):
                metric.remove(name)
        self.scheduler.pop(name, None)
        for outcome in ("fixed", "failed"):
            with contextlib.suppress(KeyError):
                self.remediations.remove(name, outcome)

    def remediation(self, name, outcome):
        self.remediations.labels(name, outcome).inc()

    def event_outcome(self, action, outcome):
        self.events.labels(action, outcome).inc()

    def set_outbox(self, stats):
        self.pending.set(stats.get("pending") or 0)
        self.oldest.set(stats.get("oldest_pending_age") or 0.0)
        self.dead.set(stats.get("dead_letters") or 0)

    def set_leader(self, group, leading):
        self.leader.labels(group).set(1 if leading else 0)

    def set_info(self, version, checks, dry_run):
        self.info.info({"version": version, "dry_run": "true" if dry_run else "false"})
        self.checks.set(checks)


def parsed(text: str) -> dict[str, tuple[str, str, list[tuple[str, tuple, float]]]]:
    """{family: (type, help, sorted samples)}: what a scraper sees, order aside."""
    out = {}
    for family in text_string_to_metric_families(text):
        assert family.name not in out, f"{family.name} split in two"
        samples = sorted((s.name, tuple(sorted(s.labels.items())), s.value)
                         for s in family.samples)
        out[family.name] = (family.type, family.documentation, samples)
    return out


ODD = ['quo"te', "back\\slash", "back\\nslash-n", "new\nline", "br{0}ces}", "ünïcode ✓", "plain"]


def feed(*sinks) -> None:
    latencies = [0.0, 0.003, 0.01, 0.010001, 0.1, 0.5, 2.5, 10.0, 10.5, 1e7, float("inf"),
                 float("nan"), -1.0, 1e-9]
    for k in range(400):
        name = ODD[k % len(ODD)]
        result = ProbeResult(ok=k % 3 == 0, summary="x", latency=latencies[k % len(latencies)])
        state = CheckState(failures=k % 4, triggered=k % 5 == 0, flapping=k % 7 == 0)
        lag = [0.0004, -0.5, 0.001, 0.3, 7.0, 0.0025][k % 6]
        for sink in sinks:
            sink.observe_result(name, result, state, lag=lag, held=k % 11 < 3)
            if k % 9 == 0:
                sink.set_skipped(ODD[(k // 9) % len(ODD)], k, 2 * k + 1)
            if k % 31 == 0:
                sink.event_outcome("resolve", "retry")
            if k % 13 == 0:
                sink.remediation(name, "fixed" if k % 2 else "failed")
    for sink in sinks:
        sink.set_skipped("only-scheduled", 4, 0)  # no result yet: skipped/missed only
        sink.observe_result("a-million", ProbeResult(ok=False, summary="", latency=2.0),
                            CheckState(failures=1_234_567), lag=0.0)
        sink.forget("plain")
        sink.forget("never-seen")
        sink.set_outbox({"pending": 2, "oldest_pending_age": 3.25, "dead_letters": 1})
        sink.set_info("9.9", 8, True)
        sink.set_leader("pair", True)
        sink.set_leader("odd \\ \" group", False)


def test_empty_render_matches_prometheus_client():
    assert parsed(Metrics().render().decode()) == parsed(generate_latest(Reference().registry)
                                                         .decode())


def test_render_matches_prometheus_client_sample_for_sample():
    metrics, reference = Metrics(), Reference()
    feed(metrics, reference)
    ours = parsed(metrics.render().decode())
    theirs = parsed(generate_latest(reference.registry).decode())
    assert ours.keys() == theirs.keys()
    for family in theirs:
        assert ours[family] == theirs[family], family
    checks = {dict(labels).get("check") for _, _, samples in ours.values()
              for _, labels, _ in samples} - {None}
    assert checks == set(ODD) - {"plain"} | {"only-scheduled", "a-million"}
    runs = {dict(labels)["check"] for _, labels, _ in ours["pd_watchdog_check_runs"][2]}
    assert "only-scheduled" not in runs


def test_render_is_text_prometheus_client_would_write():
    """Line for line, but for counts of a million and more ("1234567.0", not "1.234567e+06")."""
    metrics, reference = Metrics(), Reference()
    feed(metrics, reference)
    ours = set(metrics.render().decode().splitlines())
    theirs = set(generate_latest(reference.registry).decode().splitlines())
    assert ours - theirs == {'pd_watchdog_check_consecutive_failures{check="a-million"} 1234567.0'}
    assert theirs - ours == {
        'pd_watchdog_check_consecutive_failures{check="a-million"} 1.234567e+06'}


def test_escape_label_value():
    assert escape_label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert escape_label_value("back\\nslash") == "back\\\\nslash"  # not a newline on the way back
    assert escape_label_value("ünï {0} '") == "ünï {0} '"
    metrics = Metrics()
    for name in ODD:
        metrics.set_skipped(name, 1, 2)
    found = {s.labels["check"] for f in text_string_to_metric_families(metrics.render().decode())
             for s in f.samples if "check" in s.labels}
    assert found == set(ODD)


def test_a_lone_surrogate_in_a_check_name_does_not_fail_the_scrape():
    """config.py lets YAML's "\\ud800" through; prometheus_client's encode() raised on it."""
    metrics = Metrics()
    metrics.observe_result("a\ud800b", ProbeResult(ok=True, summary=""), CheckState(), lag=0)
    samples = [s for f in text_string_to_metric_families(metrics.render().decode())
               for s in f.samples if s.name == "pd_watchdog_check_up"]
    assert [(s.labels, s.value) for s in samples] == [({"check": "a?b"}, 1.0)]


def histograms(text: str) -> dict[str, dict[str, Any]]:
    """Per check: cumulative buckets in le order, count, sum, runs_total."""
    out: dict[str, dict[str, Any]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            check = s.labels.get("check")
            if check is None:
                continue
            h = out.setdefault(check, {"buckets": []})
            if s.name == "pd_watchdog_probe_duration_seconds_bucket":
                h["buckets"].append((float(s.labels["le"]), s.value))
            elif s.name == "pd_watchdog_probe_duration_seconds_count":
                h["count"] = s.value
            elif s.name == "pd_watchdog_probe_duration_seconds_sum":
                h["sum"] = s.value
            elif s.name == "pd_watchdog_check_runs_total":
                h["runs"] = s.value
    return out


def assert_consistent(h: dict[str, Any]) -> None:
    les = [le for le, _ in h["buckets"]]
    counts = [count for _, count in h["buckets"]]
    assert les == sorted(les) and les[-1] == math.inf and les[:-1] == list(PROBE_BUCKETS)
    assert counts == sorted(counts), "buckets not cumulative"
    assert counts[-1] == h["count"] == h["runs"]


def test_histogram_is_cumulative_and_inf_is_count():
    metrics = Metrics()
    for latency in (0.001, 0.01, 0.05, 0.5, 0.7, 9.0, 10.0, 11.0, 500.0):
        metrics.observe_result("h", ProbeResult(ok=True, summary="", latency=latency),
                               CheckState(), lag=0)
    h = histograms(metrics.render().decode())["h"]
    assert_consistent(h)
    assert h["buckets"] == [(0.01, 2), (0.1, 3), (0.5, 4), (2.5, 5), (10.0, 7), (math.inf, 9)]
    assert h["sum"] == pytest.approx(531.261)


def test_forget_removes_every_series_of_the_check_and_a_return_starts_at_zero():
    metrics = Metrics()
    for name in ("keep", "gone"):
        metrics.observe_result(name, ProbeResult(ok=True, summary="", latency=0.2),
                               CheckState(), lag=0.01)
        metrics.set_skipped(name, 3, 4)
    metrics.forget("gone")
    text = metrics.render().decode()
    assert "gone" not in text
    assert parsed(text)["pd_watchdog_check_skipped"][2] == [
        ("pd_watchdog_check_skipped_total", (("check", "keep"),), 3.0)]
    metrics.forget("keep")
    families = parsed(metrics.render().decode())
    assert not [f for f, (_, _, samples) in families.items()
                if any("check" in dict(labels) for _, labels, _ in samples)]
    assert "pd_watchdog_check_up" in families  # HELP and TYPE stay, as prometheus_client did
    assert families["pd_watchdog_schedule_lag_seconds"][2][-2][2] == 2  # _count: not per check
    metrics.observe_result("gone", ProbeResult(ok=False, summary="", latency=0.2),
                           CheckState(failures=1), lag=0)
    assert histograms(metrics.render().decode())["gone"]["runs"] == 1


SAMPLE = re.compile(r'(\w+)(?:\{check="([^"]*)"(?:,le="([^"]*)")?\}|\{le="([^"]*)"\})? (\S+)')


def quick_histograms(text: str) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
    """histograms(), and the lag histogram's _count and _sum, by a regex: the text parser
    would take ~10 ms a render here, too slow to race anything."""
    checks: dict[str, dict[str, Any]] = {}
    lag = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = SAMPLE.fullmatch(line)
        if match is None:  # events, info: other labels
            assert "check=" not in line
            continue
        name, check, le, lag_le, value = match.groups()
        if name.startswith("pd_watchdog_schedule_lag_seconds_") and lag_le is None:
            lag[name.rsplit("_", 1)[1]] = float(value)
        if check is None:
            continue
        h = checks.setdefault(check, {"buckets": []})
        if name == "pd_watchdog_probe_duration_seconds_bucket":
            h["buckets"].append((float(le), float(value)))
        elif name == "pd_watchdog_probe_duration_seconds_count":
            h["count"] = float(value)
        elif name == "pd_watchdog_probe_duration_seconds_sum":
            h["sum"] = float(value)
        elif name == "pd_watchdog_check_runs_total":
            h["runs"] = float(value)
    return checks, lag


def test_a_render_racing_observations_never_tears_a_histogram():
    """Each check always takes the same time, so one torn copy shows as a count that is off
    its bucket, runs_total or sum; a short switch interval makes the threads interleave."""
    metrics = Metrics()
    latency = {f"c{i}": [0.004, 0.05, 0.3, 1.0, 4.0, 20.0][i % 6] for i in range(12)}
    names = list(latency)
    stop = threading.Event()

    results = [ProbeResult(ok=True, summary="", latency=latency[name]) for name in names]
    state = CheckState(failures=2)

    def observe() -> None:  # nothing but observe_result, so a switch most often lands in it
        observe_result = metrics.observe_result
        for n in range(200_000):  # bounded; stops when the renders are done
            if stop.is_set():
                return
            for name, result in zip(names, results, strict=True):
                observe_result(name, result, state, lag=0.002)
            if n % 97 == 0:
                metrics.forget(names[n % len(names)])

    seen = set()
    renders = 500  # renders that must each see the observations moved (on a loaded machine
    # the observer may be starved for a while: render on until enough did, within a bound)
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    thread = threading.Thread(target=observe)
    deadline = time.monotonic() + 30
    try:
        thread.start()
        while len(seen) <= renders // 2 and time.monotonic() < deadline:
            checks, lag = quick_histograms(metrics.render().decode())
            for name, h in checks.items():
                assert_consistent(h)
                assert h["sum"] == pytest.approx(h["count"] * latency[name])
                own = next(count for le, count in h["buckets"] if le >= latency[name])
                assert own == h["count"]
            assert lag["sum"] == pytest.approx(lag["count"] * 0.002)
            seen.add(lag["count"])
    finally:
        stop.set()
        sys.setswitchinterval(old)
        thread.join(10)
    assert len(seen) > renders // 2  # the observations really moved under the renders
    assert histograms(metrics.render().decode())  # and the real parser agrees it is text
