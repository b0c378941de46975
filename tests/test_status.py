"""`pd-watchdog status` as an operator reads it beside a live runner."""

from __future__ import annotations

import json
import os
import re
import urllib.request
from pathlib import Path

import pytest

from procs import Watchdog, pdw, wait_for

pytestmark = pytest.mark.timeout(90)


def write_config(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "watchdog.yaml"
    config.write_text(
        "state_dir: ./state\n"
        'metrics: {listen: "127.0.0.1:0"}\n'
        "defaults: {interval: 100ms, timeout: 1s, fail_after: 10000, recover_after: 2}\n"
        "checks:\n"
        "  - name: loadish\n"
        "    command: \"echo 'LOAD WARNING - load average 5.1 | load1=5.1;4;8;0 load5=3.2;4;8;0 "
        "load15=1.0;4;8;0 extra=1'; exit 1\"\n"
        "    shell: true\n"
        "  - name: broken-plugin\n"
        "    command: \"echo 'cannot read /proc/loadavg'; exit 3\"\n"
        "    shell: true\n"
        "  - name: hourly\n"
        "    command: \"true\"\n"
        "    interval: 1d\n"
        + extra
    )
    return config


def status(config: Path, *args: str):
    return pdw("status", str(config), *args, env=dict(os.environ))


def rows(config: Path) -> dict[str, dict]:
    done = status(config, "--json")
    assert done.returncode == 0, done.stderr
    return {row["name"]: row for row in json.loads(done.stdout)["checks"]}


def test_status_speaks_nagios_and_says_pending(tmp_path):
    config = write_config(tmp_path)
    with Watchdog(config) as proc:
        proc.wait_started()
        wait_for(lambda: (lambda r: r["loadish"]["failures"] >= 2
                          and r["broken-plugin"]["failures"] >= 2)(rows(config)),
                 what="two results of each fast check")
        data = rows(config)
        assert data["hourly"]["state"] == "pending" and data["hourly"]["pending"]
        assert data["loadish"]["state"].startswith("failing") and not data["loadish"]["pending"]
        table = status(config).stdout
        line = {row.split()[0]: row for row in table.splitlines() if row}
        assert re.search(r"failing \d+/10000, failing since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d "
                         r"\(\d+ results\)", line["loadish"])
        assert " WARNING " in line["loadish"]
        assert "load1=5.1 load5=3.2 load15=1" in line["loadish"] and "extra" not in line["loadish"]
        assert " UNKNOWN " in line["broken-plugin"]
        assert line["hourly"].split()[1] == "pending"
        port = int(re.search(r"serving http://127\.0\.0\.1:(\d+)/", proc.log()).group(1))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            assert "pd_watchdog_checks_pending 1.0" in answer.read().decode()
        assert proc.stop() == 0


def test_status_still_shows_the_state_when_the_config_on_disk_is_broken(tmp_path):
    config = write_config(tmp_path)
    with Watchdog(config) as proc:
        proc.wait_started()
        wait_for(lambda: rows(config)["loadish"]["failures"] >= 1, what="a result")
        config.write_text(config.read_text() + "    bogus_key: 1\n")  # the runner keeps its own
        done = status(config)
        assert done.returncode == 0, done.stderr
        assert "does not load (1 error; `pd-watchdog validate` lists them)" in done.stderr
        assert "loadish" in done.stdout and "WARNING" in done.stdout
        assert "(not in config)" not in done.stdout and "Traceback" not in done.stderr
        assert json.loads(status(config, "--json").stdout)["checks"]
        assert proc.stop() == 0


def test_dry_run_deliveries_are_counted_apart_from_what_pagerduty_got(tmp_path):
    from fakepd import FakePagerDuty
    from procs import ROUTING_KEY

    config = tmp_path / "watchdog.yaml"
    with FakePagerDuty() as pd:
        config.write_text(
            "pagerduty: {routing_key: \"${KEY:-}\", url: \"" + pd.url + "\", source: h}\n"
            "state_dir: ./state\n"
            "defaults: {interval: 1s, timeout: 5s, fail_after: 1}\n"  # no timeout under load
            "checks:\n  - name: down\n    command: \"false\"\n"
        )
        with Watchdog(config) as dry:  # no key: a dry run
            dry.wait_log("dry-run: would trigger")
            assert dry.stop() == 0
        box = json.loads(status(config, "--json").stdout)["outbox"]
        assert box["sent"] == {"trigger": 0, "resolve": 0}
        assert box["dry_run"] == {"trigger": 1, "resolve": 0}
        with Watchdog(config, env={"KEY": ROUTING_KEY}) as live:  # the key is set: re-sent
            pd.wait_for(lambda: pd.actions_for("pd-watchdog/h/down") == ["trigger"], timeout=10)
            wait_for(lambda: json.loads(status(config, "--json").stdout)["outbox"]["sent"]
                     == {"trigger": 1, "resolve": 0}, what="the live send counted")
            assert live.stop() == 0
        table = status(config).stdout
        assert "sent 1 trigger, 0 resolves; a dry run logged 1 trigger, 0 resolves (not sent)" \
            in table
        assert len(pd.requests) == 1


def test_a_check_changed_by_a_reload_is_pending_until_it_runs_again(tmp_path):
    import signal

    config = tmp_path / "watchdog.yaml"
    body = ("state_dir: ./state\n"
            "checks:\n  - name: slowly\n    command: \"{command}\"\n    interval: {interval}\n")
    config.write_text(body.format(command="true", interval="100ms"))
    with Watchdog(config) as proc:
        proc.wait_started()
        wait_for(lambda: rows(config)["slowly"]["state"] == "ok", what="a first run")
        config.write_text(body.format(command="true --changed", interval="1d"))
        proc.signal(signal.SIGHUP)
        proc.wait_log("check slowly: definition changed")
        wait_for(lambda: rows(config)["slowly"]["state"] == "pending", what="pending again")
        assert rows(config)["slowly"]["last_result"]["ok"]  # its last result is still shown
        assert proc.stop() == 0
