"""End to end, holding pages back: the real `pd-watchdog run`, the PagerDuty stand-in and
loopback targets, with a restart in the middle of each case.

Windows here are one-off (start/end a few seconds from now): cron windows run on whole
minutes, and their arithmetic is tested in test_holds.py.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import time
from pathlib import Path

import pytest

from procs import ROUTING_KEY, Target, Watchdog, pdw, wait_for

pytestmark = pytest.mark.timeout(120)

ENV = {"TEST_ROUTING_KEY": ROUTING_KEY}
CLI_ENV = {**os.environ, **ENV}


def key(name: str) -> str:
    return f"pd-watchdog/e2e-host/{name}"


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="milliseconds")


def write_config(tmp_path: Path, pd_url: str, checks: str, *, top: str = "",
                 fail_after: int = 2, recover_after: int = 2) -> Path:
    config = tmp_path / "watchdog.yaml"
    config.write_text(
        "pagerduty:\n"
        "  routing_key: ${TEST_ROUTING_KEY}\n"
        f"  url: {pd_url}\n"
        "  source: e2e-host\n"
        "state_dir: ./state\n"
        "defaults:\n"
        "  interval: 100ms\n"
        "  timeout: 1s\n"
        f"  fail_after: {fail_after}\n"
        f"  recover_after: {recover_after}\n"
        + top + "checks:\n" + checks
    )
    return config


def http_check(name: str, url: str, extra: str = "") -> str:
    return f'  - name: {name}\n    http: {{url: "{url}"}}\n{extra}'


def restart(proc: Watchdog) -> None:
    """SIGTERM, then start again on the same state (a restart in the middle)."""
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    proc.start()
    proc.wait_started()


def status(config: Path) -> dict:
    done = pdw("status", str(config), "--json", env=CLI_ENV)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def row(config: Path, name: str) -> dict:
    return next(r for r in status(config)["checks"] if r["name"] == name)


def test_a_window_holds_the_page_and_it_goes_out_once_when_the_window_ends(tmp_path, pd, web):
    end = time.time() + 12  # room for a restart on a busy machine
    top = (f"maintenance:\n  - name: db-move\n    checks: [web]\n"
           f"    start: \"{iso(time.time() - 1)}\"\n    end: \"{iso(end)}\"\n")
    config = write_config(tmp_path, pd.url, http_check("web", web.url), top=top)
    with Watchdog(config, env=ENV) as proc:
        proc.wait_started()
        web.up = False
        proc.wait_log("check web: trigger held: maintenance db-move until")
        held = row(config, "web")
        assert held["held"][0].startswith("maintenance db-move until")
        assert held["state"].startswith("held (failing")
        restart(proc)  # in the middle of the window: the owed trigger is remembered
        assert time.time() < end and pd.events == []
        pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger"],
                    timeout=end - time.time() + 5)
        assert time.time() >= end  # not a moment before the window ended
        proc.wait_log("check web: hold over; trigger released")
        web.up = True
        pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger", "resolve"], timeout=10)
        assert proc.stop() == 0
    assert pd.actions_for(key("web")) == ["trigger", "resolve"]


def test_a_check_that_recovers_inside_the_window_sends_nothing_at_all(tmp_path, pd, web):
    end = time.time() + 12  # room for a restart on a busy machine
    top = (f"maintenance:\n  - name: m\n    checks: [w*]\n"
           f"    start: \"{iso(time.time() - 1)}\"\n    end: \"{iso(end)}\"\n")
    config = write_config(tmp_path, pd.url, http_check("web", web.url), top=top)
    with Watchdog(config, env=ENV) as proc:
        proc.wait_started()
        web.up = False
        proc.wait_log("check web: trigger held")
        restart(proc)
        assert time.time() < end
        web.up = True
        proc.wait_log("its held trigger is no longer owed")
        proc.wait_log("maintenance m ended", timeout=end - time.time() + 10)
        hits = web.hits
        wait_for(lambda: web.hits >= hits + 10, what="probes after the window")
        assert proc.stop() == 0
    assert pd.events == []


def test_a_resolve_is_never_held_by_a_window(tmp_path, pd, web):
    config = write_config(tmp_path, pd.url, http_check("web", web.url))
    with Watchdog(config, env=ENV) as proc:
        proc.wait_started()
        web.up = False
        pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger"], timeout=10)
        assert proc.stop() == 0
    top = (f"maintenance:\n  - name: m\n    checks: [web]\n"
           f"    start: \"{iso(time.time() - 1)}\"\n    duration: 1h\n")
    config = write_config(tmp_path, pd.url, http_check("web", web.url), top=top)
    with Watchdog(config, env=ENV) as proc:
        proc.wait_started()
        web.up = True
        pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger", "resolve"], timeout=10)
        assert proc.stop() == 0


def test_a_silence_from_the_command_line_holds_a_live_runners_page(tmp_path, pd, web):
    config = write_config(tmp_path, pd.url, http_check("web", web.url))
    with Watchdog(config, env=ENV) as proc:
        proc.wait_started()
        done = pdw("silence", str(config), "web", "--for", "1h", "--reason", "deploy",
                   env=CLI_ENV)
        assert done.returncode == 0, done.stderr
        silence_id = done.stdout.strip()
        proc.wait_log(f"silence {silence_id} started", timeout=2.5)  # within 2 s, no reload
        web.up = False
        proc.wait_log("check web: trigger held: silenced by")
        restart(proc)
        assert row(config, "web")["held"][0].startswith(f"silenced by {silence_id}: deploy")
        hits = web.hits
        wait_for(lambda: web.hits >= hits + 10, what="probes while silenced")
        assert pd.events == []
        assert pdw("unsilence", str(config), silence_id, env=CLI_ENV).returncode == 0
        pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger"], timeout=5)
        web.up = True
        pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger", "resolve"], timeout=10)
        assert proc.stop() == 0


def test_a_parent_going_down_with_ten_children_pages_once_and_lists_them(tmp_path, pd, web):
    children = [f"app-{n}" for n in range(10)]
    checks = http_check("uplink", web.url) + "".join(
        http_check(child, web.url, "    depends_on: [uplink]\n") for child in children)
    config = write_config(tmp_path, pd.url, checks)
    with Watchdog(config, env=ENV) as proc:
        proc.wait_started()
        web.up = False
        pd.wait_for(lambda: pd.actions_for(key("uplink")) == ["trigger"], timeout=10)
        wait_for(lambda: all(r["failures"] >= 3 for r in status(config)["checks"]),
                 what="every child failing")
        restart(proc)
        hits = web.hits
        wait_for(lambda: web.hits >= hits + 50, what="probes while the parent is down")
        held = row(config, "app-3")
        assert held["held"] == ["parent uplink failing"]
        web.up = True
        pd.wait_for(lambda: pd.actions_for(key("uplink")) == ["trigger", "resolve"], timeout=10)
        hits = web.hits
        wait_for(lambda: web.hits >= hits + 50, what="probes after recovery")
        assert proc.stop() == 0
    # The outage, up to the parent's resolve, is the parent's page alone. (After that a
    # child that fails on its own pages, rightly: on a busy machine the shared target can
    # be slow enough to time out.)
    sent = [(event["body"]["dedup_key"], event["body"]["event_action"]) for event in pd.events]
    assert sent[:sent.index((key("uplink"), "resolve")) + 1] == [
        (key("uplink"), "trigger"), (key("uplink"), "resolve")]
    details = pd.events[0]["body"]["payload"]["custom_details"]
    assert set(details["dependents_failing"]) <= set(children)
    assert len(details["dependents_failing"]) >= 5


def test_a_child_about_to_page_probes_its_parent_first(tmp_path, pd, web):
    """The child fails at once; its parent (another target, every hour, its first run spread
    over that hour) is not due: the child's page waits for a fresh parent result."""
    parent = Target()
    try:
        checks = (http_check("uplink", parent.url, "    interval: 1h\n")
                  + http_check("app", web.url, "    depends_on: [uplink]\n"))
        config = write_config(tmp_path, pd.url, checks)
        with Watchdog(config, env=ENV) as proc:
            proc.wait_started()
            hits = parent.hits
            web.up = False
            pd.wait_for(lambda: pd.actions_for(key("app")) == ["trigger"], timeout=10)
            assert parent.hits > hits  # probed out of turn, before the child paged
            assert "checking parents first: uplink" in proc.log()
            assert proc.stop() == 0
    finally:
        parent.close()


