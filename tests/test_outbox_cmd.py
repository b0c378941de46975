"""`pd-watchdog outbox`: dead letters can be seen, retried and dropped beside a live runner."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fakepd import FakePagerDuty
from procs import ROUTING_KEY, Target, Watchdog, pdw, wait_for

pytestmark = pytest.mark.timeout(120)

ENV = {**os.environ, "TEST_ROUTING_KEY": ROUTING_KEY}
KEY = "pd-watchdog/e2e-host/web"


def write_config(tmp_path: Path, pd: FakePagerDuty, web: Target) -> Path:
    config = tmp_path / "watchdog.yaml"
    config.write_text(
        "pagerduty:\n"
        "  routing_key: ${TEST_ROUTING_KEY}\n"
        f"  url: {pd.url}\n"
        "  source: e2e-host\n"
        "state_dir: ./state\n"
        "defaults: {interval: 100ms, timeout: 1s, fail_after: 2, recover_after: 2}\n"
        "checks:\n"
        f'  - name: web\n    http: {{url: "{web.url}"}}\n'
    )
    return config


def outbox(config: Path, *args: str):
    return pdw("outbox", str(config), *args, env=ENV)


def dead_letters(config: Path) -> list[dict]:
    done = outbox(config, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["dead_letters"]


@pytest.fixture
def refused(tmp_path, pd, web):
    """A running runner whose trigger PagerDuty refused (a key it does not know)."""
    pd.set_valid_keys(["f" * 32])
    config = write_config(tmp_path, pd, web)
    with Watchdog(config, env={"TEST_ROUTING_KEY": ROUTING_KEY}) as proc:
        proc.wait_started()
        web.up = False
        proc.wait_log("dead letter trigger")
        yield config, proc


def test_a_refused_trigger_is_listed_readably_and_retried_in_place(refused, pd, web):
    config, proc = refused
    table = outbox(config)
    assert table.returncode == 0, table.stderr
    assert "dead letters: 1" in table.stdout and KEY in table.stdout
    assert "400" in table.stdout and "{'" not in table.stdout  # no raw Python dict
    assert ROUTING_KEY not in table.stdout
    (letter,) = dead_letters(config)
    assert letter["action"] == "trigger" and letter["incident_key"] == KEY
    status = pdw("status", str(config), env=ENV).stdout
    assert f"dead letter {letter['id']}: trigger {KEY}" in status

    pd.set_valid_keys(None)  # the key is fixed in PagerDuty
    done = outbox(config, "--retry", "all")
    assert done.returncode == 0 and "re-queued 1 dead letter;" in done.stdout
    pd.wait_for(lambda: pd.actions_for(KEY) == ["trigger"], timeout=15)
    assert dead_letters(config) == []
    web.up = True
    pd.wait_for(lambda: pd.actions_for(KEY) == ["trigger", "resolve"], timeout=15)
    assert proc.stop() == 0


def test_drop_needs_a_reason_and_logs_it(refused, pd, web):
    config, proc = refused
    refused = outbox(config, "--drop", "all")
    assert refused.returncode == 2 and "--reason" in refused.stderr
    (letter,) = dead_letters(config)
    done = outbox(config, "--drop", str(letter["id"]), "--reason", "wrong service key")
    assert done.returncode == 0 and "dropped 1 dead letter" in done.stdout
    assert f"dropped dead letter {letter['id']}" in done.stderr
    assert "wrong service key" in done.stderr
    assert dead_letters(config) == []
    assert proc.stop() == 0


def test_retry_skips_a_trigger_whose_check_recovered(refused, pd, web):
    config, proc = refused
    web.up = True
    wait_for(lambda: len(dead_letters(config)) == 2, what="the resolve refused too")
    pd.set_valid_keys(None)
    done = outbox(config, "--retry", "all")
    assert done.returncode == 0
    assert "skipped: its check is not failing any more" in done.stdout
    assert "re-queued 1 dead letter;" in done.stdout
    pd.wait_for(lambda: pd.actions_for(KEY) == ["resolve"], timeout=15)
    assert [d["action"] for d in dead_letters(config)] == ["trigger"]
    assert proc.stop() == 0
    assert pd.actions_for(KEY) == ["resolve"]  # no page that nothing would resolve


def test_bad_ids_and_missing_state_are_clear_errors(tmp_path, pd, web):
    config = write_config(tmp_path, pd, web)
    missing = outbox(config)
    assert missing.returncode == 1 and "no state yet" in missing.stderr
    assert "Traceback" not in missing.stderr
    with Watchdog(config, env={"TEST_ROUTING_KEY": ROUTING_KEY}) as proc:
        proc.wait_started()
        wait_for(lambda: outbox(config).returncode == 0, what="state to exist")
        for bad, words in (("x1", "not 'x1'"), ("99", "no dead letter with ID 99")):
            done = outbox(config, "--retry", bad)
            assert done.returncode == 1 and words in done.stderr and "Traceback" not in done.stderr
        assert proc.stop() == 0
