"""End to end with the real `pd-watchdog` process and the PagerDuty stand-in: what a page
carries (issue 15 part 1), and `pd-watchdog test-page` (part 2): accepted, refused with
400, a key of the wrong type, unreachable, the confirmation prompt, a check's own page."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from procs import ROOT, ROUTING_KEY, Watchdog, wait_for

pytestmark = pytest.mark.timeout(120)

FAILING = ("sh -c \"echo 'DISK CRITICAL - / is 97% full | used=97%;90;95;0;100'; "
           'echo oops >&2; exit 2"')


def write_config(tmp_path: Path, url: str, *, api: str = "v2", command: str = FAILING) -> Path:
    config = tmp_path / "watchdog.yaml"
    config.write_text(
        "pagerduty:\n"
        "  routing_key: ${TEST_ROUTING_KEY}\n"
        f"  api: {api}\n"
        f"  url: {url}\n"
        "  source: e2e-host.example.com\n"
        "state_dir: ./state\n"
        "defaults:\n"
        "  interval: 100ms\n"
        "  timeout: 2s\n"
        "  fail_after: 2\n"
        "  group: storage\n"
        "  runbook: https://wiki.example.com/runbooks/{name}\n"
        "checks:\n"
        "  - name: disk-root\n"
        f"    command: {json.dumps(command)}\n"
        "    component: \"/ on {host}\"\n"
        "    class: disk\n"
        "    details: {team: infra}\n"
        "    links:\n"
        "      - {href: \"https://grafana.example.com/d/disk?var-host={source}\", "
        "text: Disk dashboard}\n"
        "    images:\n"
        "      - {src: \"https://grafana.example.com/render/d/disk.png\", alt: Disk usage}\n"
    )
    return config


ENV = {"TEST_ROUTING_KEY": ROUTING_KEY}


def test_a_failing_check_pages_with_everything_on_call_needs(tmp_path, pd):
    import socket

    config = write_config(tmp_path, pd.url)
    with Watchdog(config, env=ENV) as dog:
        dog.wait_started()
        pd.wait_for(lambda: pd.events, timeout=15)
    body = pd.events[0]["body"]
    print(json.dumps(body, indent=2))  # docs/configuration.md "What a page carries" shows one
    payload = body["payload"]
    assert body["dedup_key"] == "pd-watchdog/e2e-host.example.com/disk-root"
    assert payload["summary"] == "disk-root: DISK CRITICAL - / is 97% full"
    assert payload["source"] == "e2e-host.example.com"
    assert payload["component"] == f"/ on {socket.gethostname()}"
    assert (payload["group"], payload["class"]) == ("storage", "disk")
    assert body["links"] == [
        {"href": "https://wiki.example.com/runbooks/disk-root", "text": "Runbook"},
        {"href": "https://grafana.example.com/d/disk?var-host=e2e-host.example.com",
         "text": "Disk dashboard"}]
    assert body["images"] == [{"src": "https://grafana.example.com/render/d/disk.png",
                               "alt": "Disk usage"}]
    details = payload["custom_details"]
    assert details["exit_code"] == 2 and details["state"] == "CRITICAL"
    assert details["output"].startswith("DISK CRITICAL - / is 97% full")
    assert details["perfdata"] and details["stderr"] == "oops\n"
    assert details["team"] == "infra"
    assert details["failing_since"].endswith("Z") and details["failing_results"] == 2
    assert details["origin"] == f"{config}:14"
    assert (details["interval"], details["fail_after"]) == ("100ms", 2)
    assert [r["ok"] for r in details["recent_results"]] == [False, False]
    assert details["recent_results"][0]["summary"] == "DISK CRITICAL - / is 97% full"


def test_failing_since_and_the_count_survive_a_restart(tmp_path, pd):
    import datetime as dt

    config = write_config(tmp_path, pd.url)
    config.write_text(config.read_text().replace("fail_after: 2", "fail_after: 30"))
    dog = Watchdog(config, env=ENV)
    try:
        dog.start()
        dog.wait_log("failing 3/30", timeout=20)
        dog.stop()
        assert pd.events == []  # the first run did not page: the second one will
        stopped = time.time()
        # Times on a page are to the second: start again in a later one than any of run 1's.
        wait_for(lambda: time.time() >= int(stopped) + 1, timeout=3, what="the next second")
        restarted = time.time()
        dog.start()
        dog.wait_started()
        pd.wait_for(lambda: pd.events, timeout=20)
    finally:
        dog.stop()
    details = pd.events[0]["body"]["payload"]["custom_details"]
    since = dt.datetime.fromisoformat(details["failing_since"].replace("Z", "+00:00"))
    assert since.timestamp() < int(restarted)  # from the first run, kept in the state file
    assert details["failing_results"] == 30
    assert details["recent_results"][-1]["summary"] == "DISK CRITICAL - / is 97% full"


def test_a_v1_page_carries_links_and_images_as_contexts(tmp_path, pd):
    config = write_config(tmp_path, pd.url, api="v1")
    with Watchdog(config, env=ENV) as dog:
        dog.wait_started()
        pd.wait_for(lambda: pd.events, timeout=15)
    body = pd.events[0]["body"]
    assert body["contexts"][0] == {"type": "link", "text": "Runbook",
                                   "href": "https://wiki.example.com/runbooks/disk-root"}
    assert body["contexts"][2]["type"] == "image"
    assert (body["details"]["group"], body["details"]["class"]) == ("storage", "disk")
    assert body["details"]["failing_results"] == 2


# ------------------------------------------------------------------ test-page


def send_test_page(config: Path, *args: str, answer: str | None = None
              ) -> subprocess.CompletedProcess:
    """`pd-watchdog test-page CONFIG ARGS`, stdin `answer` (a pipe, not a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "watchdog", "test-page", str(config), *args],
        cwd=config.parent, input=answer or "", capture_output=True, text=True, timeout=60,
        env={**os.environ, **ENV})


