"""Passive checks end to end: the real `pd-watchdog run`, `ping` and `wrap` as cron would
run them, the PagerDuty stand-in; sub-second intervals and second-long expectations."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fakepd import FakePagerDuty
from procs import ROOT, ROUTING_KEY, Watchdog, pdw, wait_for
from watchdog.config import load
from watchdog.status import collect
from watchdog.store import Store

pytestmark = pytest.mark.timeout(120)

ENV = {"TEST_ROUTING_KEY": ROUTING_KEY}
CLI_ENV = {**os.environ, **ENV}
SECRET = "s3cr3t-value-never-shown"


def key(name: str) -> str:
    return f"pd-watchdog/e2e-host/{name}"


def write_config(tmp_path: Path, pd_url: str, checks: str, top: str = "") -> Path:
    config = tmp_path / "watchdog.yaml"
    config.write_text(
        "pagerduty:\n  routing_key: ${TEST_ROUTING_KEY}\n"
        f"  url: {pd_url}\n  source: e2e-host\n"
        "state_dir: ./state\n"
        "defaults: {interval: 100ms, timeout: 1s, fail_after: 1, recover_after: 1}\n"
        f"{top}checks:\n{checks}")
    return config


def passive(name: str, every: str = "30s", grace: str = "1s", extra: str = "") -> str:
    return (f"  - name: {name}\n    passive: {{expect_every: {every}, grace: {grace}"
            f"{extra}}}\n")


def cli(*args: str) -> subprocess.CompletedProcess:
    return pdw(*args, env=CLI_ENV)


def row(config: Path, name: str) -> dict:
    """The check's row as `pd-watchdog status --json` shows it (in-process: quick)."""
    checks = load(str(config), environ=ENV).checks
    rows = collect(str(config.parent / "state"), checks)["checks"]
    return next(r for r in rows if r["name"] == name)


def triggers(pd: FakePagerDuty, name: str) -> list[dict]:
    return [e for e in pd.events if e["key"] == key(name) and e["action"] == "trigger"]


def test_a_job_that_succeeds_stays_quiet_one_that_fails_pages_until_it_succeeds(tmp_path, pd):
    config = write_config(tmp_path, pd.url, passive("good") + passive("bad"))
    with Watchdog(config, env=ENV) as proc:
        proc.wait_started()
        assert row(config, "good")["pending"] and row(config, "good")["state"] == "pending"
        done = cli("wrap", str(config), "good", "--", "sh", "-c", "echo backed up")
        assert done.returncode == 0 and done.stdout == "backed up\n", done.stderr
        wait_for(lambda: (row(config, "good")["last_result"] or {}).get("ok"),
                 what="the success judged")
        assert row(config, "good")["last_result"]["summary"].startswith("last success ")
        done = cli("wrap", str(config), "bad", "--", "sh", "-c",
                   "echo copying; echo 'rsync: disk full' >&2; exit 2")
        assert done.returncode == 2 and done.stdout == "copying\n"
        pd.wait_for(lambda: triggers(pd, "bad"), timeout=5)
        event = triggers(pd, "bad")[0]["body"]["payload"]
        assert event["summary"] == "bad: failed: exit code 2: rsync: disk full"
        assert event["custom_details"]["exit_code"] == 2
        assert "copying" in event["custom_details"]["message"]
        assert cli("ping", str(config), "bad").returncode == 0
        pd.wait_for(lambda: pd.actions_for(key("bad")) == ["trigger", "resolve"], timeout=5)
        assert proc.stop() == 0
    assert pd.actions_for(key("good")) == []


def test_a_start_with_no_finish_within_max_runtime_pages(tmp_path, pd):
    config = write_config(tmp_path, pd.url, passive("slow", extra=", max_runtime: 300ms"))
    with Watchdog(config, env=ENV) as proc:
        proc.wait_started()
        job = subprocess.Popen(
            [sys.executable, "-m", "watchdog", "wrap", str(config), "slow", "--",
             "sh", "-c", "sleep 1.5"], cwd=ROOT, env=CLI_ENV)
        try:
            pd.wait_for(lambda: triggers(pd, "slow"), timeout=5)
            assert job.poll() is None  # paged while the job still runs
            summary = triggers(pd, "slow")[0]["body"]["payload"]["summary"]
            assert summary.startswith("slow: started ") and summary.endswith(
                "ago and not finished (max_runtime 300ms)")
            assert job.wait(10) == 0
        finally:
            if job.poll() is None:
                job.kill()
                job.wait()
        pd.wait_for(lambda: pd.actions_for(key("slow")) == ["trigger", "resolve"], timeout=5)
        assert proc.stop() == 0


