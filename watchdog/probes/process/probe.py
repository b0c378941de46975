"""ProcessProbe.run: find the processes (one pass over the process table, or the pidfile's
one), measure them, and compare with the previous run: CPU is the CPU time used between two
runs, and a new main pid is a restart. A plain run (it reads /proc): on a worker thread."""

from __future__ import annotations

import os
import pwd
import threading
import time
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import psutil  # imported by the first run (~20 ms): validate and start-up skip it

from watchdog.durations import format_duration
from watchdog.model import ProbeResult
from watchdog.probes._match import TextMatch
from watchdog.probes._util import fmt_seconds
from watchdog.sizes import format_size

_ATTRS = ["name", "status", "create_time"]  # one read of /proc/PID/stat
_ATTRS_PIDFILE = [*_ATTRS, "cmdline", "uids"]
_CLOCK_SLACK = 2.0  # seconds: create_time is computed from the boot time, whole seconds
_PIDS_SHOWN = 20


class _Seen(NamedTuple):
    """One matched process as this run saw it."""

    pid: int
    started: float  # create_time, wall clock: (pid, started) is a process's identity
    name: str
    zombie: bool
    rss: int | None  # None: a zombie, or not readable
    cpu: float | None  # user + system seconds so far


class _Missing(Exception):
    """The process the pidfile names cannot be watched; the message says why."""

    def __init__(self, message: str, severity: str | None = None):
        super().__init__(message)
        self.severity = severity


