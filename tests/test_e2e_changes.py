"""End to end, change events: the real `pd-watchdog run` and the PagerDuty stand-in.

What the stand-in received is read in one order over triggers, resolves and change events
(its shared `seq`). Windows are one-off, a second or two ahead (cron windows run on whole
minutes; their arithmetic is in test_holds.py). "Nothing was sent" is proved by stopping
the runner first: it drains the outbox before it exits and says whether anything was left.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from fakepd import CHANGE_PATH, FakePagerDuty
from procs import ROUTING_KEY, Target, Watchdog, pdw, wait_for

pytestmark = pytest.mark.timeout(120)

ENV = {"TEST_ROUTING_KEY": ROUTING_KEY}
CLI_ENV = {**os.environ, **ENV}


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="milliseconds")


def config_text(pd_url: str, checks: str, *, kinds: str | None, top: str = "") -> str:
    return (
        "pagerduty:\n"
        "  routing_key: ${TEST_ROUTING_KEY}\n"
        f"  url: {pd_url}\n"
        "  source: e2e-host\n"
        + (f"  change_events: {kinds}\n" if kinds is not None else "")
        + "state_dir: ./state\n"
        "defaults:\n"
        "  interval: 100ms\n"
        "  timeout: 1s\n"
        "  fail_after: 2\n"
        "  recover_after: 2\n"
        + top + "checks:\n" + checks
    )


def write_config(tmp_path: Path, pd_url: str, checks: str, *, kinds: str | None,
                 top: str = "") -> Path:
    config = tmp_path / "watchdog.yaml"
    config.write_text(config_text(pd_url, checks, kinds=kinds, top=top))
    return config


def http_check(name: str, url: str, extra: str = "") -> str:
    return f'  - name: {name}\n    http: {{url: "{url}"}}\n{extra}'


def window(name: str, checks: str, start: float, end: float) -> str:
    return (f"maintenance:\n  - name: {name}\n    checks: [{checks}]\n"
            f"    start: \"{iso(start)}\"\n    end: \"{iso(end)}\"\n")


def received(pd: FakePagerDuty) -> list[tuple[str, str]]:
    """Everything the stand-in took, in arrival order: (action or "change", key or summary)."""
    records = [(e["seq"], e["action"], e["key"]) for e in pd.events]
    records += [(c["seq"], "change", c["body"]["payload"]["summary"]) for c in pd.change_events]
    return [(action, what) for _, action, what in sorted(records)]


def payloads(pd: FakePagerDuty) -> list[dict]:
    return [change["body"]["payload"] for change in pd.change_events]


RELOADED = re.compile(r"reload: \d+ checks? from ")


def stop_drained(proc: Watchdog) -> None:
    """Stop; the runner sends what is queued first and says it left nothing pending."""
    assert proc.stop() == 0
    assert proc.log().rpartition("=== start")[2].rstrip().endswith("stopped; nothing pending")


def restart(proc: Watchdog) -> None:
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    proc.start()
    proc.wait_started()


def reload(proc: Watchdog, config: Path, text: str, count: int) -> None:
    """Write the config anew, SIGHUP, and wait for the `count`th reload to be applied."""
    config.write_text(text)
    proc.signal(signal.SIGHUP)
    wait_for(lambda: len(RELOADED.findall(proc.log())) >= count, what=f"reload {count}")


def test_a_reload_that_changes_checks_sends_one_change_event_naming_them(tmp_path, pd, web):
    checks = http_check("web", web.url) + http_check("old", web.url)
    config = write_config(tmp_path, pd.url, checks, kinds="[reload]")
    with Watchdog(config, env=ENV) as proc:
        proc.wait_started()
        changed = http_check("web", web.url, "    interval: 200ms\n") + http_check("db", web.url)
        text = config_text(pd.url, changed, kinds="[reload]")
        reload(proc, config, text, 1)
        pd.wait_for(lambda: pd.change_events, timeout=10)
        reload(proc, config, text, 2)  # the same file again: nothing changed
        stop_drained(proc)
    [payload] = payloads(pd)
    assert payload["summary"] == ("reload: 1 check added (db); 1 check removed (old); "
                                  "1 check changed (web: interval)")
    assert payload["source"] == "e2e-host"
    assert payload["custom_details"] == {"kind": "reload", "added": ["db"], "removed": ["old"],
                                         "changed": {"web": ["interval"]}}
    assert abs(dt.datetime.fromisoformat(payload["timestamp"]).timestamp() - time.time()) < 60
    assert pd.events == []  # and nothing else: the checks passed throughout


def test_a_window_starting_and_ending_sends_two_change_events_in_order_with_triggers(
        tmp_path, pd, web):
    other = Target()
    try:
        checks = http_check("web", web.url) + http_check("api", other.url)
        config = write_config(tmp_path, pd.url, checks, kinds="[maintenance]")
        web.up = False
        with Watchdog(config, env=ENV) as proc:
            proc.wait_started()
            pd.wait_for(lambda: pd.events, timeout=10)  # web's trigger, before any window
            start = time.time() + 1.0
            text = config_text(pd.url, checks, kinds="[maintenance]",
                               top=window("db-move", "api", start, start + 1.5))
            reload(proc, config, text, 1)
            pd.wait_for(lambda: len(pd.change_events) == 2, timeout=15)
            stop_drained(proc)
    finally:
        other.close()
    order = received(pd)
    assert [action for action, _ in order] == ["trigger", "change", "change"]
    assert order[0][1] == "pd-watchdog/e2e-host/web"
    assert order[1][1].startswith("maintenance db-move started (api) until ")
    assert order[1][1].endswith(": their triggers are held")
    assert order[2][1] == ("maintenance db-move ended (api): held pages of checks still "
                           "failing go out now")
    started, ended = payloads(pd)
    assert dt.datetime.fromisoformat(started["timestamp"]).timestamp() == pytest.approx(start,
                                                                                      abs=0.01)
    assert dt.datetime.fromisoformat(ended["timestamp"]).timestamp() == pytest.approx(
        start + 1.5, abs=0.01)
    assert started["custom_details"]["checks"] == ["api"]
    assert started["custom_details"]["window"] == "db-move"
    assert ended["custom_details"]["state"] == "ended"


def test_a_windows_end_is_recorded_before_the_page_it_releases(tmp_path, pd, web):
    """With PagerDuty down, the outbox shows the order things were recorded in: the window's
    end, then the trigger it let go (a result after the boundary announces it first)."""
    now = time.time()
    config = write_config(tmp_path, pd.url, http_check("web", web.url), kinds="[maintenance]",
                          top=window("m", "web", now - 1, now + 6))
    web.up = False
    with Watchdog(config, env=ENV) as proc:
        proc.wait_started()
        pd.wait_for(lambda: pd.change_events, timeout=10)
        pd.set_mode("500")
        proc.wait_log("check web: hold over; trigger released", timeout=15)
        done = pdw("outbox", str(config), "--json", env=CLI_ENV)
        assert done.returncode == 0, done.stderr
        pending = json.loads(done.stdout)["pending"]
        assert [(p["action"], p["check"]) for p in pending] == [
            ("change", "maintenance"), ("trigger", "web")]
        assert pending[0]["summary"].startswith("maintenance m ended (web)")
        pd.set_mode("ok")
        pd.wait_for(lambda: len(pd.change_events) == 2 and pd.events, timeout=30)
        stop_drained(proc)


def test_a_restart_inside_a_window_does_not_announce_it_again(tmp_path, pd, web):
    now = time.time()
    top = window("nightly", "w*", now - 1, now + 3600)
    config = write_config(tmp_path, pd.url, http_check("web", web.url), kinds="[maintenance]",
                          top=top)
    with Watchdog(config, env=ENV) as proc:
        proc.wait_started()
        pd.wait_for(lambda: pd.change_events, timeout=10)
        restart(proc)
        restart(proc)
        text = config.read_text().replace(top, "")
        reload(proc, config, text, 1)  # the window is gone: it ended
        pd.wait_for(lambda: len(pd.change_events) >= 2, timeout=10)
        stop_drained(proc)
    assert [p["custom_details"]["state"] for p in payloads(pd)] == ["started", "ended"]
    assert payloads(pd)[0]["custom_details"]["checks"] == ["web"]


def test_a_silence_from_the_command_line_is_announced_when_it_starts_and_is_removed(
        tmp_path, pd, web):
    config = write_config(tmp_path, pd.url, http_check("web", web.url), kinds="[silence]")
    with Watchdog(config, env=ENV) as proc:
        proc.wait_started()
        done = pdw("silence", str(config), "web", "--for", "1h", "--reason", "deploy 42",
                   env=CLI_ENV)
        assert done.returncode == 0, done.stderr
        silence_id = done.stdout.strip()
        pd.wait_for(lambda: pd.change_events, timeout=10)
        restart(proc)  # still active after the restart: not announced again
        assert pdw("unsilence", str(config), silence_id, env=CLI_ENV).returncode == 0
        pd.wait_for(lambda: len(pd.change_events) >= 2, timeout=10)
        stop_drained(proc)
    started, removed = payloads(pd)
    details = started["custom_details"]
    assert started["summary"].startswith(f"silence {silence_id} started by ")
    assert started["summary"].endswith(": deploy 42")
    assert details["matchers"] == ["web"] and details["checks"] == ["web"]
    assert details["reason"] == "deploy 42" and details["created_by"]
    until = dt.datetime.fromisoformat(details["until"]).timestamp()
    assert until == pytest.approx(time.time() + 3600, abs=120)
    assert removed["summary"] == (f"silence {silence_id} removed (web): held pages of checks "
                                  "still failing go out now")
    assert removed["custom_details"]["state"] == "removed"


def test_change_events_are_off_unless_configured(tmp_path, pd, web):
    now = time.time()
    config = write_config(tmp_path, pd.url, http_check("web", web.url), kinds=None,
                          top=window("m", "web", now - 1, now + 3600))
    with Watchdog(config, env=ENV) as proc:
        proc.wait_started()
        proc.wait_log("maintenance m started")
        done = pdw("silence", str(config), "web", "--for", "1h", "--reason", "x", env=CLI_ENV)
        assert done.returncode == 0, done.stderr
        proc.wait_log(f"silence {done.stdout.strip()} started")
        reload(proc, config, config.read_text() + http_check("db", web.url), 1)
        stop_drained(proc)
    assert pd.change_events == [] and pd.requests == []


def test_a_refused_change_event_is_a_dead_letter_and_later_triggers_still_go(tmp_path, pd, web):
    checks = http_check("web", web.url)
    config = write_config(tmp_path, pd.url, checks, kinds="[reload]")
    pd.fail_next(1, 400, path=CHANGE_PATH)
    with Watchdog(config, env=ENV) as proc:
        proc.wait_started()
        reload(proc, config, config.read_text() + http_check("db", web.url), 1)
        proc.wait_log("dead letter change pd-watchdog/change-events")
        web.up = False
        pd.wait_for(lambda: len(pd.events) == 2, timeout=10)  # web's and db's triggers
        reload(proc, config, config.read_text().replace("  - name: db", "  - name: db2"), 2)
        pd.wait_for(lambda: pd.change_events, timeout=10)
        done = pdw("outbox", str(config), "--json", env=CLI_ENV)
        assert done.returncode == 0, done.stderr
        [dead] = json.loads(done.stdout)["dead_letters"]
        assert dead["action"] == "change" and "Injected failure" in dead["reason"]
        done = pdw("outbox", str(config), "--retry", "all", env=CLI_ENV)
        assert done.returncode == 0, done.stderr
        pd.wait_for(lambda: len(pd.change_events) == 2, timeout=10)  # sent again, as asked
        stop_drained(proc)
    assert [summary for action, summary in received(pd) if action == "change"] == [
        "reload: 1 check added (db2); 1 check removed (db)", "reload: 1 check added (db)"]
