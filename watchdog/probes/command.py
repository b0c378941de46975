"""Command probe: run a Nagios-style plugin and read its verdict from the exit code.

The child gets an explicit environment, its own process group (so a timeout can kill
everything it started), /dev/null as stdin, and capped output capture: a plugin that
prints 100 MB or leaves a grandchild holding the pipe must not hurt the runner.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import math
import os
import re
import select
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import Field, PlainValidator, StringConstraints

from watchdog.config.fields import (
    DOC_DEFAULT,
    NO_NUL,
    Flag,
    Says,
    ScalarText,
    Section,
    problem,
    problems,
)
from watchdog.model import ProbeResult
from watchdog.probes._util import fmt_seconds
from watchdog.probes.base import validate

NAME = "command"
OPEN_SOCKETS = 0  # a plugin's own sockets are its business; the runner holds two pipes
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CAPTURE_CAP = 64 * 1024  # bytes kept per stream; the rest is read and dropped
CHUNK = 64 * 1024
NAGIOS_STATES = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}  # details["state"]
OUTPUT_CAP = 4096  # details["output"]
STDERR_CAP = 1024  # details["stderr"]
SUMMARY_CAP = 300
EXIT_GRACE = 0.2  # after the plugin exits, how long to drain what its children still write
NO_PIDFD_POLL = 0.05  # without pidfd_open, how often to look whether the plugin exited
DISCARD_PACE = 0.005  # past the capture cap, drop at most one pipe-full this often
DISCARD_PIPE_SIZE = 1024 * 1024
MAX_POLL = 3600.0  # poll() takes int milliseconds; an absurd timeout just loops


def _command(value: Any) -> str | list[str]:
    """The program: a string (split like a shell, none started) or an argv list."""
    if isinstance(value, str):
        if "\0" in value:
            raise problem("must not contain a NUL character")
        if not value.strip():
            raise problem("must not be empty: give the program to run")
        return value
    if not isinstance(value, list):
        raise problem("must be a string or a list of strings")
    if not value:
        raise problem("must not be empty: give the program to run")
    found: list[tuple[tuple, Any, Any]] = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            found.append(((i,), "must be a string; quote it in YAML (e.g. '5')", item))
        elif "\0" in item:
            found.append(((i,), "must not contain a NUL character", item))
    if isinstance(value[0], str) and not value[0]:
        found.append(((0,), "the program name must not be empty", value[0]))
    if found:
        raise problems(found)
    return value


Command = Annotated[
    str | list[str],
    PlainValidator(_command, json_schema_input_type=str | list[str]),
    Says("must be a string or a list of strings",
         missing="required: the program to run, as a string or argv list", null_is_unset=True),
]
EnvName = Annotated[
    str, StringConstraints(min_length=1, pattern=r"^[^=\x00]*$"),
    Says("names must be non-empty text without '=' or NUL"),
]
EnvValue = Annotated[
    ScalarText, StringConstraints(pattern=NO_NUL),
    Says("must be a string or number; quote it (write '' for empty)",
         string_pattern_mismatch="must not contain a NUL character"),
]


class Options(Section):
    """Run a Nagios-style plugin: exit 0 OK, 1 WARNING (severity warning), 2 CRITICAL
    (the check's severity), 3 or anything else UNKNOWN (error); perfdata after "|"."""

    command: Command = Field(description="the program: a string (split like a shell would, "
                             "none started) or a list taken as is; a relative program path "
                             "starts at cwd")
    shell: Flag = Field(False, description="run the command string with /bin/sh -c")
    env: Annotated[
        dict[EnvName, EnvValue] | None, Says("must be a mapping of NAME: value"),
    ] = Field(None, description="variables added to a minimal environment (PATH, LANG)")
    cwd: Annotated[
        str | None, StringConstraints(min_length=1, pattern=NO_NUL),
        Says("must be a folder path (relative paths start at the check file)"),
    ] = Field(None, description="the folder the command runs in; relative to this file",
              json_schema_extra={DOC_DEFAULT: "the folder of this file"})

    @classmethod
    def rules(cls, data: dict[str, Any]) -> Iterable[tuple[tuple, str]]:
        command, shell = data.get("command"), data.get("shell") is True
        if shell and isinstance(command, list):
            yield ("shell",), "shell: true needs command as one string, not a list"
        if not shell and isinstance(command, str) and "\0" not in command and command.strip():
            try:
                argv = shlex.split(command)
            except ValueError as exc:
                yield ("command",), f"cannot split into words ({exc}); check the quotes"
            else:
                if not argv:
                    yield ("command",), "must not be empty: give the program to run"


KEYS = frozenset(Options.model_fields)


def build(options: Options, base_dir: str) -> CommandProbe:
    """The probe, from validated options: argv, environment and folder computed once."""
    command = options.command
    if isinstance(command, list):
        argv = list(command)
    else:
        argv = ["/bin/sh", "-c", command] if options.shell else shlex.split(command)
    env = {"PATH": os.environ.get("PATH") or DEFAULT_PATH, "LANG": "C.UTF-8"}
    env.update(options.env or {})
    cwd = base_dir
    if options.cwd is not None:
        cwd = os.path.normpath(os.path.join(base_dir, os.path.expanduser(options.cwd)))
    return CommandProbe(argv, env, cwd)


def parse(options: dict[str, Any], base_dir: str) -> CommandProbe:
    """Validate the check's command options and build the probe; OptionError lists every
    problem."""
    return build(validate(Options, options, base_dir), base_dir)


def _pidfd_open(pid: int) -> int:
    """A pollable fd that becomes readable when `pid` exits, or -1 where unsupported."""
    global _HAVE_PIDFD
    if not _HAVE_PIDFD:
        return -1
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        _HAVE_PIDFD = False
        return -1


_HAVE_PIDFD = hasattr(os, "pidfd_open")


class CommandProbe:
    """A parsed command check; everything that can be computed once already is."""

    __slots__ = ("argv", "env", "cwd")

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str):
        self.argv = argv
        self.env = env
        self.cwd = cwd

    def __repr__(self) -> str:
        return f"CommandProbe({self.argv!r}, cwd={self.cwd!r})"

    def run(self, timeout: float) -> ProbeResult:
        """Run the plugin once, never longer than `timeout`; never raises."""
        start = time.monotonic()
        try:
            ok, summary, severity, details = self._run(start + timeout, timeout)
        except Exception as exc:  # the runner must survive anything a probe hits
            ok, summary, severity, details = (
                False, f"probe error: {type(exc).__name__}: {exc}", "error", {"exit_code": None}
            )
        return ProbeResult(ok, summary, severity, details, time.monotonic() - start)

    def _run(self, deadline: float, timeout: float) -> tuple[bool, str, str | None, dict]:
        out_r, out_w = os.pipe()
        try:
            err_r, err_w = os.pipe()
        except OSError:
            os.close(out_r)
            os.close(out_w)
            raise
        try:
            try:
                proc = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out_w,
                    stderr=err_w,
                    env=self.env,
                    cwd=self.cwd,
                    start_new_session=True,
                    close_fds=True,
                )
            finally:
                os.close(out_w)
                os.close(err_w)
        except BaseException as exc:
            os.close(out_r)
            os.close(err_r)
            if isinstance(exc, OSError):
                return False, self._spawn_failure(exc), "error", {"exit_code": None}
            raise

        try:
            out, err, timed_out = _collect(proc, out_r, err_r, deadline)
        except BaseException:  # e.g. KeyboardInterrupt: leave nothing running behind us
            _kill_group(proc)
            raise
        finally:
            os.close(out_r)
            os.close(err_r)
        if timed_out:
            _kill_group(proc)
            details = _output_details(None, out, err)
            summary = f"timed out after {fmt_seconds(timeout)} (process group killed)"
            return False, summary, None, details
        return _verdict(proc.wait(), out, err)

    def _spawn_failure(self, exc: OSError) -> str:
        """Say why the plugin could not start, in words an on-call engineer can act on."""
        program = self.argv[0]
        code = exc.errno
        if exc.filename == self.cwd and exc.filename != program:
            if code == errno.ENOENT:
                return f"working folder not found: {self.cwd}"
            if code == errno.ENOTDIR:
                return f"working folder is not a folder: {self.cwd}"
            if code == errno.EACCES:
                return f"permission denied on working folder: {self.cwd}"
            return f"cannot enter working folder {self.cwd}: {exc.strerror or exc}"
        path = os.path.join(self.cwd, program) if "/" in program else None
        if code == errno.ENOENT:
            if path is None:
                return f"command not found: {program} (PATH={self.env.get('PATH', '')})"
            if os.path.lexists(path) and os.path.isfile(path):
                return f"cannot execute {program}: the interpreter on its #! line was not found"
            if program.startswith("/"):
                return f"command not found: {program}"
            return f"command not found: {program} (no such file in {self.cwd})"
        if code == errno.EACCES:
            if path is not None and os.path.isdir(path):
                return f"not a file: {program} (it is a folder)"
            return f"permission denied: {program} (is it executable? chmod +x)"
        if code == errno.ENOEXEC:
            return f"cannot execute {program}: not a program and no #! line"
        if code == errno.ENOTDIR:
            return f"not a file: {program}"
        return f"cannot run {program}: {exc.strerror or exc}"


