"""End to end: a frozen runner (SIGSTOP, VM pause, live migration) pages for nothing.

The real `pd-watchdog run` process is stopped with SIGSTOP while probes are in flight, for
longer than their timeout, then continued. Its command probes' children are stopped with it
and continued after it, as when a whole VM pauses and the runner happens to be scheduled
first on resume. Every check is healthy throughout, so any trigger is a false page.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import signal
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fakepd import FakePagerDuty
from procs import ROUTING_KEY, Watchdog, wait_for

pytestmark = pytest.mark.timeout(120)

HTTP_CHECKS = 8
COMMAND_CHECKS = 3
ANSWER_DELAY = 0.3  # seconds each probe takes
INTERVAL = 2.0
# fail_after is 1: a healthy probe slowed past its timeout by the burst of work on resume
# (on 2 shared cores) would page. 1.2 s of margin over ANSWER_DELAY; 0.6 s was seen to be
# too little once in a CI run.
TIMEOUT = 1.5
FREEZE = 4.5  # seconds stopped: three times the timeout, so in-flight probes' deadlines pass


class SlowTarget:
    """A loopback HTTP target that answers 200 after ANSWER_DELAY, noting each hit's path
    and when it arrived, and how many requests it is answering right now."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, float]] = []
        self.active = 0
        self.lock = threading.Lock()
        target = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                with target.lock:
                    target.hits.append((self.path, time.monotonic()))
                    target.active += 1
                try:
                    time.sleep(ANSWER_DELAY)
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                finally:
                    with target.lock:
                        target.active -= 1

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def times(self, path: str, since: float = 0.0) -> list[float]:
        with self.lock:
            return [when - since for hit, when in self.hits if hit == path and when > since]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def write_config(tmp_path: Path, pd_url: str, target: SlowTarget) -> Path:
    checks = [
        f'  - name: web-{i}\n    http: {{url: "{target.url(f"/web-{i}")}"}}\n'
        for i in range(HTTP_CHECKS)
    ]
    checks += [
        f"  - name: cmd-{i}\n    shell: true\n"
        f"    command: 'sleep {ANSWER_DELAY}; date +%s.%N >> {tmp_path}/cmd-{i}.runs'\n"
        for i in range(COMMAND_CHECKS)
    ]
    config = tmp_path / "watchdog.yaml"
    config.write_text(
        "pagerduty:\n"
        "  routing_key: ${TEST_ROUTING_KEY}\n"
        f"  url: {pd_url}\n"
        "  source: freeze-host\n"
        "state_dir: ./state\n"
        "metrics: {listen: '127.0.0.1:0'}\n"
        "defaults:\n"
        f"  interval: {INTERVAL}s\n"
        f"  timeout: {TIMEOUT}s\n"
        "  fail_after: 1\n"
        "  recover_after: 1\n"
        "checks:\n" + "".join(checks)
    )
    return config


def command_runs(tmp_path: Path, i: int, since: float = 0.0) -> list[float]:
    """Wall-clock ends of cmd-i's runs after `since`, relative to it."""
    path = tmp_path / f"cmd-{i}.runs"
    if not path.exists():
        return []
    ends = [float(line) for line in path.read_text().split()]
    return [end - since for end in ends if end > since]


def descendants(pid: int) -> list[int]:
    """Live (not zombie) processes below `pid`, from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rpartition(")")[2].split()[:2]
        if state != "Z":
            parents[int(entry)] = int(ppid)
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def stop_tree(pid: int) -> list[int]:
    """SIGSTOP every process below `pid` (until none is left running to fork another)."""
    stopped: list[int] = []
    while new := [child for child in descendants(pid) if child not in stopped]:
        for child in new:
            with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
                os.kill(child, signal.SIGSTOP)
        stopped += new
    return stopped


def is_stopped(pid: int) -> bool:
    """Every thread of `pid` is stopped (a stop reaches each thread on its own)."""
    try:
        stats = [task.joinpath("stat").read_text() for task in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:
        return False
    return all(stat.rpartition(")")[2].split()[0] in ("T", "t") for stat in stats)


def is_gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def missed_counts(base: str) -> dict[str, float]:
    with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        sample.labels["check"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "pd_watchdog_check_missed_total"
    }


def test_a_freeze_longer_than_the_timeout_pages_for_nothing_and_bursts_nothing(tmp_path):
    target = SlowTarget()
    names = [f"web-{i}" for i in range(HTTP_CHECKS)] + [f"cmd-{i}" for i in range(COMMAND_CHECKS)]
    children: list[int] = []
    try:
        with FakePagerDuty() as pd, Watchdog(
            write_config(tmp_path, pd.url, target), env={"TEST_ROUTING_KEY": ROUTING_KEY}
        ) as proc:
            proc.wait_log("metrics: serving")
            port = re.search(r"metrics: serving http://127\.0\.0\.1:(\d+)/metrics", proc.log())
            base = f"http://127.0.0.1:{port.group(1)}"
            pid = proc.proc.pid
            wait_for(
                lambda: all(target.times(f"/web-{i}") for i in range(HTTP_CHECKS))
                and all(command_runs(tmp_path, i) for i in range(COMMAND_CHECKS)),
                timeout=15,
                what="every check's first run",
            )
            # Freeze while an HTTP probe and a command are in flight (the VM pauses).
            wait_for(lambda: target.active and descendants(pid), what="probes in flight")
            os.kill(pid, signal.SIGSTOP)
            wait_for(lambda: is_stopped(pid), what="the runner to stop")
            children = stop_tree(pid)
            time.sleep(FREEZE)  # the fault being injected: the process does not run
            os.kill(pid, signal.SIGCONT)
            resumed, resumed_wall = time.monotonic(), time.time()
            # The runner resumes first; its command timeouts kill the still-stopped children.
            wait_for(lambda: all(is_gone(child) for child in children), what="children killed")

            def ran_twice_since_resume() -> bool:
                return all(
                    len(target.times(f"/web-{i}", resumed)) >= 2 for i in range(HTTP_CHECKS)
                ) and all(
                    len(command_runs(tmp_path, i, resumed_wall)) >= 2
                    for i in range(COMMAND_CHECKS)
                )

            wait_for(ran_twice_since_resume, timeout=15, what="every check to run again")
            wait_for(
                lambda: all(missed_counts(base).get(name, 0) >= 1 for name in names),
                what="missed rounds counted for every check",
            )
            assert proc.stop() == 0
        elapsed = time.monotonic() - resumed
        log = proc.log()
        assert [line for line in log.splitlines() if "queued trigger" in line] == []
        assert pd.events == []
        assert "event loop was not running for" in log
        # No burst: rounds missed during the freeze are not replayed. In the first interval
        # after resuming a check runs at most twice (a re-probe and its next slot).
        runs_after = [target.times(f"/web-{i}", resumed) for i in range(HTTP_CHECKS)]
        runs_after += [command_runs(tmp_path, i, resumed_wall) for i in range(COMMAND_CHECKS)]
        for runs in runs_after:
            assert sum(when < 0.8 * INTERVAL for when in runs) <= 2, runs
            assert len(runs) <= elapsed / INTERVAL + 2, runs
    finally:
        for child in children:  # left stopped only if the test failed before they were killed
            if is_stopped(child):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
        target.close()
