"""A state file that cannot be written must never silence a page, nor look healthy.

Real faults on the real process: a full disk is a real tmpfs filled to the last byte, a
deleted state file is deleted, a read-only one chmod-ed; PagerDuty is the loopback stand-in.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import stat
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from fakepd import FakePagerDuty
from procs import ROUTING_KEY, Target, Watchdog, pdw, wait_for

pytestmark = pytest.mark.timeout(120)

ENV = {"TEST_ROUTING_KEY": ROUTING_KEY}
KEY = "pd-watchdog/e2e-host/web"


@pytest.fixture
def pinged():
    target = Target()  # the heartbeat's dead-man's-switch URL: counts pings in .hits
    yield target
    target.close()


@pytest.fixture
def small_fs(tmp_path: Path):
    """A real 1 MiB tmpfs, so "disk full" is the kernel's ENOSPC, not a mock."""
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs",
                           str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(fs: Path) -> Path:
    """Write a file until the file system says it is full."""
    filler = fs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    return filler


def write_config(tmp_path: Path, pd: FakePagerDuty, web: Target, state_dir: Path,
                 pinged: Target | None = None) -> Path:
    heartbeat = (f"heartbeat: {{url: \"{pinged.url}\", interval: 200ms, timeout: 1s}}\n"
                 if pinged else "")
    config = tmp_path / "watchdog.yaml"
    config.write_text(
        "pagerduty:\n"
        "  routing_key: ${TEST_ROUTING_KEY}\n"
        f"  url: {pd.url}\n"
        "  source: e2e-host\n"
        f"state_dir: {state_dir}\n"
        'metrics: {listen: "127.0.0.1:0"}\n'
        + heartbeat +
        "defaults: {interval: 100ms, timeout: 1s, fail_after: 2, recover_after: 2}\n"
        "checks:\n"
        f'  - name: web\n    http: {{url: "{web.url}"}}\n'
        "  - name: steady\n    command: \"true\"\n"
    )
    return config


def metrics_port(proc: Watchdog) -> int:
    proc.wait_log("metrics: serving")
    return int(re.search(r"serving http://127\.0\.0\.1:(\d+)/metrics", proc.log()).group(1))


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def status_json(config: Path) -> dict:
    done = pdw("status", str(config), "--json", env={**os.environ, **ENV})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def check_row(data: dict, name: str) -> dict:
    return next(row for row in data["checks"] if row["name"] == name)


def test_full_disk_still_pages_says_degraded_and_records_later(
    tmp_path, small_fs, pd, web, pinged
):
    config = write_config(tmp_path, pd, web, small_fs / "state", pinged)
    with Watchdog(config, env=ENV) as proc:
        proc.wait_started()
        port = metrics_port(proc)
        wait_for(lambda: pinged.hits >= 2, what="heartbeat pings")
        filler = fill(small_fs)
        web.up = False

        pd.wait_for(lambda: pd.actions_for(KEY) == ["trigger"], timeout=10)
        proc.wait_log("state store failing")
        code, body = get(port, "/healthz")
        assert code == 503 and "degraded" in body and "full" in body
        wait_for(lambda: "pd_watchdog_state_store_ok 0.0" in get(port, "/metrics")[1],
                 what="the store metric to say degraded")
        data = wait_for(lambda: (lambda d: d if d["runner"]["degraded"] else None)(
            status_json(config)), what="status to say degraded")
        assert "full" in data["runner"]["degraded"]
        row = check_row(data, "web")
        assert row["triggered"] and row["unrecorded"]
        table = pdw("status", str(config), env={**os.environ, **ENV}).stdout
        assert "RUNNER DEGRADED" in table and "(in memory only)" in table
        proc.wait_log("heartbeat: runner unhealthy")
        beats = pinged.hits
        log = proc.log()
        assert "Traceback" not in log
        assert log.count("state store failing") == 1  # once a minute, not once a probe

        filler.unlink()
        proc.wait_log("state store works again", timeout=10)
        wait_for(lambda: get(port, "/healthz")[0] == 200, what="healthy again")
        assert pinged.hits >= beats  # and it pings again
        wait_for(lambda: pinged.hits > beats + 1, what="heartbeat back")
        # status reads runtime.json, rewritten once a second: a read right after the
        # recovery may be the last write from before it (seen in CI: age 0.97 s)
        row = wait_for(lambda: (lambda r: r if not r.get("unrecorded") else None)(
            check_row(status_json(config), "web")), what="status to say recorded")
        assert row["triggered"]
        assert proc.stop() == 0

    with Watchdog(config, env=ENV) as again:  # the change was recorded: no second page
        again.wait_started()
        web.up = True
        pd.wait_for(lambda: pd.actions_for(KEY) == ["trigger", "resolve"], timeout=10)
        assert again.stop() == 0
    assert pd.actions_for(KEY) == ["trigger", "resolve"]
    assert len(pd.incidents) == 1