def _collect(
    proc: subprocess.Popen, out_r: int, err_r: int, deadline: float
) -> tuple[bytes, bytes, bool]:
    """Read both pipes until EOF and the plugin's exit, or the deadline.

    Keeps the first CAPTURE_CAP bytes of each stream. Past that, the pipe is still
    drained (so the child never deadlocks on it) but paced: one pipe-full dropped every
    DISCARD_PACE, which keeps an endless `yes` at ~2% of a core instead of 100%.
    Once the plugin itself has exited, pipes still held open by its children are drained
    of what is already there and then abandoned. Returns (stdout, stderr, timed_out).
    """
    bufs = {out_r: bytearray(), err_r: bytearray()}
    poller = select.poll()
    poller.register(out_r, select.POLLIN)
    poller.register(err_r, select.POLLIN)
    open_pipes = 2
    paused: dict[int, float] = {}  # fd -> when to look at it again
    pidfd = _pidfd_open(proc.pid)
    if pidfd >= 0:
        poller.register(pidfd, select.POLLIN)
    exited = False
    drain_until = math.inf
    try:
        while open_pipes or not exited:
            now = time.monotonic()
            if now >= deadline:
                return bytes(bufs[out_r]), bytes(bufs[err_r]), True
            if exited and now >= drain_until:
                break
            for fd, when in list(paused.items()):
                if when <= now:
                    del paused[fd]
                    poller.register(fd, select.POLLIN)
            if exited:
                wait = 0.0  # only take what is already there
            else:
                wait = deadline - now
                if pidfd < 0:
                    wait = min(wait, NO_PIDFD_POLL)
                if paused:
                    wait = min(wait, min(paused.values()) - now)
            events = poller.poll(math.ceil(min(max(wait, 0.0), MAX_POLL) * 1000))
            for fd, _event in events:
                if fd == pidfd:
                    poller.unregister(pidfd)
                    exited = True
                    continue
                buf = bufs[fd]
                if len(buf) < CAPTURE_CAP:
                    data = os.read(fd, CHUNK)
                    got = len(data)
                    buf += data[: CAPTURE_CAP - len(buf)]
                else:
                    got = _discard(fd)
                    if got:
                        poller.unregister(fd)
                        paused[fd] = time.monotonic() + DISCARD_PACE
                if not got:
                    poller.unregister(fd)
                    open_pipes -= 1
            if pidfd < 0 and not exited:
                exited = proc.poll() is not None
            if exited and drain_until == math.inf:
                drain_until = time.monotonic() + EXIT_GRACE
            if exited and open_pipes and not events:
                break  # plugin gone, pipes quiet: children holding them are not our wait
    finally:
        if pidfd >= 0:
            os.close(pidfd)
    return bytes(bufs[out_r]), bytes(bufs[err_r]), False