class ProcessProbe:
    """A parsed process check, and what the previous run saw (CPU times, the main pid)."""

    __slots__ = ("name", "cmdline", "pidfile", "user", "least", "most", "max_rss", "max_cpu",
                 "label", "_lock", "_cpu", "_sampled", "_main")

    def __init__(self, name: str | None = None, cmdline: TextMatch | None = None,
                 pidfile: str | None = None, user: str | int | None = None, least: int = 1,
                 most: int | None = None, max_rss: int | None = None,
                 max_cpu: float | None = None):
        self.name = name
        self.cmdline = cmdline
        self.pidfile = pidfile
        self.user = user
        self.least = least
        self.most = most
        self.max_rss = max_rss
        self.max_cpu = max_cpu
        self.label = name or (f"process matching {cmdline.describe()}" if cmdline is not None
                              else f"the process of {pidfile}")
        self._lock = threading.Lock()
        self._cpu: dict[tuple[int, float], float] = {}  # (pid, started) -> CPU seconds
        self._sampled: tuple[float, float] | None = None  # (monotonic, wall) of those
        self._main: tuple[int, float] | None = None  # the oldest process, last run

    def __repr__(self) -> str:
        return f"ProcessProbe({self.label})"

    def run(self, timeout: float) -> ProbeResult:
        """One look at the process table; never raises."""
        start = time.monotonic()
        details: dict[str, Any] = {}
        try:
            with self._lock:  # the previous run's figures are read and replaced together
                ok, summary, severity = self._run(start + timeout, timeout, details)
        except Exception as exc:  # the runner must survive anything a probe hits
            ok, summary, severity = False, f"probe error: {type(exc).__name__}: {exc}", "error"
        return ProbeResult(ok, summary, severity, details, time.monotonic() - start)

    def _run(self, deadline: float, timeout: float,
             details: dict[str, Any]) -> tuple[bool, str, str | None]:
        try:
            uid = _uid(self.user)
            found = self._from_pidfile(uid) if self.pidfile else self._scan(uid, deadline)
        except _Missing as missing:
            details.update(count=0, zombies=0)
            self._main, self._cpu, self._sampled = None, {}, None
            return False, str(missing), missing.severity
        except TimeoutError:
            return False, f"timed out after {fmt_seconds(timeout)} reading the process table", \
                "error"
        running = [seen for seen in found if not seen.zombie]
        zombies = len(found) - len(running)
        main = min(running, key=lambda seen: (seen.started, seen.pid)) if running else None
        restarted = self._restarted(main)
        cpu = self._cpu_percent(running)
        rss = sum(seen.rss or 0 for seen in running)
        details.update(count=len(running), zombies=zombies,
                       pids=sorted(seen.pid for seen in running)[:_PIDS_SHOWN],
                       main_pid=main and main.pid,
                       uptime_seconds=main and round(max(time.time() - main.started, 0.0), 1),
                       rss_bytes=rss if running else None, cpu_percent=cpu)
        if restarted is not None:
            details["restarted_from"] = restarted
        failures = self._failures(running, zombies, restarted, rss, cpu)
        if failures:
            return False, "; ".join(failures), None
        return True, self._passing(running, zombies, main, rss, cpu), None

    def _failures(self, running: list[_Seen], zombies: int, restarted: int | None, rss: int,
                  cpu: float | None) -> list[str]:
        """Every assertion that does not hold, in words, most important first."""
        failures = []
        count = len(running)
        if count < self.least:
            if count == 0:
                failures.append(f"{self.label} is not running{_zombie_note(zombies)}")
            else:
                failures.append(f"{self.label}: {_processes(count)} running (min {self.least})")
        elif self.most is not None and count > self.most:
            failures.append(f"{self.label}: {_processes(count)} running (max {self.most})")
        if restarted is not None and running:
            main = min(running, key=lambda seen: (seen.started, seen.pid))
            failures.append(f"{self.label} restarted (pid {restarted} -> {main.pid})")
        if self.max_rss is not None and rss > self.max_rss:
            failures.append(f"{self.label}: rss {format_size(rss)} "
                            f"(max {format_size(self.max_rss)})")
        if self.max_cpu is not None and cpu is not None and cpu > self.max_cpu:
            failures.append(f"{self.label}: cpu {cpu:g}% (max {self.max_cpu:g}%)")
        return failures

    def _passing(self, running: list[_Seen], zombies: int, main: _Seen | None, rss: int,
                 cpu: float | None) -> str:
        if main is None:
            return f"{self.label} is not running (min 0){_zombie_note(zombies)}"
        up = format_duration(max(time.time() - main.started, 0.0), "age")
        said = f"{self.label}: {_processes(len(running))} running (pid {main.pid}, up {up}), " \
               f"rss {format_size(rss)}"
        if cpu is not None:
            said += f", cpu {cpu:g}%"
        return said + _zombie_note(zombies)

    # ------------------------------------------------------------------- finding them

    def _scan(self, uid: int | None, deadline: float) -> list[_Seen]:
        """The matching processes, in one pass over the process table (this one left out,
        as pgrep leaves itself out)."""
        import psutil

        own = os.getpid()
        found = []
        attrs = _ATTRS + ["cmdline"] * (self.cmdline is not None) + ["uids"] * (uid is not None)
        for proc in psutil.process_iter(attrs, ad_value=None):
            if time.monotonic() > deadline:
                raise TimeoutError
            if proc.pid != own and self._matches(proc, proc.info, uid):
                seen = _measure(proc, proc.info)
                if seen is not None:
                    found.append(seen)
        return found

    def _matches(self, proc: psutil.Process, info: dict[str, Any], uid: int | None) -> bool:
        """Whether the process is one of ours; its command line is read only when needed
        (a name check reads it only for processes whose own name differs)."""
        if uid is not None and (info.get("uids") is None or info["uids"].effective != uid):
            return False
        if self.name is not None and info.get("name") != self.name:
            argv = _argv(proc, info)
            if not argv or os.path.basename(argv[0]) != self.name:
                return False
        if self.cmdline is None:
            return True
        argv = _argv(proc, info)
        return bool(argv) and self.cmdline.search(" ".join(argv))

    def _from_pidfile(self, uid: int | None) -> list[_Seen]:
        """The one process the pidfile names, or _Missing saying why it cannot be it."""
        path = self.pidfile
        try:
            with open(path, "rb") as handle:
                text = handle.read(64)
                written = os.fstat(handle.fileno()).st_mtime
        except FileNotFoundError:
            raise _Missing(f"pidfile not found: {path}") from None
        except PermissionError:
            raise _Missing(f"permission denied: cannot read pidfile {path}", "error") from None
        except OSError as exc:
            raise _Missing(f"cannot read pidfile {path}: {exc.strerror}", "error") from None
        words = text.split()
        if not words or not words[0].isdigit() or int(words[0]) == 0:
            raise _Missing(f"pidfile {path} holds no pid: {text[:20].decode('utf-8', 'replace')!r}")
        pid = int(words[0])
        where = f"pid {pid} from {path}"
        import psutil

        try:
            proc = psutil.Process(pid)
            info = proc.as_dict(_ATTRS_PIDFILE, ad_value=None)
        except psutil.NoSuchProcess:
            raise _Missing(f"{where} is not running (stale pidfile)") from None
        if (info["create_time"] or 0.0) > written + _CLOCK_SLACK:
            raise _Missing(f"{where} started after the pidfile was written: the pid was reused "
                           f"by {info['name']} (stale pidfile)")
        if info["status"] == psutil.STATUS_ZOMBIE:
            raise _Missing(f"{where} is a zombie (exited, not reaped by its parent)")
        if not self._matches(proc, info, uid):
            raise _Missing(f"{where} is {_described(info)}, not {self._wanted()} (stale "
                           "pidfile: the pid was reused)")
        seen = _measure(proc, info)
        if seen is None:
            raise _Missing(f"{where} is not running (stale pidfile)")
        return [seen]

    def _wanted(self) -> str:
        parts = [self.name] if self.name else []
        if self.cmdline is not None:
            parts.append(f"matching {self.cmdline.describe()}")
        if self.user is not None:
            parts.append(f"running as {self.user}")
        return " ".join(parts)

    # ------------------------------------------------------------- against the last run

    def _restarted(self, main: _Seen | None) -> int | None:
        """The previous main pid when another process is the main one now: a restart (the
        oldest process is the main one; a service that was down and is back is not one)."""
        previous = self._main
        self._main = None if main is None else (main.pid, main.started)
        if previous is None or self._main is None or previous == self._main:
            return None
        return previous[0]

    def _cpu_percent(self, running: list[_Seen]) -> float | None:
        """CPU used by the processes since the previous run, in percent of one core; None
        on the first run (Monit's way: a percentage needs two readings)."""
        now, wall = time.monotonic(), time.time()
        current = {(seen.pid, seen.started): seen.cpu for seen in running
                   if seen.cpu is not None}
        previous, sampled = self._cpu, self._sampled
        self._cpu, self._sampled = current, (now, wall)
        if sampled is None or now <= sampled[0]:
            return None
        used = 0.0
        for key, cpu in current.items():
            before = previous.get(key)
            if before is None:
                if key[1] < sampled[1] - _CLOCK_SLACK:
                    continue  # there last time but not measured: no figure for it
                before = 0.0  # started since: all its CPU time is in this interval
            used += max(cpu - before, 0.0)
        return round(used / (now - sampled[0]) * 100, 1)


