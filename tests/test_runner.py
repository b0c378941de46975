"""The runner in-process: reloads that race results, and delivery that changes under it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from fakepd import FakePagerDuty
from procs import ROUTING_KEY, Target, Watchdog, wait_for
from watchdog import runner as runner_module
from watchdog.config import load
from watchdog.model import ProbeResult
from watchdog.runner import Runner
from watchdog.timing import spread

pytestmark = pytest.mark.timeout(120)
FAIL = ProbeResult(ok=False, summary="down")
OK = ProbeResult(ok=True, summary="up")


def test_a_result_that_lands_during_a_reload_is_not_lost(tmp_path, monkeypatch):
    config = tmp_path / "w.yaml"
    config.write_text(
        "state_dir: ./state\ndefaults: {interval: 1h, fail_after: 1}\n"
        "checks:\n  - name: web\n    command: 'true'\n  - name: other\n    command: 'true'\n"
    )
    runner = Runner(load(str(config)))
    runner.start()
    try:
        check = runner.checks["web"]
        late: list[threading.Thread] = []
        real_reconcile = runner_module.reconcile

        def reconcile_with_a_result_arriving(known, checks, source):
            now = time.time()
            thread = threading.Thread(target=runner._on_result, args=(check, FAIL, now, now))
            thread.start()
            thread.join(0.3)  # give it every chance to slip in between read and write-back
            late.append(thread)
            return real_reconcile(known, checks, source)

        monkeypatch.setattr(runner_module, "reconcile", reconcile_with_a_result_arriving)
        config.write_text(config.read_text().replace("  - name: other\n    command: 'true'\n", ""))
        assert runner.reload()
        late[0].join(5)
        assert runner.states["web"].triggered
        stored = runner.store.load_checks()
        assert stored["web"].state.triggered and "other" not in stored
    finally:
        runner.stop_requested.set()
        runner.shutdown()


def test_a_failing_result_returns_its_retry_interval_for_the_scheduler(tmp_path):
    """The result handler tells the scheduler how soon to probe again; it does not call it."""
    config = tmp_path / "w.yaml"
    config.write_text(
        "state_dir: ./state\n"
        "defaults: {interval: 1h, fail_after: 3, retry_interval: 200ms}\n"
        "checks:\n  - name: web\n    command: 'false'\n"
    )
    runner = Runner(load(str(config)))
    runner.start()
    try:
        check, now = runner.checks["web"], time.time()
        assert runner._on_result(check, FAIL, now, now) == 0.2  # failing, not yet triggered
        assert runner._on_result(check, OK, now, now) is None  # passing: its interval
        for _ in range(3):
            delay = runner._on_result(check, FAIL, now, now)
        assert runner.states["web"].triggered and delay is None  # triggered: its interval
    finally:
        runner.stop_requested.set()
        runner.shutdown()


def test_retry_interval_confirms_a_failure_within_seconds_not_an_hour(tmp_path):
    name = "web-6903"  # first runs are spread over the interval: this one's comes at once
    assert spread(name, 3600) < 1
    config = tmp_path / "w.yaml"
    config.write_text(
        "state_dir: ./state\n"
        "defaults: {interval: 1h, fail_after: 3, retry_interval: 100ms}\n"
        f"checks:\n  - name: {name}\n    command: 'false'\n"
    )
    runner = Runner(load(str(config)), force_dry_run=True)
    runner.start()
    runner.scheduler.start()
    try:
        wait_for(lambda: runner.states[name].triggered, timeout=10,
                 what="three failures 100 ms apart")
    finally:
        runner.stop_requested.set()
        runner.shutdown()


def key(name: str) -> str:
    return f"pd-watchdog/rt-host/{name}"


def live_config(tmp_path: Path, pd_url: str, target_url: str) -> Path:
    config = tmp_path / "w.yaml"
    config.write_text(
        "pagerduty: {routing_key: '${TEST_ROUTING_KEY:-}', url: '" + pd_url + "', "
        "source: rt-host}\nstate_dir: ./state\n"
        "defaults: {interval: 100ms, fail_after: 2, recover_after: 2}\n"
        f"checks:\n  - name: web\n    http: {{url: '{target_url}'}}\n"
    )
    return config


def test_an_incident_opened_in_dry_run_is_paged_once_a_key_is_given(tmp_path):
    target = Target()
    try:
        with FakePagerDuty() as pd:
            config = live_config(tmp_path, pd.url, target.url)
            target.up = False
            dry = Watchdog(config, env={"TEST_ROUTING_KEY": ""})
            with dry:
                dry.wait_log("would trigger")
                assert dry.stop() == 0
            assert pd.requests == []
            live = Watchdog(config, env={"TEST_ROUTING_KEY": ROUTING_KEY})
            with live:
                pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger"], timeout=10)
                live.wait_log("re-sending the trigger of 1 open incidents")
                target.up = True
                pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger", "resolve"])
                assert live.stop() == 0
    finally:
        target.close()


def test_a_refused_key_fixed_by_a_reload_pages_the_open_incident(tmp_path):
    import signal

    target = Target()
    wrong = "ffffffffffffffffffffffffffffffff"
    try:
        with FakePagerDuty() as pd:
            pd.set_valid_keys({ROUTING_KEY})
            config = live_config(tmp_path, pd.url, target.url)
            config.write_text(config.read_text().replace("${TEST_ROUTING_KEY:-}", wrong))
            config.chmod(0o600)
            target.up = False
            with Watchdog(config) as proc:
                proc.wait_log("dead letter trigger")
                assert "integration type" in proc.log()  # the wrong-kind-of-key hint
                config.write_text(config.read_text().replace(wrong, ROUTING_KEY))
                proc.signal(signal.SIGHUP)
                pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger"], timeout=10)
                assert proc.stop() == 0
            assert wrong not in proc.log() and ROUTING_KEY not in proc.log()
    finally:
        target.close()


def test_wait_for_helper_reports_what_it_waited_for():
    with pytest.raises(AssertionError, match="the impossible"):
        wait_for(lambda: False, timeout=0.05, what="the impossible")


OK = ProbeResult(ok=True, summary="fine")


def _two_checks(tmp_path: Path) -> Path:
    config = tmp_path / "w.yaml"
    config.write_text(
        "state_dir: ./state\ndefaults: {interval: 1h, fail_after: 2, recover_after: 1}\n"
        "checks:\n  - name: web\n    command: 'true'\n  - name: db\n    command: 'true'\n"
    )
    return config


def test_a_repeated_state_is_saved_in_a_batch_and_a_change_at_once(tmp_path):
    runner = Runner(load(str(_two_checks(tmp_path))))
    runner.start()
    try:
        web = runner.checks["web"]
        now = time.time()
        runner._on_result(web, OK, now - 2, now - 2)  # first pass: passes 0 -> 1, a change
        runner._on_result(web, OK, now, now)  # the same state again: only last_result is new
        assert runner.store.load_checks()["web"].last_at == now - 2
        runner._on_result(web, FAIL, now, now + 1)  # ok -> failing 1/2: a change of state
        stored = runner.store.load_checks()["web"]
        assert stored.state.failures == 1 and stored.last_result["summary"] == "down"
        runner._on_result(web, OK, now, now + 2)  # failing -> ok: a change again
        runner._on_result(web, OK, now, now + 3)  # the same state: batched
        assert runner.store.load_checks()["web"].last_at == now + 2
        runner._housekeeping()
        stored = runner.store.load_checks()["web"]
        assert stored.last_at == now + 3 and stored.last_result["summary"] == "fine"
    finally:
        runner.stop_requested.set()
        runner.shutdown()


def test_batched_results_are_saved_at_shutdown_and_never_overwrite_a_later_change(tmp_path):
    config = _two_checks(tmp_path)
    runner = Runner(load(str(config)))
    runner.start()
    web, db = runner.checks["web"], runner.checks["db"]
    now = time.time()
    runner._on_result(db, OK, now, now)  # batched
    runner._on_result(web, OK, now, now)  # batched ...
    runner._on_result(web, FAIL, now, now + 1)  # ... then superseded by a change, at once
    runner.stop_requested.set()
    runner.shutdown()
    runner = Runner(load(str(config)))
    try:
        stored = runner.store.load_checks()
        assert stored["db"].last_at == now  # the batch was written at shutdown
        assert stored["web"].last_at == now + 1 and stored["web"].state.failures == 1
    finally:
        runner.store.close()


def test_a_reload_saves_the_batch_before_rewriting_rows(tmp_path):
    config = _two_checks(tmp_path)
    runner = Runner(load(str(config)))
    runner.start()
    try:
        now = time.time()
        runner._on_result(runner.checks["db"], OK, now, now)
        config.write_text(config.read_text().replace("fail_after: 2", "fail_after: 3"))
        assert runner.reload()
        assert runner.store.load_checks()["db"].last_at == now
    finally:
        runner.stop_requested.set()
        runner.shutdown()
