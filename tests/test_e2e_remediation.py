"""End to end: `diagnose:` and `remediate:` with the real process, real subprocesses and
the PagerDuty stand-in. The target is a flag file (a file check); a remediation that
creates it fixes the check."""

from __future__ import annotations

import os
import re
import urllib.request
from pathlib import Path

import pytest

from fakepd import FakePagerDuty
from procs import ROUTING_KEY, Watchdog, pdw, wait_for

pytestmark = pytest.mark.timeout(120)

ENV = {"TEST_ROUTING_KEY": ROUTING_KEY}
KEY = "pd-watchdog/e2e-host/flag"


def write_config(tmp_path: Path, pd_url: str, flag_check: str, extra: str = "") -> Path:
    config = tmp_path / "watchdog.yaml"
    config.write_text(
        "pagerduty:\n"
        "  routing_key: ${TEST_ROUTING_KEY}\n"
        f"  url: {pd_url}\n"
        "  source: e2e-host\n"
        "state_dir: ./state\n"
        'metrics: {listen: "127.0.0.1:0"}\n'
        "defaults: {interval: 100ms, timeout: 2s, fail_after: 3, recover_after: 1}\n"
        "checks:\n"
        "  - name: flag\n"
        "    file: {path: ./flag}\n" + flag_check + extra
    )
    return config


def metrics(proc: Watchdog) -> str:
    port = int(re.search(r"serving http://127\.0\.0\.1:(\d+)/", proc.log()).group(1))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return answer.read().decode()


def remediations(proc: Watchdog, outcome: str) -> float:
    line = f'pd_watchdog_remediations_total{{check="flag",outcome="{outcome}"}} '
    found = re.search("^" + re.escape(line) + r"(\S+)$", metrics(proc), re.M)
    return float(found.group(1)) if found else 0.0


def triggers(pd: FakePagerDuty) -> list[dict]:
    return [e["body"] for e in pd.events if e["body"].get("event_action") == "trigger"]


def test_a_remediation_that_fixes_the_target_prevents_the_page(tmp_path, pd):
    flag = tmp_path / "flag"
    flag.touch()
    config = write_config(tmp_path, pd.url, "    remediate: {command: touch flag, after: 2, "
                          "max: 2, within: 1h}\n")
    with Watchdog(config, env=ENV) as proc:
        proc.wait_started()
        flag.unlink()
        proc.wait_log("remediation helped")
        assert flag.exists()  # the remediation made it, in the check file's folder
        assert remediations(proc, "fixed") == 1.0 and remediations(proc, "failed") == 0.0
        assert proc.stop() == 0
    assert triggers(pd) == []  # it never reached fail_after: nobody was woken
    log = proc.log()
    assert "failing 1/3 -> failing 2/3" in log and "-> triggered" not in log
    assert "remediation 1/2 in 1h: touch flag" in log


def test_a_remediation_is_told_as_a_change_event_when_asked(tmp_path, pd):
    flag = tmp_path / "flag"
    flag.touch()
    config = write_config(tmp_path, pd.url, "    remediate: {command: touch flag, after: 2, "
                          "max: 2, within: 1h}\n")
    text = config.read_text().replace("  source: e2e-host\n",
                                      "  source: e2e-host\n  change_events: [remediation]\n")
    config.write_text(text)
    with Watchdog(config, env=ENV) as proc:
        proc.wait_started()
        flag.unlink()
        pd.wait_for(lambda: pd.change_events, timeout=30)
        assert proc.stop() == 0
    (change,) = pd.change_events
    body = change["body"]
    assert body["routing_key"] == ROUTING_KEY
    assert body["payload"]["summary"] == "flag: remediation `touch flag` exited 0; the check " \
        "passes again"
    details = body["payload"]["custom_details"]
    assert details["kind"] == "remediation" and details["check"] == "flag"
    assert details["fixed"] is True and details["exit_code"] == 0
    assert details["command"] == "touch flag"
    assert triggers(pd) == []


def test_a_remediation_that_does_not_help_goes_with_the_page(tmp_path, pd):
    config = write_config(
        tmp_path, pd.url,
        "    diagnose: [sh, -c, 'echo disk is full; echo x >> diagnosed']\n"
        "    remediate:\n"
        "      command: [sh, -c, 'echo restarting web; echo it failed >&2; exit 3']\n"
        "      after: 2\n"
        "      max: 2\n"
        "      within: 1h\n")
    with Watchdog(config, env=ENV) as proc:
        pd.wait_for(lambda: triggers(pd), timeout=15)
        [trigger] = triggers(pd)
        details = trigger["payload"]["custom_details"]
        remediation = details["remediation"]
        assert remediation["summary"] == "remediation ran 1 time in the last 1h; still failing"
        assert remediation["command"] == "sh -c 'echo restarting web; echo it failed >&2; exit 3'"
        [run] = remediation["runs"]
        assert run["exit_code"] == 3
        assert run["output"] == "restarting web\nit failed\n"
        diagnosis = details["diagnosis"]
        assert diagnosis["output"] == "disk is full\n" and diagnosis["exit_code"] == 0
        assert "error" not in diagnosis
        assert remediations(proc, "failed") == 1.0
        # the second run (at 4 failures in a row) goes too; diagnose stays at one per incident
        proc.wait_log("failing 4 in a row: remediation 2/2 in 1h")
        proc.wait_log("remediation exhausted")
        (tmp_path / "flag").touch()
        pd.wait_for(lambda: pd.actions_for(KEY) == ["trigger", "resolve"], timeout=15)
        assert proc.stop() == 0
    assert (tmp_path / "diagnosed").read_text() == "x\n"  # not on repeats, not on the resolve


