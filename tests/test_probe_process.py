"""Process probe against real child processes: names set with exec -a, distinctive command
lines, zombies left by a parent that does not reap, pidfiles (stale, reused, wrong
program), restarts seen as a new pid, CPU measured between two runs, memory summed."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from procs import ROUTING_KEY, pdw, wait_for
from watchdog.config import ConfigError, load
from watchdog.probes import process
from watchdog.probes.base import OptionError, run_once

pytestmark = pytest.mark.timeout(30)
SLEEPER = "import sys, time; print('ready', flush=True); time.sleep(30)"


class Children:
    """Child processes started by a test, all killed and reaped at its end."""

    def __init__(self):
        self.started: list[subprocess.Popen] = []

    def start(self, argv: list[str], ready: bool = False) -> subprocess.Popen:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 text=True)
        self.started.append(child)
        if ready:
            assert child.stdout.readline().strip() == "ready"
        return child

    def named(self, name: str) -> subprocess.Popen:
        """A sleep whose argv[0] is `name` (bash's exec -a), so ps shows it as such."""
        child = self.start(["bash", "-c", f"exec -a {name} sleep 30"])
        wait_for(lambda: _argv0(child.pid) == name, what=f"{name} exec'd")
        return child

    def python(self, marker: str, code: str = SLEEPER) -> subprocess.Popen:
        """A Python child with `marker` on its command line; returns once it runs."""
        return self.start([sys.executable, "-c", code, marker], ready=True)

    def stop(self, child: subprocess.Popen) -> None:
        if child.poll() is None:
            child.kill()
        child.wait(10)
        if child.stdout:
            child.stdout.close()

    def close(self) -> None:
        for child in self.started:
            self.stop(child)


def _argv0(pid: int) -> str | None:
    try:
        argv = psutil.Process(pid).cmdline()
    except psutil.NoSuchProcess:
        return None
    return argv[0] if argv else None


@pytest.fixture
def kids():
    made = Children()
    yield made
    made.close()


def marker() -> str:
    return f"pdw-marker-{uuid.uuid4().hex[:12]}"


def probe(**spec) -> process.ProcessProbe:
    return process.parse({"process": spec}, "/")


def test_a_process_named_with_exec_a_is_found_and_a_missing_one_fails(kids):
    name = f"pdw-{uuid.uuid4().hex[:8]}"
    child = kids.named(name)
    check = probe(name=name)
    result = run_once(check, 5)
    assert result.ok, result
    assert result.summary.startswith(f"{name}: 1 process running (pid {child.pid}, up ")
    assert result.details["count"] == 1 and result.details["pids"] == [child.pid]
    assert result.details["main_pid"] == child.pid and result.details["zombies"] == 0
    assert result.details["rss_bytes"] > 0 and result.details["cpu_percent"] is None
    kids.stop(child)
    gone = run_once(check, 5)
    assert not gone.ok and gone.summary == f"{name} is not running"
    assert gone.details["count"] == 0 and gone.details["main_pid"] is None


def test_count_min_and_max_by_command_line(kids):
    tag = marker()
    for _ in range(2):
        kids.python(tag)
    pattern = {"regex": f"-c .* {tag}$"}
    assert run_once(probe(cmdline=pattern, min=2), 5).ok
    assert run_once(probe(cmdline=tag, min=2, max=2), 5).ok
    few = run_once(probe(cmdline=tag, min=3), 5)
    assert few.summary == f"process matching {tag!r}: 2 processes running (min 3)"
    many = run_once(probe(cmdline=pattern, max=1), 5)
    assert many.summary == f"process matching /-c .* {tag}$/: 2 processes running (max 1)"
    assert run_once(probe(cmdline=tag, min=0, max=0), 5).ok is False
    assert run_once(probe(cmdline=marker(), min=0, max=0), 5).ok


def test_a_zombie_does_not_count_as_running_and_the_result_says_so(kids, tmp_path):
    program = tmp_path / f"pdwz{uuid.uuid4().hex[:8]}"  # comm: the program's file name
    shutil.copy(shutil.which("sleep"), program)
    parent = kids.start([sys.executable, "-c", (
        "import subprocess, sys, time\n"
        "dead = subprocess.Popen([sys.argv[1], '0'])\n"  # never waited for: a zombie
        "print(dead.pid, flush=True)\n"
        "time.sleep(30)\n"), str(program)])
    dead = int(parent.stdout.readline())
    wait_for(lambda: psutil.Process(dead).status() == psutil.STATUS_ZOMBIE, what="a zombie")
    only = run_once(probe(name=program.name), 5)
    assert not only.ok and only.details["zombies"] == 1 and only.details["count"] == 0
    assert only.summary == (f"{program.name} is not running (1 process in zombie state not "
                            "counted: exited, not reaped by the parent)")
    live = kids.start([str(program), "30"])
    wait_for(lambda: psutil.Process(live.pid).name() == program.name, what="exec")
    both = run_once(probe(name=program.name), 5)
    assert both.ok and both.details["count"] == 1 and both.details["pids"] == [live.pid]
    assert both.summary.endswith("(1 process in zombie state not counted: exited, not reaped "
                                 "by the parent)")
    pidfile = tmp_path / "z.pid"
    pidfile.write_text(f"{dead}\n")
    zombie = run_once(probe(pidfile=str(pidfile)), 5)
    assert zombie.summary == f"pid {dead} from {pidfile} is a zombie (exited, not reaped by " \
                             "its parent)"


def test_pidfiles_current_stale_reused_and_wrong(kids, tmp_path):
    child = kids.python(marker())
    pidfile = tmp_path / "app.pid"
    pidfile.write_text(f"{child.pid}\n")
    good = run_once(probe(pidfile=str(pidfile)), 5)
    assert good.ok and good.details["main_pid"] == child.pid, good
    assert good.summary.startswith(f"the process of {pidfile}: 1 process running")
    assert run_once(probe(pidfile=str(pidfile), name=psutil.Process(child.pid).name()), 5).ok
    wrong = run_once(probe(pidfile=str(pidfile), name="nginx"), 5)
    assert wrong.summary.startswith(f"pid {child.pid} from {pidfile} is ")
    assert wrong.summary.endswith(", not nginx (stale pidfile: the pid was reused)")
    hour_ago = time.time() - 3600
    os.utime(pidfile, (hour_ago, hour_ago))
    reused = run_once(probe(pidfile=str(pidfile)), 5)
    assert reused.summary.startswith(f"pid {child.pid} from {pidfile} started after the "
                                     "pidfile was written: the pid was reused by ")
    kids.stop(child)
    pidfile.write_text(f"{child.pid}\n")
    stale = run_once(probe(pidfile=str(pidfile)), 5)
    assert not stale.ok
    assert stale.summary == f"pid {child.pid} from {pidfile} is not running (stale pidfile)"
    pidfile.write_text("starting\n")
    garbage = run_once(probe(pidfile=str(pidfile)), 5)
    assert garbage.summary == f"pidfile {pidfile} holds no pid: 'starting\\n'"
    missing = run_once(probe(pidfile=str(tmp_path / "none.pid")), 5)
    assert missing.summary == f"pidfile not found: {tmp_path}/none.pid"


def test_a_new_main_pid_is_a_restart_reported_once(kids):
    name = f"pdw-{uuid.uuid4().hex[:8]}"
    first = kids.named(name)
    check = probe(name=name)
    assert run_once(check, 5).ok
    kids.stop(first)
    second = kids.named(name)
    restarted = run_once(check, 5)
    assert not restarted.ok and restarted.severity is None
    assert restarted.summary == f"{name} restarted (pid {first.pid} -> {second.pid})"
    assert restarted.details["restarted_from"] == first.pid
    again = run_once(check, 5)
    assert again.ok and "restarted_from" not in again.details
    kids.stop(second)
    assert not run_once(check, 5).ok
    back = kids.named(name)
    returned = run_once(check, 5)  # down, then up: a recovery, not a restart
    assert returned.ok and returned.details["main_pid"] == back.pid


def test_cpu_is_measured_between_two_runs(kids):
    busy = kids.python(marker(), "import sys\nprint('ready', flush=True)\nwhile True: pass\n")
    check = probe(cmdline=busy.args[-1], max_cpu_percent=5)
    first = run_once(check, 5)
    assert first.ok and first.details["cpu_percent"] is None  # one reading is no percentage
    spent = psutil.Process(busy.pid).cpu_times()
    wait_for(lambda: sum(psutil.Process(busy.pid).cpu_times()[:2]) > sum(spent[:2]) + 0.3,
             what="0.3 s of CPU spent")
    second = run_once(check, 5)
    assert not second.ok and second.details["cpu_percent"] > 5, second
    assert f"cpu {second.details['cpu_percent']:g}% (max 5%)" in second.summary
    idle = kids.python(marker())
    calm = probe(cmdline=idle.args[-1], max_cpu_percent=50)
    assert run_once(calm, 5).ok
    wait_for(lambda: time.monotonic() > calm._sampled[0] + 0.2, what="an interval")
    quiet = run_once(calm, 5)
    assert quiet.ok and quiet.details["cpu_percent"] < 50 and ", cpu " in quiet.summary


def test_memory_is_summed_over_the_processes(kids):
    tag = marker()
    code = ("import sys, time\nheld = bytearray(40 * 1024 * 1024)\nheld[::4096] = b'x' * "
            "len(held[::4096])\nprint('ready', flush=True)\ntime.sleep(30)\n")
    for _ in range(2):
        kids.python(tag, code)
    result = run_once(probe(cmdline=tag, max_rss="64MiB"), 5)
    assert result.details["rss_bytes"] > 80 * 1024 * 1024 and not result.ok
    assert result.summary.startswith(f"process matching {tag!r}: rss ")
    assert result.summary.endswith(" (max 64.0 MiB)")
    assert run_once(probe(cmdline=tag, max_rss="1GiB"), 5).ok


def test_user_narrows_by_effective_uid(kids):
    tag = marker()
    kids.python(tag)
    me = psutil.Process().username()
    assert run_once(probe(cmdline=tag, user=me), 5).ok
    assert run_once(probe(cmdline=tag, user=os.geteuid()), 5).ok
    other = 65534 if os.geteuid() != 65534 else 0
    assert run_once(probe(cmdline=tag, user=other), 5).summary == \
        f"process matching {tag!r} is not running"
    unknown = run_once(probe(cmdline=tag, user="no-such-user-pdw"), 5)
    assert unknown.summary == "no such user: no-such-user-pdw"


def test_the_runner_does_not_count_itself():
    own = " ".join(psutil.Process().cmdline())  # anchored: a wrapping shell has it inside
    assert not run_once(probe(cmdline={"regex": f"^{re.escape(own)}$"}, min=1), 5).ok


# --------------------------------------------------------------------- the config


def test_option_errors_are_all_said_at_once():
    with pytest.raises(OptionError) as info:
        process.parse({"process": {"user": "root"}}, "/")
    assert info.value.problems == [
        ("process", "give at least one of name, cmdline or pidfile: which process to watch")]
    with pytest.raises(OptionError) as info:
        process.parse({"process": {"pidfile": "x.pid", "min": 2, "max_rss": "lots",
                                   "max_cpu_percent": 0}}, "/")
    said = dict(info.value.problems)
    assert said["process.min"].startswith("a pidfile names one process")
    assert said["process.max_rss"].startswith("not a size: 'lots'")
    assert said["process.max_cpu_percent"] == "must be a number above 0 (100 is one core)"
    with pytest.raises(OptionError) as info:
        process.parse({"process": {"name": "/usr/sbin/nginx", "min": 3, "max": 2,
                                   "cmdline": {"regex": "["}}}, "/")
    said = dict(info.value.problems)
    assert said["process.max"] == "is less than min (3)"
    assert said["process.name"].startswith("must be a process name such as nginx (no '/'")
    assert said["process.cmdline"].startswith("regex: invalid regular expression")
    with pytest.raises(OptionError) as info:
        process.parse({"process": "nginx"}, "/")
    assert info.value.problems == [
        ("process", "must be a mapping such as {name: nginx} or {pidfile: /run/nginx.pid}")]


def test_validate_names_file_and_line_and_check_shows_each_result(kids, tmp_path):
    name = f"pdw-{uuid.uuid4().hex[:8]}"
    child = kids.named(name)
    (tmp_path / "app.pid").write_text(f"{child.pid}\n")
    main = tmp_path / "watchdog.yaml"
    text = f"""\
pagerduty: {{routing_key: {ROUTING_KEY}}}
checks:
  - name: sleeper
    process: {{name: {name}, max_rss: 1GiB, max_cpu_percent: 90}}
  - name: by-pidfile
    process: {{pidfile: app.pid, name: {name}}}
  - name: absent
    process: {{name: pdw-not-running-{uuid.uuid4().hex[:6]}}}
  - name: bad
    process:
      name: x
      max_rss: 1 GB of RAM
"""
    main.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(str(main), environ={})
    assert info.value.errors == [
        f"{main}:12: checks[3].process.max_rss: not a size: '1 GB of RAM' — write e.g. "
        "512MiB, 1GiB, 100kB or a number of bytes"]
    refused = pdw("validate", str(main))
    assert refused.returncode != 0 and f"{main}:12: checks[3].process.max_rss" in refused.stderr
    main.write_text(text.replace("1 GB of RAM", "1GB"))
    ran = pdw("check", str(main))
    assert ran.returncode == 1 and "Traceback" not in ran.stderr, ran
    rows = {line.split()[0]: line for line in ran.stdout.splitlines() if line.strip()}
    assert f"{name}: 1 process running (pid {child.pid}, up " in rows["sleeper"]
    assert "OK" in rows["by-pidfile"] and "CRITICAL" in rows["absent"]
    assert "is not running" in rows["absent"]


def test_a_killed_child_is_not_found_after_it_is_reaped(kids):
    child = kids.python(marker())
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    assert run_once(probe(cmdline=child.args[-1]), 5).summary.endswith("is not running")


def test_the_kind_needs_no_path_on_disk(tmp_path):
    assert isinstance(process.parse({"process": {"pidfile": "run/x.pid"}}, str(tmp_path)),
                      process.ProcessProbe)
    assert process.parse({"process": {"pidfile": "run/x.pid"}}, str(tmp_path)).pidfile == \
        str(Path(tmp_path) / "run" / "x.pid")


def test_loading_process_checks_leaves_psutil_to_the_first_run(tmp_path):
    """psutil costs ~20 ms to import: validate and start-up do not pay it, even with
    process checks; their first run imports it (and works)."""
    config = tmp_path / "w.yaml"
    config.write_text("checks:\n  - {name: a, command: 'true'}\n"
                      f"  - {{name: b, process: {{name: pdw-none-{uuid.uuid4().hex[:6]}}}}}\n")
    code = ("import sys; from watchdog.config import load; from watchdog.probes.base import "
            "run_once; config = load(sys.argv[1], environ={}); print('psutil' in sys.modules); "
            "result = run_once(config.checks[1].probe, 5); print('psutil' in sys.modules, "
            "result.ok, result.summary)")
    done = subprocess.run([sys.executable, "-c", code, str(config)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    before, after = done.stdout.splitlines()
    assert before == "False"
    assert after.startswith("True False ") and "is not running" in after, after