def _measure(proc: psutil.Process, info: dict[str, Any]) -> _Seen | None:
    """The process's memory and CPU times; None when it exited meanwhile."""
    import psutil

    zombie = info.get("status") == psutil.STATUS_ZOMBIE
    rss = cpu = None
    if not zombie:
        try:
            with proc.oneshot():
                rss = proc.memory_info().rss
                times = proc.cpu_times()
                cpu = times.user + times.system
        except psutil.NoSuchProcess:
            return None
        except psutil.AccessDenied:
            pass
    return _Seen(proc.pid, info.get("create_time") or 0.0, info.get("name") or "?", zombie,
                 rss, cpu)


def _argv(proc: psutil.Process, info: dict[str, Any]) -> list[str]:
    """The process's argv, read once; empty when it cannot be read (a zombie, a kernel
    thread, another user's process under hidepid)."""
    import psutil

    if "cmdline" not in info:
        try:
            info["cmdline"] = proc.cmdline()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            info["cmdline"] = None
    return info["cmdline"] or []


def _uid(user: str | int | None) -> int | None:
    """The uid of a user name (looked up on every run: users come and go), or _Missing."""
    if user is None or isinstance(user, int):
        return user
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        raise _Missing(f"no such user: {user}") from None


def _described(info: dict[str, Any]) -> str:
    argv = " ".join(info.get("cmdline") or [])
    return f"{info.get('name')} ({argv[:60]})" if argv else str(info.get("name"))


def _processes(count: int) -> str:
    return f"{count} process" if count == 1 else f"{count} processes"


def _zombie_note(zombies: int) -> str:
    if not zombies:
        return ""
    return f" ({_processes(zombies)} in zombie state not counted: exited, not reaped by " \
           "the parent)"