def test_a_restart_keeps_the_count_no_restart_loop(tmp_path, pd):
    flag = tmp_path / "flag"
    config = write_config(tmp_path, pd.url, "    remediate: {command: touch flag, after: 1, "
                          "max: 1, within: 1h}\n")
    proc = Watchdog(config, env=ENV)
    with proc:
        proc.wait_log("remediation helped")
        assert proc.stop() == 0
    assert flag.exists()
    flag.unlink()
    with proc:
        pd.wait_for(lambda: triggers(pd), timeout=15)
        assert not flag.exists()  # max 1 within 1h, counted across the restart: not run again
        assert "remediation exhausted: ran 1 time in the last 1h (max 1)" in proc.log()
        summary = triggers(pd)[0]["payload"]["custom_details"]["remediation"]["summary"]
        assert summary.startswith("remediation ran 1 time in the last 1h; still failing; "
                                  "remediation exhausted (max 1 in 1h), next run allowed at ")
        table = pdw("status", str(config), env=dict(os.environ)).stdout
        assert re.search(r"remediated 1/1 in 1h, last \S+ ago exit 0, remediation exhausted "
                         r"until", table), table
        assert proc.stop() == 0
    assert proc.log().count("remediation 1/1 in 1h") == 1


def test_a_hung_remediation_is_killed_at_its_timeout_and_blocks_no_other_check(tmp_path, pd):
    config = write_config(
        tmp_path, pd.url,
        "    fail_after: 5\n"
        "    remediate:\n"
        "      command: [sh, -c, 'sleep 60 & echo $! > sleeper; wait']\n"
        "      after: 1\n"
        "      max: 1\n"
        "      timeout: 2s\n",
        "  - name: other\n"
        "    command: [sh, -c, 'echo x >> other.log']\n")
    sleeper, other = tmp_path / "sleeper", tmp_path / "other.log"

    def other_runs() -> int:
        return len(other.read_text().splitlines()) if other.exists() else 0

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    with Watchdog(config, env=ENV) as proc:
        wait_for(lambda: sleeper.exists() and sleeper.read_text().strip(), what="the sleeper")
        pid = int(sleeper.read_text())
        before = other_runs()
        # while the remediation hangs, the other check keeps running on its interval
        wait_for(lambda: other_runs() >= before + 3, timeout=1.5, what="other check's runs")
        assert "remediation timed out" not in proc.log()
        proc.wait_log("check flag: remediation timed out after 2s")
        wait_for(lambda: not alive(pid), what="the grandchild killed with its group")
        assert proc.stop() == 0


def test_diagnose_output_arrives_and_a_hung_diagnose_does_not_hold_the_page(tmp_path, pd):
    config = write_config(
        tmp_path, pd.url,
        "    fail_after: 1\n"
        "    diagnose: {command: [sh, -c, 'echo partial; exec sleep 60'], timeout: 500ms}\n")
    with Watchdog(config, env=ENV) as proc:
        pd.wait_for(lambda: triggers(pd), timeout=15)
        diagnosis = triggers(pd)[0]["payload"]["custom_details"]["diagnosis"]
        assert diagnosis["error"] == "diagnose timed out after 500ms"
        assert diagnosis["output"] == "partial\n" and diagnosis["exit_code"] is None
        assert "check flag: diagnose timed out after 500ms; the page goes out" in proc.log()
        assert proc.stop() == 0


def test_no_remediation_while_a_hold_explains_the_failure(tmp_path, pd):
    config = write_config(
        tmp_path, pd.url, "    remediate: {command: touch flag, after: 1}\n",
        "maintenance:\n"
        "  - {name: work, checks: flag, start: '2020-01-01T00:00', end: '2099-01-01T00:00'}\n")
    with Watchdog(config, env=ENV) as proc:
        proc.wait_log("check flag: remediation not run while held: maintenance work")
        proc.wait_log("held (failing 4/3)")  # more due runs: still none, said once
        assert not (tmp_path / "flag").exists()  # nobody's restart fought the person at work
        assert proc.log().count("remediation not run") == 1
        assert proc.stop() == 0
    assert triggers(pd) == []
