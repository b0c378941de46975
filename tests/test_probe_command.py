"""Command probe with real subprocesses: Nagios exit codes, perfdata, hangs, floods."""

from __future__ import annotations

import os
import signal
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchdog.probes import command
from watchdog.probes.base import OptionError
from watchdog.probes.command import collect

pytestmark = pytest.mark.timeout(30)


# --- helpers ---------------------------------------------------------------------------


def _children() -> set[int]:
    """Our direct children (live or zombie), from /proc; empty set where unsupported."""
    kids: set[int] = set()
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as f:
                kids.update(int(pid) for pid in f.read().split())
    except OSError:
        pass
    return kids


@pytest.fixture(autouse=True)
def no_child_left() -> Iterator[None]:
    """Every probe reaps what it started: no zombie or live child survives a test."""
    before = _children()
    yield
    assert _children() - before == set()


def gone(pid: int) -> bool:
    """True once `pid` no longer runs. A zombie counts as gone: it is dead, and its parent
    (init here, after the group kill) is what reaps it, not the probe."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def wait_gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def read_pid(path: Path, within: float = 5.0) -> int:
    deadline = time.monotonic() + within
    while True:
        text = path.read_text().strip() if path.exists() else ""
        if text:
            return int(text)
        assert time.monotonic() < deadline, f"{path} was never written"
        time.sleep(0.01)


@pytest.fixture
def plugin(tmp_path: Path):
    """Write an executable /bin/sh plugin into tmp_path; returns its path."""

    def write(body: str, name: str = "check_it", mode: int = 0o755) -> Path:
        path = tmp_path / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(mode)
        return path

    return write


def run(options: dict, base_dir: Path | str, timeout: float = 10):
    return command.parse(options, str(base_dir)).run(timeout)


# --- the Nagios convention -------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "ok", "severity"),
    [(0, True, None), (1, False, "warning"), (2, False, None), (3, False, "error"),
     (42, False, "error")],
)
def test_exit_codes(plugin, tmp_path: Path, code: int, ok: bool, severity) -> None:
    path = plugin(f"echo 'STATE {code} - disk at 91% | used=91%;80;90;0;100'\nexit {code}\n")
    result = run({"command": str(path)}, tmp_path)
    assert (result.ok, result.severity) == (ok, severity)
    assert result.summary == f"STATE {code} - disk at 91%"
    assert result.details["exit_code"] == code
    assert result.details["output"].startswith(f"STATE {code}")
    assert result.details["perfdata"] == {
        "used": {"value": 91.0, "uom": "%", "warn": "80", "crit": "90", "min": 0.0, "max": 100.0}
    }
    assert 0 < result.latency < 5


def test_summary_falls_back_to_stderr_then_exit_code(plugin, tmp_path: Path) -> None:
    path = plugin("echo '' ; echo >&2 ; echo 'boom: no config' >&2; exit 3\n")
    result = run({"command": [str(path)]}, tmp_path)
    assert result.summary == "boom: no config"
    assert result.details["stderr"] == "\nboom: no config\n"
    result = run({"command": "exit 2", "shell": True}, tmp_path)
    assert result.summary == "exit code 2"
    assert "stderr" not in result.details


def test_summary_is_capped(plugin, tmp_path: Path) -> None:
    result = run({"command": "printf 'x%.0s' $(seq 500)", "shell": True}, tmp_path)
    assert result.summary == "x" * 300


def test_killed_by_signal(plugin, tmp_path: Path) -> None:
    path = plugin("ulimit -c 0\necho partial\nkill -SEGV $$\n")
    result = run({"command": str(path)}, tmp_path)
    assert (result.ok, result.severity) == (False, "error")
    assert result.summary == "killed by signal SIGSEGV"
    assert result.details["exit_code"] is None
    assert result.details["output"] == "partial\n"


def test_multiline_perfdata(plugin, tmp_path: Path) -> None:
    path = plugin(
        "echo \"DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968\"\n"
        "echo '/ 15272 MB (77%);'\n"
        "echo \"/boot 68 MB (69%); | /boot=68MB;88;93;0;98\"\n"
        "echo \"'/home dir'=69357MB;253404;253409;0;253414\"\n"
        "echo \"'it''s'=1.5e3c;;@10:20 garbage x= 'unterminated=3\"\n"
    )
    result = run({"command": str(path)}, tmp_path)
    assert result.ok
    assert result.summary == "DISK OK - free space: / 3326 MB (56%);"
    perf = result.details["perfdata"]
    assert set(perf) == {"/", "/boot", "/home dir", "it's"}
    assert perf["/"] == {"value": 2643.0, "uom": "MB", "warn": "5948", "crit": "5958",
                         "min": 0.0, "max": 5968.0}
    assert perf["/home dir"]["max"] == 253414.0
    assert perf["it's"] == {"value": 1500.0, "uom": "c", "warn": None, "crit": "@10:20",
                            "min": None, "max": None}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a=1", {"a": {"value": 1.0, "uom": "", "warn": None, "crit": None, "min": None,
                       "max": None}}),
        ("time=0.012s;1;2;; size=-3,5KB", {
            "time": {"value": 0.012, "uom": "s", "warn": "1", "crit": "2", "min": None,
                     "max": None},
            "size": {"value": -3.5, "uom": "KB", "warn": None, "crit": None, "min": None,
                     "max": None}}),
        ("'a b'=2;~:5;10:;x;7", {"a b": {"value": 2.0, "uom": "", "warn": "~:5",
                                         "crit": "10:", "min": None, "max": 7.0}}),
        ("u=U;1;2 v=5.0.1 w=abc ''=3 =4 x", {}),
    ],
)
def test_parse_perfdata(text: str, expected: dict) -> None:
    assert command.parse_perfdata(text) == expected


@given(st.text(alphabet=st.sampled_from("ab '=;.,-+0123456789eE%U:@~\n|"), max_size=80))
def test_parse_perfdata_never_raises(text: str) -> None:
    for label, item in command.parse_perfdata(text).items():
        assert label and isinstance(item["value"], float)
        assert item["min"] is None or isinstance(item["min"], float)


# --- hangs, floods, leftovers -----------------------------------------------------------


def test_timeout_kills_whole_process_group(plugin, tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    path = plugin('sleep 60 &\necho $! > "$1"\necho started\nsleep 60\n')
    start = time.monotonic()
    result = run({"command": [str(path), str(pidfile)]}, tmp_path, timeout=0.5)
    took = time.monotonic() - start
    assert not result.ok
    assert result.summary == "timed out after 0.5s (process group killed)"
    assert result.severity is None
    assert result.details["exit_code"] is None
    assert result.details["output"] == "started\n"
    assert took < 2
    assert wait_gone(read_pid(pidfile)), "grandchild survived the timeout"


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "polling"])
def test_grandchild_holding_pipe_does_not_hang(
    plugin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pidfd: bool
) -> None:
    if not pidfd:
        monkeypatch.setattr(collect, "_HAVE_PIDFD", False)
    pidfile = tmp_path / "daemon.pid"
    path = plugin('sleep 30 &\necho $! > "$1"\necho "OK - started the daemon"\n')
    start = time.monotonic()
    result = run({"command": [str(path), str(pidfile)]}, tmp_path, timeout=10)
    took = time.monotonic() - start
    pid = read_pid(pidfile)
    try:
        assert result.ok, result
        assert result.summary == "OK - started the daemon"
        assert took < 1.5
    finally:
        os.kill(pid, signal.SIGKILL)
        assert wait_gone(pid)


def test_flood_is_capped_and_cheap(tmp_path: Path) -> None:
    probe = command.parse({"command": "head -c 100000000 /dev/zero"}, str(tmp_path))
    tracemalloc.start()
    try:
        cpu = time.process_time()
        result = probe.run(20)
        cpu = time.process_time() - cpu
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.ok, result
    assert result.details["truncated"] is True
    assert len(result.details["output"]) == 4096
    assert peak < 2 * 1024 * 1024, f"peak {peak} bytes"
    assert cpu < 1.0, f"{cpu:.2f} CPU seconds for 100 MB"


def test_endless_flood_times_out_cheaply(tmp_path: Path) -> None:
    probe = command.parse({"command": ["yes", "flood"]}, str(tmp_path))
    cpu = time.process_time()
    result = probe.run(1)
    cpu = time.process_time() - cpu
    assert result.summary == "timed out after 1s (process group killed)"
    assert result.details["truncated"] is True
    assert result.details["output"].startswith("flood\nflood\n")
    assert cpu < 0.5, f"{cpu:.2f} CPU seconds draining `yes` for 1 s"


def test_stderr_flood_does_not_block(tmp_path: Path) -> None:
    result = run({"command": "head -c 5000000 /dev/zero >&2; echo OK done", "shell": True},
                 tmp_path)
    assert result.ok and result.summary == "OK done"
    assert len(result.details["stderr"]) == 1024


# --- cannot start ---------------------------------------------------------------------


def test_command_not_found(tmp_path: Path) -> None:
    result = run({"command": "check_nope_xyz -w 1", "env": {"PATH": "/nonexistent:/bin"}},
                 tmp_path)
    assert (result.ok, result.severity) == (False, "error")
    assert result.summary == "command not found: check_nope_xyz (PATH=/nonexistent:/bin)"
    assert result.details["exit_code"] is None


def test_relative_command_not_found(tmp_path: Path) -> None:
    result = run({"command": "./missing.sh"}, tmp_path)
    assert result.summary == f"command not found: ./missing.sh (no such file in {tmp_path})"


def test_permission_denied(plugin, tmp_path: Path) -> None:
    plugin("echo hi\n", name="x.sh", mode=0o644)
    result = run({"command": "./x.sh"}, tmp_path)
    assert (result.ok, result.severity) == (False, "error")
    assert result.summary.startswith("permission denied: ./x.sh")


def test_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "plugins").mkdir()
    result = run({"command": "./plugins"}, tmp_path)
    assert result.summary.startswith("not a file: ./plugins")


def test_missing_interpreter(tmp_path: Path) -> None:
    path = tmp_path / "check_py"
    path.write_text("#!/nonexistent/python9\nprint(1)\n")
    path.chmod(0o755)
    result = run({"command": "./check_py"}, tmp_path)
    assert result.summary == (
        "cannot execute ./check_py: the interpreter on its #! line was not found"
    )


def test_missing_cwd(tmp_path: Path) -> None:
    result = run({"command": "true", "cwd": "gone"}, tmp_path)
    assert (result.ok, result.severity) == (False, "error")
    assert result.summary == f"working folder not found: {tmp_path / 'gone'}"


# --- shell, env, cwd ------------------------------------------------------------------


def test_shell(tmp_path: Path) -> None:
    result = run({"command": "echo $((6 * 7)) | tr 4 X", "shell": True}, tmp_path)
    assert result.ok and result.summary == "X2"


def test_string_is_split_like_a_shell_without_one(tmp_path: Path) -> None:
    result = run({"command": "printf '%s|%s' 'a b' $HOME"}, tmp_path)
    assert result.summary == "a b"
    assert result.details["output"] == "a b|$HOME"


def test_explicit_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PD_WATCHDOG_RUNNER_SECRET", "leak")
    result = run({"command": "env", "env": {"FOO": 1, "BAR": "two words"}}, tmp_path)
    lines = set(result.details["output"].splitlines())
    assert {"FOO=1", "BAR=two words", "LANG=C.UTF-8", f"PATH={os.environ['PATH']}"} <= lines
    assert not any("PD_WATCHDOG_RUNNER_SECRET" in line for line in lines)
    result = run({"command": "env", "env": {"LANG": "C", "PATH": "/bin:/usr/bin"}}, tmp_path)
    lines = set(result.details["output"].splitlines())
    assert {"LANG=C", "PATH=/bin:/usr/bin"} <= lines


def test_default_path_when_runner_has_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("PATH")
    probe = command.parse({"command": "true"}, str(tmp_path))
    assert probe.env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def test_cwd(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    assert run({"command": "pwd"}, tmp_path).summary == str(tmp_path)
    assert run({"command": "pwd", "cwd": "sub"}, tmp_path).summary == str(tmp_path / "sub")
    assert run({"command": "pwd", "cwd": "/"}, tmp_path).summary == "/"


def test_stdin_is_empty(tmp_path: Path) -> None:
    result = run({"command": "cat"}, tmp_path, timeout=5)
    assert result.ok and result.details["output"] == ""


def test_concurrent_runs_do_not_mix(tmp_path: Path) -> None:
    results: dict[int, list[str]] = {}

    def worker(n: int) -> None:
        probe = command.parse({"command": ["echo", f"worker {n}"]}, str(tmp_path))
        results[n] = [probe.run(10).summary for _ in range(10)]

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert results == {n: [f"worker {n}"] * 10 for n in range(6)}


# --- options ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "path", "words"),
    [
        ({}, "command", "required"),
        ({"command": ""}, "command", "empty"),
        ({"command": "   "}, "command", "empty"),
        ({"command": []}, "command", "empty"),
        ({"command": 5}, "command", "string or a list"),
        ({"command": "echo 'unbalanced"}, "command", "quotes"),
        ({"command": ["echo", 5]}, "command[1]", "quote it"),
        ({"command": ["", "x"]}, "command[0]", "empty"),
        ({"command": ["echo"], "shell": True}, "shell", "one string"),
        ({"command": "x", "shell": "yes"}, "shell", "true or false"),
        ({"command": "x", "env": ["A=1"]}, "env", "mapping"),
        ({"command": "x", "env": {"A": None}}, "env.A", "''"),
        ({"command": "x", "env": {"A": True}}, "env.A", "quote"),
        ({"command": "x", "env": {"A=B": "1"}}, "env.A=B", "'='"),
        ({"command": "x", "cwd": 5}, "cwd", "folder path"),
        ({"command": "x", "cwd": ""}, "cwd", "folder path"),
        ({"command": "x", "shel": True}, "shel", "shell"),
    ],
)
def test_parse_errors(options: dict, path: str, words: str) -> None:
    with pytest.raises(OptionError) as info:
        command.parse(options, "/tmp")
    problems = dict(info.value.problems)
    assert path in problems, info.value.problems
    assert words in problems[path]


def test_parse_reports_all_problems_at_once() -> None:
    with pytest.raises(OptionError) as info:
        command.parse({"command": ["a", 1], "shell": True, "env": {"X": [1]}, "cwd": 3}, "/")
    assert [p for p, _ in info.value.problems] == ["shell", "command[1]", "env.X", "cwd"]


def test_parse_does_not_require_things_to_exist(tmp_path: Path) -> None:
    probe = command.parse({"command": "./not-yet", "cwd": "later"}, str(tmp_path))
    assert probe.cwd == str(tmp_path / "later")
    assert probe.argv == ["./not-yet"]


def test_shell_form(tmp_path: Path) -> None:
    probe = command.parse({"command": "a | b", "shell": True}, str(tmp_path))
    assert probe.argv == ["/bin/sh", "-c", "a | b"]
