"""`pd-watchdog silence`, `silences`, `unsilence`: the commands, on a real state file."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from procs import pdw
from watchdog.store import Store

pytestmark = pytest.mark.timeout(120)

ENV = {**os.environ, "TZ": "UTC"}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "watchdog.yaml"
    path.write_text(
        "state_dir: ./state\n"
        "checks:\n"
        "  - {name: db-main, command: 'true'}\n"
        "  - {name: db-replica, command: 'true'}\n"
        "  - {name: web, command: 'true'}\n"
    )
    Store(str(tmp_path / "state")).close()  # as a first run leaves it
    return path


def run(*args: str):
    return pdw(*args, env=ENV)


def listed(config: Path, *extra: str) -> list[dict]:
    done = run("silences", str(config), "--json", *extra)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_silence_is_stored_listed_and_ended(config):
    done = run("silence", str(config), "db-*", "--for", "2h", "--reason", "replica rebuild")
    assert done.returncode == 0, done.stderr
    silence_id = done.stdout.strip()
    assert len(silence_id) == 8 and "silenced 2 checks until" in done.stderr
    [row] = listed(config)
    assert row["id"] == silence_id and row["checks"] == ["db-main", "db-replica"]
    assert row["reason"] == "replica rebuild" and row["active"]
    assert 7190 < row["until"] - time.time() <= 7200
    text = run("silences", str(config))
    assert silence_id in text.stdout and "db-*" in text.stdout and "2 checks" in text.stdout
    done = run("unsilence", str(config), silence_id)
    assert done.returncode == 0 and silence_id in done.stdout
    assert listed(config) == []
    [ended] = listed(config, "--all")
    assert ended["id"] == silence_id and not ended["active"]


def test_unsilence_all_and_an_unknown_id(config):
    for pattern in ("web", "db-main"):
        assert run("silence", str(config), pattern, "--for", "10m", "--reason", "x"
                   ).returncode == 0
    done = run("unsilence", str(config), "nosuchid")
    assert done.returncode == 1 and "no active silence 'nosuchid'" in done.stderr
    done = run("unsilence", str(config), "--all")
    assert done.returncode == 0 and done.stdout.startswith("ended 2 silences")
    assert listed(config) == []


def test_a_pattern_that_matches_no_check_is_refused_and_nothing_is_stored(config):
    done = run("silence", str(config), "web", "db-mian", "--for", "1h", "--reason", "x")
    assert done.returncode == 1
    assert "'db-mian' (did you mean 'db-main'?) matches no check" in done.stderr
    assert "nothing was silenced" in done.stderr and listed(config) == []


@pytest.mark.parametrize(("args", "message"), [
    (["--for", "8d"], "longer than 7 days"),
    (["--for", "soon"], "not a duration"),
    (["--until", "2001-01-01T00:00"], "in the past"),
    (["--until", "tomorrow"], "not an ISO 8601 time"),
])
def test_bad_lengths_say_what_to_write(config, args, message):
    done = run("silence", str(config), "web", *args, "--reason", "x")
    assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr
    assert listed(config) == []


def test_for_or_until_and_a_reason_are_required(config):
    done = run("silence", str(config), "web", "--reason", "x")
    assert done.returncode == 2 and "--for" in done.stderr
    done = run("silence", str(config), "web", "--for", "1h")
    assert done.returncode == 2 and "--reason" in done.stderr
    done = run("silence", str(config), "web", "--for", "1h", "--reason", "  ")
    assert done.returncode == 1 and "--reason must say why" in done.stderr


def test_until_beyond_seven_days_is_allowed(config):
    until = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() + 10 * 86400))
    done = run("silence", str(config), "web", "--until", until, "--reason", "long migration")
    assert done.returncode == 0, done.stderr
    [row] = listed(config)
    assert 9.9 * 86400 < row["until"] - time.time() < 10 * 86400


def test_without_any_state_yet_it_says_so(tmp_path):
    path = tmp_path / "watchdog.yaml"
    path.write_text("state_dir: ./state\nchecks:\n  - {name: web, command: 'true'}\n")
    done = run("silence", str(path), "web", "--for", "1h", "--reason", "x")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "state" in done.stderr
