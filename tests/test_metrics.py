"""Metrics scraped from the real MetricsServer over loopback, parsed by prometheus_client."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from watchdog.metrics import LAG_BUCKETS, PROBE_BUCKETS, Metrics, MetricsServer
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
    assert get(server, "/metrics", method="POST")[0] == 501


def test_openmetrics_when_asked(served):
    metrics, server, _ = served
    metrics.set_info("1", 1, False)
    status, body, headers = get(
        server, "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith("# EOF")


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