def test_test_page_is_accepted_then_resolved(tmp_path, pd):
    config = write_config(tmp_path, pd.url)
    done = send_test_page(config, "--yes", "--resolve-after", "200ms")
    assert done.returncode == 0, done.stderr
    (trigger, resolve) = pd.events
    key = trigger["key"]
    assert key.startswith("pd-watchdog-test-page-")
    assert resolve["action"] == "resolve" and resolve["key"] == key
    assert pd.incidents[0]["resolved_at"] is not None
    out = done.stdout
    assert f"trigger: PagerDuty answered HTTP 202: success, Event processed (key {key})" in out
    assert "resolving it in 200ms" in out
    assert f"resolve: PagerDuty answered HTTP 202: success, Event processed (key {key})" in out
    assert not (tmp_path / "state").exists()  # no store opened


def test_test_page_refused_with_400_exits_1_with_the_errors(tmp_path, pd):
    pd.fail_next(1, 400)
    done = send_test_page(write_config(tmp_path, pd.url), "--yes", "--resolve-after", "0")
    assert done.returncode == 1
    assert "trigger: refused (HTTP 400): PagerDuty does not take this event" in done.stdout
    assert "  error: Injected failure (fail_next)" in done.stdout
    assert pd.events == [] and len(pd.requests) == 1  # no resolve after a refused trigger


@pytest.mark.parametrize(("api", "says"), [
    ("v2", "routing key …cdef is not an Events API v2 integration key PagerDuty knows; if it "
           "is a Generic API (v1) service key, set pagerduty.api: v1"),
    ("v1", "service key …cdef is not a Generic API (v1) integration key PagerDuty knows; if "
           "it is an Events API v2 routing key, set pagerduty.api: v2"),
])
def test_test_page_with_a_key_of_the_other_type_says_which(tmp_path, pd, api, says):
    pd.set_key_types({ROUTING_KEY: "v1" if api == "v2" else "v2"})
    done = send_test_page(write_config(tmp_path, pd.url, api=api), "--yes", "--resolve-after", "0")
    assert done.returncode == 1
    assert says in done.stdout
    field = "routing key" if api == "v2" else "service key"
    assert f"  error: Invalid {field}" in done.stdout
    assert ROUTING_KEY not in done.stdout + done.stderr  # the key itself is never shown


