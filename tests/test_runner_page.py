"""The runner in-process: what it records with a trigger (watchdog/page.py at its edge),
across a change of definition, and on the re-sent triggers of open incidents."""

from __future__ import annotations

import pytest

from fakepd import FakePagerDuty
from procs import ROUTING_KEY
from watchdog.config import load
from watchdog.model import TRIGGER, ProbeResult
from watchdog.page import iso_utc
from watchdog.reloading import retrigger_open
from watchdog.runner import Runner

pytestmark = pytest.mark.timeout(60)
FAIL = ProbeResult(ok=False, summary="down", details={"status": 503})
T0 = 1_800_000_000.0

CONFIG = (
    "pagerduty:\n  routing_key: ${KEY}\n  url: ${URL}\n"
    "state_dir: ./state\ndefaults: {interval: 1h, fail_after: 3}\n"
    "checks:\n  - name: web\n    command: 'true'\n    component: web\n"
    "    runbook: https://wiki/{name}\n"
)


@pytest.fixture
def pd(monkeypatch):
    with FakePagerDuty() as fake:
        monkeypatch.setenv("KEY", ROUTING_KEY)  # a reload reads the environment again
        monkeypatch.setenv("URL", fake.url)
        yield fake


def start(config, pd: FakePagerDuty) -> Runner:
    """A runner on `config` sending to the stand-in, every event it records kept in
    runner.recorded (what the store is given, in the transaction with the state)."""
    runner = Runner(load(str(config)))
    runner.recorded = []
    real = runner.recorder.record

    def record(name, fingerprint, incident_key, state, result, at, events):
        runner.recorded.extend(events)
        return real(name, fingerprint, incident_key, state, result, at, events)

    runner.recorder.record = record
    runner.start()
    return runner


def queued_triggers(runner: Runner) -> list:
    return [event for event in runner.recorded if event.action == TRIGGER]


def test_the_recorded_trigger_carries_the_page_and_a_changed_check_fails_anew(tmp_path, pd):
    config = tmp_path / "w.yaml"
    config.write_text(CONFIG)
    runner = start(config, pd)
    try:
        runner._on_result(runner.checks["web"], FAIL, T0, T0)
        config.write_text(CONFIG.replace("interval: 1h", "interval: 30m"))  # definition changed
        assert runner.reload()
        for n in range(3):
            at = T0 + 100 + n
            runner._on_result(runner.checks["web"], FAIL, at, at)
        (event,) = queued_triggers(runner)  # as stored: in the outbox, with the state
        assert event.component == "web"
        assert list(event.links) == [{"href": "https://wiki/web", "text": "Runbook"}]
        assert event.details["status"] == 503
        assert event.details["failing_since"] == iso_utc(T0 + 100)  # not T0: counts restarted
        assert event.details["failing_results"] == 3
        assert event.details["interval"] == "30m"
        assert [r["at"] for r in event.details["recent_results"]] == [
            iso_utc(T0 + 102), iso_utc(T0 + 101), iso_utc(T0 + 100)]
    finally:
        runner.stop_requested.set()
        runner.shutdown()


def test_a_restart_seeds_failing_since_from_the_state_file(tmp_path, pd):
    config = tmp_path / "w.yaml"
    config.write_text(CONFIG)
    first = start(config, pd)
    try:
        first._on_result(first.checks["web"], FAIL, T0, T0)
    finally:
        first.stop_requested.set()
        first.shutdown()
    second = start(config, pd)
    try:
        assert second.history.failing_since("web") is not None
        for n in range(2):
            at = T0 + 60 + n
            second._on_result(second.checks["web"], FAIL, at, at)
        (event,) = queued_triggers(second)
        assert event.details["failing_results"] == 3
        assert event.details["failing_since"] <= iso_utc(T0 + 60)
        assert event.details["recent_results"][-1]["summary"] == "down"  # from the file
    finally:
        second.stop_requested.set()
        second.shutdown()


def test_a_re_sent_trigger_carries_the_page_too(tmp_path, pd):
    config = tmp_path / "w.yaml"
    config.write_text(CONFIG)
    runner = start(config, pd)
    try:
        for n in range(3):
            runner._on_result(runner.checks["web"], FAIL, T0 + n, T0 + n)
        stored = runner.store.load_checks()
        resend = retrigger_open(runner.states, runner.policies, stored)
        assert resend["web"][0].component == ""  # the state machine's event: bare
        runner.store.set_meta("delivery_target", "elsewhere")  # as if the key had changed
        before = len(queued_triggers(runner))
        runner._resync_delivery()
        resent = queued_triggers(runner)[before:]
        assert [event.component for event in resent] == ["web"]
        assert resent[0].links[0]["text"] == "Runbook"
        assert resent[0].details["failing_results"] == 3
    finally:
        runner.stop_requested.set()
        runner.shutdown()