def test_silence_pages_after_expect_every_plus_grace_and_a_restart_keeps_the_clock(
        tmp_path, pd):
    """`never` is never reported: pending, then a page at first seen + 6s + 1s; `once`
    succeeds once, then the runner is down past its deadline: both page at once on the
    restart, not a whole expect_every + grace after it."""
    config = write_config(tmp_path, pd.url, passive("never", "6s", "1s")
                          + passive("once", "6s", "1s"))
    proc = Watchdog(config, env=ENV)
    try:
        before = time.time()
        proc.start()
        proc.wait_started()
        assert row(config, "never")["state"] == "pending"
        assert cli("ping", str(config), "once", "--message", "ok").returncode == 0
        pinged = time.time()
        wait_for(lambda: (row(config, "once")["last_result"] or {}).get("ok"),
                 what="once judged")
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0
        assert pd.events == []
        wait_for(lambda: time.time() > pinged + 7.2, timeout=10, what="both overdue")
        restarted = time.time()
        proc.start()
        proc.wait_started()
        pd.wait_for(lambda: triggers(pd, "once") and triggers(pd, "never"), timeout=10)
        # A clock reset by the restart would page 7 s after it, at the earliest.
        assert time.time() < restarted + 7
        never = triggers(pd, "never")[0]["body"]["payload"]["summary"]
        assert never.startswith("never: no success since ") and \
            never.endswith(", when the check was first seen (due every 6s, grace 1s)")
        once = triggers(pd, "once")[0]["body"]["payload"]
        assert once["summary"].endswith("(due every 6s, grace 1s)")
        assert before < once["custom_details"]["last_success_at"] < pinged
        assert proc.stop() == 0
    finally:
        proc.__exit__(None, None, None)


def test_wrap_passes_output_through_live_and_exits_with_the_jobs_code(tmp_path, pd):
    config = write_config(tmp_path, pd.url, passive("job"))
    Store(str(tmp_path / "state")).close()  # as a first run leaves it
    gate = tmp_path / "go"
    job = subprocess.Popen(
        [sys.executable, "-m", "watchdog", "wrap", str(config), "job", "--", "sh", "-c",
         f"echo ready; while [ ! -e {gate} ]; do sleep 0.02; done; printf 'a\\0b'; "
         f"echo {SECRET} >&2; exit 3"],
        cwd=ROOT, env=CLI_ENV, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    try:
        assert job.stdout.readline() == b"ready\n"  # while the job still waits: live
        gate.touch()
        out, err = job.communicate(timeout=20)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    assert job.returncode == 3 and out == b"a\0b" and err == f"{SECRET}\n".encode()
    with Store(str(tmp_path / "state"), readonly=True) as store:
        record = dict(store.passive_records())["job"]
    assert record.exit_code == 3 and record.failed and record.duration > 0
    assert "ready" in record.message
    done = cli("wrap", str(config), "job", "--", "sh", "-c", "kill -TERM $$")
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    done = cli("wrap", str(config), "job", "--", "true")
    assert done.returncode == 0 and done.stdout == done.stderr == ""
    done = cli("wrap", str(config), "job", "--", "no-such-program-here")
    assert done.returncode == 127 and "command not found: no-such-program-here" in done.stderr
    with Store(str(tmp_path / "state"), readonly=True) as store:
        record = dict(store.passive_records())["job"]
    assert record.exit_code == 127 and "command not found" in record.message


def test_wrap_masks_secrets_and_runs_the_job_when_nothing_can_be_recorded(tmp_path, pd):
    config = write_config(tmp_path, pd.url, passive("job"))
    config.write_text(config.read_text().replace(
        "state_dir: ./state\n", f"state_dir: ./state\nheartbeat: {{url: !secret "
        f"'http://127.0.0.1:9/{SECRET}', interval: 1h}}\n"))
    done = cli("wrap", str(config), "job", "--", "sh", "-c", "echo hi; exit 4")
    assert done.returncode == 4 and done.stdout == "hi\n"  # no state yet: ran all the same
    assert "the start of 'job' was not reported (no state yet" in done.stderr
    assert "the report of 'job' (exit code 4) was lost" in done.stderr
    Store(str(tmp_path / "state")).close()
    done = cli("wrap", str(config), "job", "--", "sh", "-c",
               f"echo 'url http://127.0.0.1:9/{SECRET}'; exit 1")
    assert done.returncode == 1 and SECRET in done.stdout  # passed through unchanged
    with Store(str(tmp_path / "state"), readonly=True) as store:
        record = dict(store.passive_records())["job"]
    assert SECRET not in record.message and "url " in record.message
    done = cli("wrap", str(config), "jbo", "--", "sh", "-c", "exit 5")
    assert done.returncode == 5 and "did you mean 'job'" in done.stderr


def test_ping_refuses_what_is_not_a_passive_check(tmp_path, pd):
    config = write_config(tmp_path, pd.url, passive("backup")
                          + "  - {name: web, command: 'true'}\n")
    Store(str(tmp_path / "state")).close()
    done = cli("ping", str(config), "bakup")
    assert done.returncode == 1
    assert "no passive check 'bakup'" in done.stderr and "did you mean 'backup'" in done.stderr
    done = cli("ping", str(config), "web")
    assert done.returncode == 1 and "'web' is a command check" in done.stderr
    done = cli("ping", str(config), "backup", "--exit-code", "300")
    assert done.returncode == 2 and "not an exit code" in done.stderr
    assert "Traceback" not in done.stderr
    assert cli("ping", str(config), "backup", "--exit-code", "0").returncode == 0
    with Store(str(tmp_path / "state"), readonly=True) as store:
        record = dict(store.passive_records())["backup"]
    assert record.success_at is not None and record.exit_code == 0