def test_trigger_and_resolve_both_from_memory_are_recorded_as_sent(
    tmp_path, small_fs, pd, web
):
    config = write_config(tmp_path, pd, web, small_fs / "state")
    with Watchdog(config, env=ENV) as proc:
        proc.wait_started()
        filler = fill(small_fs)
        web.up = False
        pd.wait_for(lambda: pd.actions_for(KEY) == ["trigger"], timeout=10)
        web.up = True
        pd.wait_for(lambda: pd.actions_for(KEY) == ["trigger", "resolve"], timeout=10)
        filler.unlink()
        proc.wait_log("state store works again", timeout=10)
        data = status_json(config)
        assert data["outbox"]["pending"] == 0  # sent from memory: never queued again
        assert data["outbox"]["sent"] == {"trigger": 1, "resolve": 1}
        assert not check_row(data, "web")["triggered"]
        assert proc.stop() == 0
    with Watchdog(config, env=ENV) as again:
        again.wait_started()
        wait_for(lambda: check_row(status_json(config), "web")["last_at"], what="a run")
        assert again.stop() == 0
    assert pd.actions_for(KEY) == ["trigger", "resolve"]


@pytest.mark.parametrize("which", ["state.db", "state.db*"])
def test_deleted_state_file_is_written_again_from_memory(tmp_path, pd, web, which):
    state = tmp_path / "state"
    config = write_config(tmp_path, pd, web, state)
    with Watchdog(config, env=ENV) as proc:
        proc.wait_started()
        web.up = False
        pd.wait_for(lambda: pd.actions_for(KEY) == ["trigger"], timeout=10)
        for path in state.glob(which):
            path.unlink()
        proc.wait_log("was deleted while pd-watchdog was running", timeout=5)
        proc.wait_log("wrote it again from the open database")
        assert (state / "state.db").exists()
        assert check_row(status_json(config), "web")["triggered"]
        proc.kill9()  # the new file must hold everything: no graceful stop to help it
    with Watchdog(config, env=ENV) as again:
        again.wait_started()
        assert "triggered" in again.log().rpartition("=== start 2")[2].split("started:")[1]
        web.up = True
        pd.wait_for(lambda: pd.actions_for(KEY) == ["trigger", "resolve"], timeout=10)
        assert again.stop() == 0
    assert pd.actions_for(KEY) == ["trigger", "resolve"]


def test_read_only_state_file_is_written_again(tmp_path, pd, web):
    state = tmp_path / "state"
    config = write_config(tmp_path, pd, web, state)
    with Watchdog(config, env=ENV) as proc:
        proc.wait_started()
        os.chmod(state / "state.db", 0o444)
        proc.wait_log("was made read-only", timeout=5)
        proc.wait_log("wrote it again from the open database")
        assert stat.S_IMODE(os.stat(state / "state.db").st_mode) == 0o600
        web.up = False
        pd.wait_for(lambda: pd.actions_for(KEY) == ["trigger"], timeout=10)
        assert proc.stop() == 0
    assert check_row(status_json(config), "web")["triggered"]


def test_state_files_are_private_whoever_made_the_folder(tmp_path, pd, web):
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    os.chmod(state, 0o755)  # as systemd's StateDirectory= makes it
    config = write_config(tmp_path, pd, web, state)
    with Watchdog(config, env=ENV) as proc:
        proc.wait_started()
        wait_for(lambda: (state / "state.db-wal").exists(), what="the WAL")
        assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
        for name in ("state.db", "state.db-wal", "state.db-shm", "lock", "runtime.json"):
            assert stat.S_IMODE(os.stat(state / name).st_mode) == 0o600, name
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0
