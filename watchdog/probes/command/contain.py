"""Running a program contained: the part of the command probe any caller can reuse.

run_contained() gives the child an explicit environment and folder, its own process group
(so a timeout kills everything it started), /dev/null as stdin and capped output capture: a
program that prints 100 MB or leaves a grandchild holding the pipe must not hurt the runner.
Secrets given to it are masked in what comes back. It knows nothing of Nagios or probes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from watchdog.logs import mask
from watchdog.probes.command.collect import collect

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CAPTURE_CAP = 64 * 1024  # bytes kept per stream; the rest is read and dropped
KILL_REAP_WAIT = 2.0  # after SIGKILL, how long to wait to reap the child
CUT = "…"  # what stands for the start of a secret the capture cap cut through


def command_argv(command: str | Sequence[str], shell: bool = False) -> list[str]:
    """The argv of a command: a list as is, a string split like a shell would (none runs),
    or with `shell` the string run by /bin/sh -c."""
    if not isinstance(command, str):
        return list(command)
    return ["/bin/sh", "-c", command] if shell else shlex.split(command)


def minimal_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """PATH (the runner's, or the usual system one) and LANG, plus `extra`: the child sees
    none of the runner's other variables, so none of its secrets."""
    env = {"PATH": os.environ.get("PATH") or DEFAULT_PATH, "LANG": "C.UTF-8"}
    env.update(extra or {})
    return env


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one contained run.

    returncode: the exit status (negative: killed by that signal); None when the run timed
    out (its process group was killed) or the program never started (spawn_error says why,
    in words an on-call engineer can act on). stdout and stderr are cut to the capture cap.
    """

    returncode: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool = False
    spawn_error: str | None = None


def run_contained(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str],
    cwd: str,
    capture_cap: int = CAPTURE_CAP,
    secrets: Iterable[str] = (),
) -> Outcome:
    """Run `argv` in `cwd` with exactly `env`, never longer than `timeout` seconds.

    Blocks (call it from a worker thread). A program that cannot start is an Outcome with
    spawn_error; other OS trouble (no file descriptors left) raises. Whatever happens,
    nothing it started is left running on a timeout or an exception.
    """
    deadline = time.monotonic() + timeout
    hidden = sorted({s for s in secrets if s}, key=len, reverse=True)  # longest first
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
                list(argv), stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w,
                env=dict(env), cwd=cwd, start_new_session=True, close_fds=True,
            )
        finally:
            os.close(out_w)
            os.close(err_w)
    except BaseException as exc:
        os.close(out_r)
        os.close(err_r)
        if isinstance(exc, OSError):
            why = spawn_failure(exc, argv[0], cwd, env.get("PATH", ""))
            return Outcome(None, b"", b"", spawn_error=mask(why, hidden))
        raise
    try:
        out, err, timed_out = collect(proc, out_r, err_r, deadline, capture_cap)
    except BaseException:  # e.g. KeyboardInterrupt: leave nothing running behind us
        kill_group(proc)
        raise
    finally:
        os.close(out_r)
        os.close(err_r)
    if timed_out:
        kill_group(proc)
    out, err = _masked(out, hidden, capture_cap), _masked(err, hidden, capture_cap)
    return Outcome(None if timed_out else proc.wait(), out, err, timed_out=timed_out)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the child's whole process group and reap the child."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    # A process stuck in the kernel may outlive SIGKILL a while; Popen reaps it later.
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=KILL_REAP_WAIT)


def _masked(data: bytes, secrets: list[str], cap: int) -> bytes:
    """`data` with each secret masked; when the cap may have cut it, also a secret's start
    at its very end."""
    full = len(data) >= cap
    for secret in secrets:
        raw = secret.encode("utf-8", "replace")
        if raw in data:
            text = mask(data.decode("utf-8", "surrogateescape"), [secret])
            data = text.encode("utf-8", "surrogateescape")
        if full:
            for size in range(len(raw) - 1, 0, -1):
                if data.endswith(raw[:size]):
                    data = data[:-size] + CUT.encode()
                    break
    return data


def spawn_failure(exc: OSError, program: str, cwd: str, path_var: str) -> str:
    """Say why `program` could not start, in words an on-call engineer can act on."""
    code = exc.errno
    if exc.filename == cwd and exc.filename != program:
        if code == errno.ENOENT:
            return f"working folder not found: {cwd}"
        if code == errno.ENOTDIR:
            return f"working folder is not a folder: {cwd}"
        if code == errno.EACCES:
            return f"permission denied on working folder: {cwd}"
        return f"cannot enter working folder {cwd}: {exc.strerror or exc}"
    path = os.path.join(cwd, program) if "/" in program else None
    if code == errno.ENOENT:
        if path is None:
            return f"command not found: {program} (PATH={path_var})"
        if os.path.lexists(path) and os.path.isfile(path):
            return f"cannot execute {program}: the interpreter on its #! line was not found"
        if program.startswith("/"):
            return f"command not found: {program}"
        return f"command not found: {program} (no such file in {cwd})"
    if code == errno.EACCES:
        if path is not None and os.path.isdir(path):
            return f"not a file: {program} (it is a folder)"
        return f"permission denied: {program} (is it executable? chmod +x)"
    if code == errno.ENOEXEC:
        return f"cannot execute {program}: not a program and no #! line"
    if code == errno.ENOTDIR:
        return f"not a file: {program}"
    return f"cannot run {program}: {exc.strerror or exc}"
