"""End to end: the real `pd-watchdog run` process, a fake PagerDuty and loopback targets.

These are the promises an operator relies on, shown with real processes and real signals:
one trigger and one resolve per outage, nothing lost across kill -9, PagerDuty outages and
reloads, and no second incident for the same failure.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from procs import ROUTING_KEY, Target, Watchdog, pdw, wait_for

pytestmark = pytest.mark.timeout(180)


def write_config(
    tmp_path: Path,
    pd_url: str,
    targets: dict[str, str],
    *,
    api: str = "v2",
    fail_after: int = 2,
    recover_after: int = 2,
    interval: str = "100ms",
    extra_checks: str = "",
) -> Path:
    checks = "".join(
        f'  - name: {name}\n    http: {{url: "{url}"}}\n' for name, url in targets.items()
    )
    config = tmp_path / "watchdog.yaml"
    config.write_text(
        "pagerduty:\n"
        f"  routing_key: ${{TEST_ROUTING_KEY}}\n"
        f"  api: {api}\n"
        f"  url: {pd_url}\n"
        "  source: e2e-host\n"
        "state_dir: ./state\n"
        "defaults:\n"
        f"  interval: {interval}\n"
        "  timeout: 1s\n"
        f"  fail_after: {fail_after}\n"
        f"  recover_after: {recover_after}\n"
        "checks:\n" + checks + extra_checks
    )
    return config


@pytest.fixture
def targets():
    made: list[Target] = []

    def make() -> Target:
        made.append(Target())
        return made[-1]

    yield make
    for target in made:
        target.close()


ENV = {"TEST_ROUTING_KEY": ROUTING_KEY}


def key(name: str) -> str:
    return f"pd-watchdog/e2e-host/{name}"


@pytest.mark.parametrize("api", ["v2", "v1"])
def test_outage_pages_once_and_resolves_once_with_the_same_key(tmp_path, pd, targets, api):
    web = targets()
    config = write_config(tmp_path, pd.url, {"web": web.url}, api=api)
    with Watchdog(config, env=ENV) as proc:
        wait_for(lambda: web.hits >= 3, what="first probes")
        web.up = False
        pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger"], timeout=10)
        hits = web.hits
        wait_for(lambda: web.hits >= hits + 5, what="more probes while down")
        web.up = True
        pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger", "resolve"], timeout=10)
        hits = web.hits
        wait_for(lambda: web.hits >= hits + 5, what="more probes after recovery")
        assert proc.stop() == 0
    assert pd.actions_for(key("web")) == ["trigger", "resolve"]
    [incident] = pd.incidents
    assert incident["key"] == key("web") and incident["resolved_at"] is not None
    trigger = pd.events[0]["body"]
    if api == "v2":
        assert trigger["payload"]["summary"].startswith("web: status 503")
        assert trigger["payload"]["source"] == "e2e-host"
        assert trigger["payload"]["severity"] == "critical"
        assert trigger["payload"]["custom_details"]["status_code"] == 503
    else:
        assert trigger["description"].startswith("web: status 503")
    log = proc.log()
    assert "ok -> failing 1/2" in log and "queued trigger" in log and "queued resolve" in log


def test_getting_worse_is_a_warning_getting_better_is_info(tmp_path, pd, targets):
    web = targets()
    config = write_config(tmp_path, pd.url, {"web": web.url})
    with Watchdog(config, env=ENV) as proc:
        proc.wait_started()
        web.up = False
        pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger"], timeout=10)
        web.up = True
        pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger", "resolve"], timeout=10)
        assert proc.stop() == 0
    levels = {}
    for line in proc.log().splitlines():
        for what in ("-> failing", "-> triggered", "queued trigger", "-> recovering", "-> ok",
                     "queued resolve"):
            if what in line:
                levels[what] = line.split()[2]
    assert levels == {"-> failing": "WARNING", "-> triggered": "WARNING",
                      "queued trigger": "WARNING", "-> recovering": "INFO", "-> ok": "INFO",
                      "queued resolve": "INFO"}


def test_restart_keeps_a_triggered_check_triggered_and_resolves_it_later(tmp_path, pd, targets):
    web = targets()
    config = write_config(tmp_path, pd.url, {"web": web.url})
    web.up = False
    proc = Watchdog(config, env=ENV)
    with proc:
        pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger"], timeout=10)
        assert proc.stop() == 0
    with proc:
        proc.wait_log("=== start 2")
        hits = web.hits
        wait_for(lambda: web.hits >= hits + 5, what="probes after restart")
        assert pd.actions_for(key("web")) == ["trigger"]  # still failing: no second page
        web.up = True
        pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger", "resolve"], timeout=10)
        assert proc.stop() == 0
    assert len(pd.incidents) == 1


def test_a_second_runner_on_the_same_state_dir_refuses_to_start(tmp_path, pd, targets):
    config = write_config(tmp_path, pd.url, {"web": targets().url})
    with Watchdog(config, env=ENV) as first:
        first.wait_log("started:")
        second = subprocess.run(
            [sys.executable, "-m", "watchdog", "run", str(config)],
            cwd=tmp_path,
            env={**first.env},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode != 0
        assert "another pd-watchdog run" in second.stderr
        assert "Traceback" not in second.stderr
        assert first.proc.poll() is None
        assert first.stop() == 0


def test_pagerduty_outage_delays_but_never_loses_trigger_and_resolve(tmp_path, pd, targets):
    web = targets()
    config = write_config(tmp_path, pd.url, {"web": web.url})
    with Watchdog(config, env=ENV) as proc:
        wait_for(lambda: web.hits >= 3, what="first probes")
        pd.set_mode("500")
        web.up = False
        wait_for(lambda: len(pd.requests) >= 2, timeout=15, what="trigger attempts during 500s")
        pd.set_mode("429", retry_after=0.2)
        wait_for(
            lambda: any(r["status"] == 429 for r in pd.requests), timeout=15, what="a 429 answer"
        )
        pd.set_mode("hang")
        web.up = True
        proc.wait_log("queued resolve", timeout=10)
        hits = web.hits
        # Probes keep running on time while PagerDuty hangs: 100 ms interval, 1 s window.
        wait_for(lambda: web.hits >= hits + 8, timeout=5, what="probes during the outage")
        assert pd.events == []
        pd.set_mode("ok")
        pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger", "resolve"], timeout=40)
        assert proc.stop() == 0
    assert "retry" in proc.log().lower()


def test_sighup_with_broken_yaml_keeps_the_old_checks_running(tmp_path, pd, targets):
    web = targets()
    config = write_config(tmp_path, pd.url, {"web": web.url})
    good = config.read_text()
    with Watchdog(config, env=ENV) as proc:
        proc.wait_log("started:")
        config.write_text(good + "  - name: broken\n    htp: {}\n")
        proc.signal(signal.SIGHUP)
        proc.wait_log("reload rejected")
        hits = web.hits
        wait_for(lambda: web.hits >= hits + 5, what="old check still probing")
        web.up = False
        pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger"], timeout=10)
        assert proc.stop() == 0
    assert "watchdog.yaml:" in proc.log()  # the rejected file's errors are logged with file:line


def test_sighup_resolves_a_check_removed_while_triggered(tmp_path, pd, targets):
    web, api = targets(), targets()
    config = write_config(tmp_path, pd.url, {"web": web.url, "api": api.url})
    with Watchdog(config, env=ENV) as proc:
        proc.wait_log("started:")
        web.up = False
        pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger"], timeout=10)
        write_config(tmp_path, pd.url, {"api": api.url})
        proc.signal(signal.SIGHUP)
        pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger", "resolve"], timeout=10)
        proc.wait_log("removed while triggered")
        assert proc.stop() == 0
    assert pd.open_incidents() == {}


def test_status_reads_a_live_runner_without_blocking_it(tmp_path, pd, targets):
    web = targets()
    config = write_config(tmp_path, pd.url, {"web": web.url})
    with Watchdog(config, env=ENV) as proc:
        web.up = False
        pd.wait_for(lambda: pd.actions_for(key("web")) == ["trigger"], timeout=10)
        out = pdw("status", str(config), "--json", cwd=tmp_path, env=proc.env)
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        [row] = data["checks"]
        assert row["name"] == "web" and row["triggered"] is True
        assert row["incident_key"] == key("web")
        assert row["last_result"]["ok"] is False
        assert ROUTING_KEY not in out.stdout
        table = pdw("status", str(config), cwd=tmp_path, env=proc.env)
        assert table.returncode == 0 and "triggered" in table.stdout
        assert proc.stop() == 0


def test_kill_9_at_random_moments_loses_and_duplicates_nothing(tmp_path, pd, targets):
    """Three targets go down and up in phases; the runner is killed 24 times meanwhile."""
    rng = random.Random(20261126)
    names = ["a", "b", "c"]
    servers = {name: targets() for name in names}
    config = write_config(tmp_path, pd.url, {n: s.url for n, s in servers.items()})
    # Each phase: every target's health for the phase. Runs of "down" are incidents.
    phases = [{name: rng.random() < 0.5 for name in names} for _ in range(12)]
    phases.append({name: True for name in names})
    proc = Watchdog(config, env=ENV)
    kills = 0
    try:
        proc.start()
        proc.wait_log("started:")
        for phase in phases:
            for name, up in phase.items():
                servers[name].up = up
            started = time.monotonic()
            for _ in range(2):
                time.sleep(rng.uniform(0.05, 0.4))
                proc.kill9()
                kills += 1
                proc.start()
            # The second half of each phase runs undisturbed: long enough to act on it.
            proc.wait_started()
            remaining = 2.2 - (time.monotonic() - started)
            time.sleep(max(1.2, remaining))
        for name in names:
            pd.wait_for(lambda n=name: key(n) not in pd.open_incidents(), timeout=20)
        assert proc.stop() == 0
    finally:
        if proc.proc and proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait(5)
    assert kills >= 20
    history = {name: [phase[name] for phase in phases] for name in names}
    for name in names:
        expected = sum(
            1 for i, up in enumerate(history[name]) if not up and (i == 0 or history[name][i - 1])
        )
        bodies = [e for e in pd.events if e["key"] == key(name)]
        # Resends of the very same event are allowed (at-least-once); collapse them.
        distinct = [e for i, e in enumerate(bodies) if i == 0 or e["body"] != bodies[i - 1]["body"]]
        actions = [e["action"] for e in distinct]
        assert actions == ["trigger", "resolve"] * expected, (name, history[name], actions)
        incidents = [i for i in pd.incidents if i["key"] == key(name)]
        assert len(incidents) == expected
        assert all(i["resolved_at"] is not None for i in incidents)


def test_sigterm_exits_zero_and_keeps_unsent_events_for_the_next_start(tmp_path, pd, targets):
    web = targets()
    config = write_config(tmp_path, pd.url, {"web": web.url})
    with Watchdog(config, env=ENV) as proc:
        pd.set_mode("hang")
        web.up = False
        proc.wait_log("queued trigger")
        wait_for(lambda: pd.hanging >= 1, what="the trigger hanging at PagerDuty")
        began = time.monotonic()
        assert proc.stop() == 0
        assert time.monotonic() - began < 15
    assert "events pending" in proc.log()
    pd.set_mode("ok")
    web.up = True
    with proc:
        pd.wait_for(lambda: pd.actions_for(key("web"))[:1] == ["trigger"], timeout=15)
        pd.wait_for(lambda: pd.actions_for(key("web"))[-1:] == ["resolve"], timeout=15)
        assert proc.stop() == 0


def test_dry_run_without_a_routing_key_logs_events_and_sends_nothing(tmp_path, targets):
    web = targets()
    config = tmp_path / "watchdog.yaml"
    config.write_text(
        "pagerduty: {routing_key: '${PAGERDUTY_ROUTING_KEY:-}'}\nstate_dir: ./state\n"
        "defaults: {interval: 100ms, fail_after: 1, recover_after: 1}\n"
        f"checks:\n  - name: web\n    http: {{url: '{web.url}'}}\n"
    )
    env = {"PAGERDUTY_ROUTING_KEY": ""}
    with Watchdog(config, env=env) as proc:
        proc.wait_log("dry-run")
        web.up = False
        proc.wait_log("would trigger")
        web.up = True
        proc.wait_log("would resolve")
        assert proc.stop() == 0
    assert proc.log().count("dry-run: no routing key") <= 1