_devnull_fd = -1
_devnull_lock = threading.Lock()


def _discard(fd: int) -> int:
    """Drop what is in the pipe; with splice() the bytes never enter the process.

    The first call for a pipe also grows it to 1 MiB so each paced step drops more.
    Returns the number of bytes dropped, 0 at EOF.
    """
    global _devnull_fd
    if _SPLICE:
        if _devnull_fd < 0:
            with _devnull_lock:
                if _devnull_fd < 0:
                    _devnull_fd = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        try:
            size = fcntl.fcntl(fd, _F_GETPIPE_SZ)
            if size < DISCARD_PIPE_SIZE:
                size = fcntl.fcntl(fd, _F_SETPIPE_SZ, DISCARD_PIPE_SIZE)
            return os.splice(fd, _devnull_fd, size)
        except OSError:
            pass  # e.g. the per-user pipe memory limit; a plain read still works
    return len(os.read(fd, CHUNK))


_SPLICE = hasattr(os, "splice")
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the plugin's whole process group and reap the plugin."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    # A process stuck in the kernel may outlive SIGKILL a while; Popen reaps it later.
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=2)


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _output_details(code: int | None, out: bytes, err: bytes) -> dict[str, Any]:
    details: dict[str, Any] = {"exit_code": code, "output": _decode(out[:OUTPUT_CAP])}
    if err:
        details["stderr"] = _decode(err[:STDERR_CAP])
    if len(out) > OUTPUT_CAP:
        details["truncated"] = True
    return details