class Flapper(Target):
    """Answers up, down, up, down... while `flapping`."""

    def __init__(self) -> None:
        self.flapping = False
        self._up = True
        super().__init__()

    @property
    def up(self) -> bool:
        if self.flapping:
            self._up = not self._up
        return self._up

    @up.setter
    def up(self, value: bool) -> None:
        self._up = value


def test_a_flapping_target_opens_one_incident_and_resolves_it_once(tmp_path, pd):
    """Up, down, up, down: never two failures in a row, so only flap detection pages (the
    normal rules never would), once, and resolves once when it settles. (With fail_after 1
    the first flips page by the normal rules before the history shows flapping, as in
    Nagios: flap detection needs a few results.)"""
    fail_after = 2
    target = Flapper()
    try:
        checks = http_check("web", target.url,
                            "    flapping: {window: 10, high: 50%, low: 25%}\n")
        config = write_config(tmp_path, pd.url, checks, fail_after=fail_after,
                              recover_after=fail_after)
        with Watchdog(config, env=ENV) as proc:
            proc.wait_started()
            target.flapping = True
            pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger"], timeout=10)
            summary = pd.events[0]["body"]["payload"]["summary"]
            assert summary.startswith("web: flapping: ") and "state changes in the last" \
                in summary
            wait_for(lambda: target.hits >= 40, timeout=20, what="flips")
            restart(proc)
            hits = target.hits
            wait_for(lambda: target.hits >= hits + 30, timeout=20, what="flips after restart")
            assert row(config, "web")["flapping"]
            assert pd.actions_for(key("web")) == ["trigger"]
            target.flapping, target.up = False, True
            pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger", "resolve"],
                        timeout=15)
            hits = target.hits
            wait_for(lambda: target.hits >= hits + 10, what="probes after it settled")
            assert proc.stop() == 0
        assert pd.actions_for(key("web")) == ["trigger", "resolve"]
    finally:
        target.close()


