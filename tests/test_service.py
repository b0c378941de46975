"""Running as a service: sd_notify and the systemd watchdog, heartbeat, metrics, secrets."""

from __future__ import annotations

import json
import re
import signal
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fakepd import FakePagerDuty
from procs import ROUTING_KEY, Target, Watchdog, pdw, wait_for
from watchdog import vitals as vitals_module
from watchdog.config import load
from watchdog.model import ProbeResult
from watchdog.runner import Runner

pytestmark = pytest.mark.timeout(120)
ENV = {"TEST_ROUTING_KEY": ROUTING_KEY}


class NotifySocket:
    """A datagram socket standing in for systemd's $NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)
        self.messages: list[str] = []
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while self.running:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                self.messages.append(data.decode())

    def lines(self) -> list[str]:
        with self.lock:
            return [line for message in self.messages for line in message.splitlines()]

    def count(self, line: str) -> int:
        return self.lines().count(line)

    def close(self) -> None:
        self.running = False
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def notify(tmp_path):
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


@pytest.fixture
def target():
    made = Target()
    yield made
    made.close()


def config_file(tmp_path: Path, pd_url: str, target_url: str, extra: str = "") -> Path:
    path = tmp_path / "watchdog.yaml"
    path.write_text(
        "pagerduty:\n  routing_key: ${TEST_ROUTING_KEY}\n"
        f"  url: {pd_url}\n  source: svc-host\n"
        "state_dir: ./state\n"
        "defaults: {interval: 100ms, timeout: 1s, fail_after: 2, recover_after: 2}\n"
        f"checks:\n  - name: web\n    http: {{url: '{target_url}'}}\n" + extra
    )
    path.chmod(0o600)
    return path


def test_real_process_speaks_sd_notify(tmp_path, notify, target):
    with FakePagerDuty() as pd:
        config = config_file(tmp_path, pd.url, target.url)
        env = {**ENV, "NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "200000"}
        with Watchdog(config, env=env) as proc:
            wait_for(lambda: "READY=1" in notify.lines(), what="READY=1")
            status = [line for line in notify.lines() if line.startswith("STATUS=")]
            # nothing has run yet at READY=1: the check is pending, not ok
            assert status and "1 check (1 pending), 0 triggered, 0 events pending" in status[0]
            wait_for(lambda: any(line == "STATUS=1 check, 0 triggered, 0 events pending"
                                 for line in notify.lines()), what="STATUS= once it ran")
            wait_for(lambda: notify.count("WATCHDOG=1") >= 5, what="watchdog pings")
            proc.signal(signal.SIGHUP)
            wait_for(lambda: "RELOADING=1" in notify.lines(), what="RELOADING=1")
            wait_for(lambda: notify.count("READY=1") >= 2, what="READY=1 after the reload")
            target.up = False
            wait_for(
                lambda: any("1 triggered" in line for line in notify.lines()),
                what="STATUS= showing the incident",
            )
            assert proc.stop() == 0
        assert "STOPPING=1" in notify.lines()


def _runner(tmp_path: Path, notify: NotifySocket, monkeypatch, url: str, workers: int = 4):
    monkeypatch.setenv("NOTIFY_SOCKET", notify.path)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    monkeypatch.setenv("TEST_ROUTING_KEY", "")
    config = config_file(tmp_path, "http://127.0.0.1:9", url, extra=f"workers: {workers}\n")
    return Runner(load(str(config)))


class LoopThread:
    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.thread = threading.Thread(target=runner.loop, daemon=True)

    def __enter__(self):
        self.runner.start()
        self.thread.start()
        return self.runner

    def __exit__(self, *exc):
        self.runner.stop_requested.set()
        self.runner._wake.set()
        self.thread.join(10)
        self.runner.shutdown()


def pings_during(notify: NotifySocket, seconds: float) -> int:
    before = notify.count("WATCHDOG=1")
    time.sleep(seconds)  # measuring an absence takes a window; the window is the assertion
    return notify.count("WATCHDOG=1") - before


def test_watchdog_pings_stop_while_the_scheduler_loop_hangs(tmp_path, notify, monkeypatch, target):
    monkeypatch.setattr(vitals_module, "LOOP_STALL", 1.0)
    runner = _runner(tmp_path, notify, monkeypatch, target.url)
    hang = threading.Event()
    released = threading.Event()
    real_tick = runner.scheduler.tick

    def tick():
        if hang.is_set():
            released.wait(10)
        return real_tick()

    runner.scheduler.tick = tick
    with LoopThread(runner):
        wait_for(lambda: notify.count("WATCHDOG=1") >= 3, what="pings while healthy")
        hang.set()
        wait_for(lambda: not runner.health()[0], what="the hung scheduler loop to be noticed")
        assert runner.health()[1].startswith("scheduler loop has not run for")
        assert pings_during(notify, 1.0) == 0
        released.set()
        hang.clear()
        wait_for(lambda: pings_during(notify, 0.3) >= 1, what="pings after the loop recovered")


def test_watchdog_pings_stop_when_every_probe_worker_is_stuck(
    tmp_path, notify, monkeypatch, target
):
    monkeypatch.setattr(vitals_module, "STALL", 0.3)
    runner = _runner(tmp_path, notify, monkeypatch, target.url, workers=1)
    stuck = threading.Event()
    release = threading.Event()

    class Stuck:
        def run(self, timeout):
            stuck.set()
            release.wait(10)
            return ProbeResult(ok=True, summary="ok")

    with LoopThread(runner):
        wait_for(lambda: notify.count("WATCHDOG=1") >= 2, what="pings while healthy")
        check = runner.config.checks[0]
        object.__setattr__(check, "probe", Stuck())
        wait_for(stuck.is_set, what="the probe to get stuck")
        time.sleep(1.5)  # past STALL + the check's 1 s timeout
        assert runner.health() == (False, "every probe worker is stuck; no probe finished recently")
        assert pings_during(notify, 0.5) == 0
        release.set()
        wait_for(lambda: runner.health()[0], what="health after the worker freed up")


def test_heartbeat_pings_a_loopback_url_on_schedule_and_hides_its_token(tmp_path, target):
    beat = Target()
    try:
        url = beat.url.replace("/health", "/ping/s3cr3t-t0ken-abcdef")
        with FakePagerDuty() as pd:
            config = config_file(
                tmp_path,
                pd.url,
                target.url,
                extra=f"heartbeat: {{url: '{url}', interval: 200ms}}\n",
            )
            with Watchdog(config, env=ENV) as proc:
                wait_for(lambda: beat.hits >= 5, what="heartbeat pings")
                assert proc.stop() == 0
        assert "s3cr3t-t0ken" not in proc.log()
    finally:
        beat.close()


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_endpoint_matches_the_run(tmp_path, target):
    with FakePagerDuty() as pd:
        extra = "metrics: {listen: '127.0.0.1:0'}\n"
        config = config_file(tmp_path, pd.url, target.url, extra=extra)
        with Watchdog(config, env=ENV) as proc:
            proc.wait_log("metrics: serving")
            port = re.search(r"metrics: serving http://127\.0\.0\.1:(\d+)/metrics", proc.log())
            base = f"http://127.0.0.1:{port.group(1)}"
            target.up = False
            pd.wait_for(lambda: pd.actions_for("pd-watchdog/svc-host/web") == ["trigger"])
            check = (("check", "web"),)
            wait_for(
                lambda: (
                    scrape(base + "/metrics").get(
                        ("pd_watchdog_events_total", (("action", "trigger"), ("outcome", "sent")))
                    )
                    == 1
                ),
                what="the trigger counted as sent",
            )
            samples = scrape(base + "/metrics")
            assert samples[("pd_watchdog_check_triggered", check)] == 1
            assert samples[("pd_watchdog_check_up", check)] == 0
            assert samples[("pd_watchdog_check_consecutive_failures", check)] >= 2
            runs = samples[("pd_watchdog_check_runs_total", check)]
            assert abs(runs - target.hits) <= 2  # in-flight probes aside, one run is one hit
            assert samples[("pd_watchdog_outbox_pending", ())] == 0
            assert samples[("pd_watchdog_schedule_lag_seconds_count", ())] == pytest.approx(
                runs, abs=2
            )
            with urllib.request.urlopen(base + "/healthz", timeout=5) as response:
                assert response.status == 200
            assert proc.stop() == 0
        assert ROUTING_KEY not in proc.log()


def test_secrets_stay_out_of_pages_logs_status_and_metrics(tmp_path, target):
    """A plugin that echoes its !secret token: PagerDuty, logs and status see …last4 only."""
    token = "tok-0123456789-SECRET"
    leaky = (
        "  - name: leaky\n"
        '    command: echo "CRITICAL - token=$API_TOKEN"; exit 2\n'
        "    shell: true\n"
        "    env: {API_TOKEN: !secret '${MY_TOKEN}'}\n"
    )
    with FakePagerDuty() as pd:
        config = config_file(tmp_path, pd.url, target.url)
        config.write_text(config.read_text() + leaky)
        env = {**ENV, "MY_TOKEN": token}
        with Watchdog(config, env=env) as proc:
            pd.wait_for(lambda: pd.actions_for("pd-watchdog/svc-host/leaky") == ["trigger"])
            status = pdw("status", str(config), "--json", cwd=tmp_path, env=proc.env)
            assert proc.stop() == 0
        sent = json.dumps(pd.events, ensure_ascii=False)
        assert "token=…CRET" in sent and token not in sent
        assert status.returncode == 0 and token not in status.stdout
        assert "…CRET" in status.stdout
        assert token not in proc.log() and ROUTING_KEY not in proc.log()