def _verdict(
    returncode: int, out: bytes, err: bytes
) -> tuple[bool, str, str | None, dict[str, Any]]:
    """Nagios plugin convention: 0 OK, 1 WARNING, 2 CRITICAL, anything else UNKNOWN."""
    code = returncode if returncode >= 0 else None
    details = _output_details(code, out, err)
    text = _decode(out)
    first, _, rest = text.partition("\n")
    summary_text, bar, perf_first = first.partition("|")
    summary = summary_text.strip()
    if out:
        perf_parts = [perf_first] if bar else []
        _long_text, bar, perf_rest = rest.partition("|")
        if bar:
            perf_parts.append(perf_rest)
        if perf_parts:
            perfdata = parse_perfdata(" ".join(perf_parts))
            if perfdata:
                details["perfdata"] = perfdata

    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        details["signal"] = name
        details["state"] = "UNKNOWN"
        return False, f"killed by signal {name}", "error", details

    if not summary:
        for line in _decode(err).splitlines():
            if line.strip():
                summary = line.strip()
                break
    if not summary:
        summary = f"exit code {returncode}"
    summary = summary[:SUMMARY_CAP]
    details["state"] = NAGIOS_STATES.get(returncode, "UNKNOWN")
    if returncode == 0:
        return True, summary, None, details
    if returncode == 1:
        return False, summary, "warning", details
    if returncode == 2:
        return False, summary, None, details
    return False, summary, "error", details


# each item starts at the beginning or after whitespace, so a stray quote skips one item
_PERF_ITEM = re.compile(r"(?<!\S)(?:'((?:[^']|'')+)'=(\S*)|([^\s'=]+)=(\S*))")
_NUMBER = r"[-+]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][-+]?\d+)?"
_VALUE = re.compile(rf"({_NUMBER})(\D*)")
_NUMBER_ONLY = re.compile(_NUMBER)


def _number(text: str) -> float | None:
    if not _NUMBER_ONLY.fullmatch(text):
        return None
    return float(text.replace(",", "."))


def parse_perfdata(text: str) -> dict[str, dict[str, Any]]:
    """Nagios performance data ('label'=value[UOM];[warn];[crit];[min];[max] ...).

    Items that do not parse are skipped: bad perfdata must never fail a check.
    """
    result: dict[str, dict[str, Any]] = {}
    for match in _PERF_ITEM.finditer(text):
        quoted, q_rest, plain, p_rest = match.groups()
        label = quoted.replace("''", "'") if quoted is not None else plain
        fields = (q_rest if quoted is not None else p_rest).split(";")
        value = _VALUE.fullmatch(fields[0])
        if not label or not value:
            continue
        fields += [""] * (5 - len(fields))
        result[label] = {
            "value": float(value.group(1).replace(",", ".")),
            "uom": value.group(2),
            "warn": fields[1] or None,
            "crit": fields[2] or None,
            "min": _number(fields[3]),
            "max": _number(fields[4]),
        }
    return result