def test_test_page_unreachable_or_throttled_exits_1_saying_so(tmp_path, pd):
    config = write_config(tmp_path, "http://127.0.0.1:9")  # the discard port: refused
    done = send_test_page(config, "--yes", "--resolve-after", "0")
    assert done.returncode == 1 and "PagerDuty cannot be reached" in done.stdout
    pd.fail_next(1, 429)
    done = send_test_page(write_config(tmp_path, pd.url), "--yes", "--resolve-after", "0")
    assert done.returncode == 1 and "trigger: failed: HTTP 429: throttled" in done.stdout


def test_test_page_asks_first_and_sends_nothing_unless_told_yes(tmp_path, pd):
    config = write_config(tmp_path, pd.url)
    done = send_test_page(config, "--resolve-after", "0", answer="n\n")
    assert done.returncode == 1
    assert (f"Send a test page to {pd.url} (api v2) with key …cdef? [y/N] "
            in done.stdout) and "not sent" in done.stdout
    assert pd.requests == []
    done = send_test_page(config, "--resolve-after", "0", answer="y\n")
    assert done.returncode == 0 and [e["action"] for e in pd.events] == ["trigger", "resolve"]


def test_test_page_name_sends_the_checks_own_page_and_leaves_the_state_alone(tmp_path, pd):
    config = write_config(tmp_path, pd.url)
    with Watchdog(config, env=ENV) as dog:  # a state file with this check in it
        dog.wait_started()
        pd.wait_for(lambda: pd.events, timeout=15)
    pd.reset()
    state = tmp_path / "state"
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in state.iterdir()}
    done = send_test_page(config, "disk-root", "--yes", "--resolve-after", "0")
    assert done.returncode == 0, done.stderr
    assert "disk-root: failing now: DISK CRITICAL - / is 97% full" in done.stdout
    trigger = pd.events[0]["body"]
    assert trigger["dedup_key"] == "pd-watchdog/e2e-host.example.com/disk-root-test"
    assert trigger["payload"]["summary"] == "[test page] disk-root: DISK CRITICAL - / is 97% full"
    assert trigger["payload"]["component"].startswith("/ on ")
    assert trigger["links"][0]["text"] == "Runbook"
    details = trigger["payload"]["custom_details"]
    assert details["exit_code"] == 2 and details["origin"] == f"{config}:14"
    assert details["test_page"].startswith("sent by pd-watchdog test-page")
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in state.iterdir()}
    assert after == before


def test_test_page_name_of_a_passing_check_says_so_and_still_sends(tmp_path, pd):
    config = write_config(tmp_path, pd.url, command="echo 'DISK OK - / is 12% full'")
    done = send_test_page(config, "disk-root", "--yes", "--resolve-after", "0")
    assert done.returncode == 0, done.stderr
    assert "disk-root: passing now; this is what its page looks like" in done.stdout
    assert pd.events[0]["body"]["payload"]["severity"] == "critical"


def test_test_page_unknown_name_exits_2_with_a_did_you_mean(tmp_path, pd):
    done = send_test_page(write_config(tmp_path, pd.url), "disk-rot", "--yes")
    assert done.returncode == 2
    assert "no such check: 'disk-rot' — did you mean 'disk-root'?" in done.stderr
    assert pd.requests == []


def test_test_page_is_listed_in_the_help():
    done = subprocess.run([sys.executable, "-m", "watchdog", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert "test-page" in done.stdout
