"""What a reload applies live and what it keeps until a restart: each top-level setting,
with the runner in-process, and metrics.listen once more with the real process (SIGHUP).

The restart-only list is read from the models (fields.RESTART on the field): a reload that
changes one of those settings logs it and keeps the running value."""

from __future__ import annotations

import logging
import signal
import socket
import textwrap
import urllib.request
from pathlib import Path

import pytest

from procs import Target, Watchdog, wait_for
from watchdog.config import load
from watchdog.config.reload import RESTART_ONLY
from watchdog.runner import Runner

pytestmark = pytest.mark.timeout(60)

BASE = """\
pagerduty: {source: host-a}
state_dir: ./state
workers: 4
metrics: {listen: "127.0.0.1:0"}
defaults: {interval: 1h}
checks:
  - name: a
    command: 'true'
"""


def test_the_restart_only_settings_are_read_from_the_models():
    assert RESTART_ONLY == (("state_dir",), ("state", "postgresql"),
                            ("state", "postgresql_file"), ("state", "lock"),
                            ("state", "failover_after"), ("workers",), ("metrics", "listen"),
                            ("push", "listen"))


class Running:
    """A runner in-process on a config file that a test rewrites and reloads."""

    def __init__(self, path: Path, caplog: pytest.LogCaptureFixture):
        self.path = path
        self.caplog = caplog
        self.runner = Runner(load(str(path)))
        self.runner.start()

    def reload(self, old: str, new: str, *more: str) -> None:
        """Replace `old` by `new` (and each further pair) in the file, then reload."""
        text = self.path.read_text()
        edits = [(old, new), *zip(more[::2], more[1::2], strict=True)]
        for before, after in edits:
            assert before in text, before
            text = text.replace(before, after)
        self.path.write_text(text)
        self.caplog.clear()
        assert self.runner.reload()

    def restart_lines(self) -> list[str]:
        return [r.getMessage() for r in self.caplog.records
                if "takes a restart" in r.getMessage()]


@pytest.fixture
def running(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="watchdog")
    path = tmp_path / "w.yaml"
    path.write_text(BASE)
    run = Running(path, caplog)
    try:
        yield run
    finally:
        run.runner.stop_requested.set()
        run.runner.shutdown()


def _metrics_answer(address: tuple[str, int]) -> bool:
    with urllib.request.urlopen(f"http://{address[0]}:{address[1]}/metrics", timeout=5) as r:
        return r.status == 200 and b"pd_watchdog" in r.read()


# --------------------------------------------------------------------------- restart


def test_state_dir_takes_a_restart(running, tmp_path):
    running.reload("state_dir: ./state", "state_dir: ./elsewhere")
    assert running.restart_lines() == [
        f"reload: state_dir changed to {tmp_path / 'elsewhere'}; that takes a restart, keeping "
        f"{tmp_path / 'state'}"]
    assert running.runner.config.state_dir == str(tmp_path / "state")


def test_workers_take_a_restart(running):
    running.reload("workers: 4", "workers: 8")
    assert running.restart_lines() == [
        "reload: workers changed to 8; that takes a restart, keeping 4"]
    assert running.runner.config.workers == 4


def test_metrics_listen_takes_a_restart_and_the_listener_stays(running):
    bound = running.runner.metrics_server.address
    running.reload('listen: "127.0.0.1:0"', 'listen: "127.0.0.2:9"')
    assert running.restart_lines() == [
        "reload: metrics.listen changed to 127.0.0.2:9; that takes a restart, keeping "
        "127.0.0.1:0"]
    assert running.runner.config.metrics_listen == ("127.0.0.1", 0)
    assert _metrics_answer(bound)


def test_metrics_removed_or_added_takes_a_restart(running):
    running.reload('metrics: {listen: "127.0.0.1:0"}\n', "")
    assert running.restart_lines() == [
        "reload: metrics.listen changed to none; that takes a restart, keeping 127.0.0.1:0"]
    assert running.runner.config.metrics_listen == ("127.0.0.1", 0)


def test_a_restart_only_change_does_not_hold_up_the_live_ones(running):
    running.reload("workers: 4", "workers: 8",
                   "defaults: {interval: 1h}", "defaults: {interval: 2h}")
    assert len(running.restart_lines()) == 1
    assert running.runner.config.workers == 4
    assert running.runner.checks["a"].interval == 7200


# --------------------------------------------------------------------------- live


def test_pagerduty_applies_live(running):
    running.reload("source: host-a", "source: host-b")
    assert running.restart_lines() == []
    assert running.runner.config.pagerduty.source == "host-b"
    assert running.runner.checks["a"].incident_key == "pd-watchdog/host-b/a"
    assert "reload: PagerDuty settings changed" in running.caplog.text


def test_heartbeat_applies_live(running):
    target = Target()
    try:
        running.reload("workers: 4", f"workers: 4\nheartbeat: {{url: '{target.url}', "
                       "interval: 100ms}")
        assert running.restart_lines() == []
        assert running.runner.heartbeat is not None
        wait_for(lambda: target.hits >= 1, what="a heartbeat ping after the reload")
        running.reload("interval: 100ms}", "interval: 100ms, timeout: 2s}")
        assert running.runner.config.heartbeat.timeout == 2.0
    finally:
        target.close()


def test_defaults_apply_live(running):
    running.reload("defaults: {interval: 1h}", "defaults: {interval: 2h, fail_after: 5}")
    assert running.restart_lines() == []
    check = running.runner.checks["a"]
    assert (check.interval, check.fail_after) == (7200, 5)


def test_checks_and_includes_apply_live(running, tmp_path):
    (tmp_path / "more.yaml").write_text("checks:\n  - name: c\n    command: 'true'\n")
    running.reload("checks:\n", "include: [more.yaml]\nchecks:\n  - name: b\n    command: 'true'\n")
    assert running.restart_lines() == []
    assert sorted(running.runner.checks) == ["a", "b", "c"]


# --------------------------------------------------------------------------- real process


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_sighup_with_a_new_metrics_port_says_it_takes_a_restart(tmp_path):
    first, second = _free_port(), _free_port()
    config = tmp_path / "w.yaml"
    config.write_text(textwrap.dedent(f"""\
        state_dir: ./state
        metrics: {{listen: "127.0.0.1:{first}"}}
        checks:
          - {{name: a, command: 'true', interval: 1h}}
    """))
    with Watchdog(config) as proc:
        proc.wait_started()
        config.write_text(config.read_text().replace(str(first), str(second)))
        proc.signal(signal.SIGHUP)
        proc.wait_log(f"reload: metrics.listen changed to 127.0.0.1:{second}; that takes a "
                      f"restart, keeping 127.0.0.1:{first}")
        proc.wait_log("reload: 1 check from 1 file")
        assert _metrics_answer(("127.0.0.1", first))
        assert proc.stop() == 0
