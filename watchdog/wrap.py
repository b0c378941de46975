"""Running a cron job for `pd-watchdog wrap`: its output passed through as it comes, its tail
kept for the report, its exit code handed back.

The job's stdout and stderr are read from pipes and written to ours at once, byte for byte
(cron mails them, a terminal shows them live), while the last TAIL_CAP bytes of both are
kept. SIGTERM and SIGHUP sent to wrap are passed on to the job, so `kill` of the wrapper
still ends in a report; SIGINT from a terminal reaches the job directly (same process
group), and wrap waits for it. Once the job exits, a background child of it still holding
the pipes is not waited for (what it wrote so far is passed through).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass

from watchdog.logs import mask
from watchdog.probes.command.contain import CUT, spawn_failure

TAIL_CAP = 4096  # bytes of output kept for the report
READ = 64 * 1024
AFTER_EXIT = 0.2  # seconds to keep reading once the job exited (what is in the pipes)
FORWARDED = (signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class Outcome:
    """How the job ended: `returncode` as Python says it (negative: killed by that signal),
    `tail` its output's last bytes, masked; `spawn_error` why it could not start."""

    returncode: int
    tail: str
    duration: float
    spawn_error: str | None = None

    @property
    def exit_status(self) -> int:
        """What wrap exits with: the job's code, 128+N when signal N killed it."""
        return 128 - self.returncode if self.returncode < 0 else self.returncode


def run_through(argv: list[str], secrets: frozenset[str]) -> Outcome:
    """Run the job with our stdin, environment and folder; never raises for the job's sake."""
    began = time.monotonic()
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        why = spawn_failure(exc, argv[0], os.getcwd(), os.environ.get("PATH", ""))
        code = 127 if "not found" in why else 126  # as a shell says it
        return Outcome(code, why, time.monotonic() - began, spawn_error=why)
    previous = {signum: signal.signal(signum, lambda n, _f: _forward(proc, n))
                for signum in FORWARDED}
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, lambda n, _f: None)
    try:
        tail, cut = _pass_through(proc)
        returncode = proc.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return Outcome(returncode, _tail_text(bytes(tail), cut, secrets), time.monotonic() - began)


def _forward(proc: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signum)


def _pass_through(proc: subprocess.Popen) -> tuple[bytearray, bool]:
    """Copy both pipes to our fds 1 and 2 until they close (or shortly after the exit)."""
    assert proc.stdout is not None and proc.stderr is not None
    tail, cut = bytearray(), False
    outputs = {proc.stdout.fileno(): 1, proc.stderr.fileno(): 2}
    broken: set[int] = set()
    exited_at: float | None = None
    with selectors.DefaultSelector() as selector:
        for fd in outputs:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            if exited_at is None and proc.poll() is not None:
                exited_at = time.monotonic()
            if exited_at is not None and time.monotonic() - exited_at > AFTER_EXIT:
                break  # a background child holds the pipes: not ours to wait for
            for key, _ in selector.select(0.1 if exited_at is None else AFTER_EXIT / 4):
                data = os.read(key.fd, READ)
                if not data:
                    selector.unregister(key.fd)
                    continue
                _write_all(outputs[key.fd], data, broken)
                tail += data
                if len(tail) > TAIL_CAP:
                    del tail[: len(tail) - TAIL_CAP]
                    cut = True
    proc.stdout.close()
    proc.stderr.close()
    return tail, cut


def _write_all(fd: int, data: bytes, broken: set[int]) -> None:
    """All of data to fd; a closed reader (EPIPE) is dropped, the job keeps running."""
    view = memoryview(data)
    while view and fd not in broken:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            time.sleep(0.001)
            continue
        except OSError:
            broken.add(fd)
            return
        view = view[written:]


def _tail_text(tail: bytes, cut: bool, secrets: frozenset[str]) -> str:
    """The kept output as text, secrets masked; when the cap cut it, from its first whole
    line (and a secret whose start was cut off masked by its end)."""
    text = tail.decode("utf-8", "replace")
    if cut:
        newline = text.find("\n")
        if 0 <= newline < len(text) - 1:
            text = text[newline + 1:]
        for secret in sorted(secrets, key=len, reverse=True):
            for size in range(len(secret) - 1, 0, -1):
                if text.startswith(secret[-size:]):
                    text = CUT + text[size:]
                    break
    return mask(text, secrets)