def test_when_the_parent_recovers_a_child_still_failing_pages(tmp_path, pd, web):
    parent = Target()
    try:
        checks = (http_check("uplink", parent.url)
                  + http_check("app", web.url, "    depends_on: uplink\n"))
        config = write_config(tmp_path, pd.url, checks)
        with Watchdog(config, env=ENV) as proc:
            proc.wait_started()
            parent.up = web.up = False
            pd.wait_for(lambda: pd.actions_for(key("uplink")) == ["trigger"], timeout=10)
            # held either way: "parent uplink failing", or "checking parents first: uplink"
            # when the app crossed fail_after before the uplink's failure was recorded (the
            # log says a hold when it begins, not when its reason changes)
            proc.wait_log("check app: trigger held: ", timeout=30)
            parent.up = True  # the uplink is back; the app is still down
            pd.wait_for(lambda: pd.actions_for(key("uplink")) == ["trigger", "resolve"],
                        timeout=10)
            pd.wait_for(lambda: pd.actions_for(key("app")) == ["trigger"], timeout=10)
            assert proc.stop() == 0
    finally:
        parent.close()


def test_a_window_added_by_a_reload_holds_at_once(tmp_path, pd, web):
    config = write_config(tmp_path, pd.url, http_check("web", web.url))
    with Watchdog(config, env=ENV) as proc:
        proc.wait_started()
        top = (f"maintenance:\n  - name: added\n    checks: [web]\n"
               f"    start: \"{iso(time.time() - 1)}\"\n    duration: 1h\n")
        write_config(tmp_path, pd.url, http_check("web", web.url), top=top)
        proc.signal(signal.SIGHUP)
        proc.wait_log("maintenance added started")
        web.up = False
        proc.wait_log("check web: trigger held: maintenance added")
        hits = web.hits
        wait_for(lambda: web.hits >= hits + 10, what="probes in the window")
        assert pd.events == []
        assert proc.stop() == 0
