"""Reading a child's two pipes until it exits, without letting it cost the runner.

Keeps the first `cap` bytes of each stream. Past that, the pipe is still drained (so the
child never deadlocks on it) but paced: one pipe-full dropped every DISCARD_PACE, which keeps
an endless `yes` at ~2% of a core instead of 100%. Once the child itself has exited, pipes
still held open by its children are drained of what is already there and then abandoned.
"""

from __future__ import annotations

import fcntl
import math
import os
import select
import subprocess
import threading
import time

CHUNK = 64 * 1024
EXIT_GRACE = 0.2  # after the child exits, how long to drain what its children still write
NO_PIDFD_POLL = 0.05  # without pidfd_open, how often to look whether the child exited
DISCARD_PACE = 0.005  # past the capture cap, drop at most one pipe-full this often
DISCARD_PIPE_SIZE = 1024 * 1024
MAX_POLL = 3600.0  # poll() takes int milliseconds; an absurd timeout just loops

_HAVE_PIDFD = hasattr(os, "pidfd_open")
_SPLICE = hasattr(os, "splice")
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)


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


def collect(
    proc: subprocess.Popen, out_r: int, err_r: int, deadline: float, cap: int
) -> tuple[bytes, bytes, bool]:
    """Read both pipes until EOF and the child's exit, or the monotonic `deadline`.

    Returns (stdout, stderr, timed_out), each stream cut to `cap` bytes.
    """
    collector = _Collector(proc, out_r, err_r, cap)
    try:
        timed_out = collector.run(deadline)
    finally:
        collector.close()
    return bytes(collector.bufs[out_r]), bytes(collector.bufs[err_r]), timed_out


class _Collector:
    """The state of one collect(): the poller, what each pipe holds, which pipes rest."""

    def __init__(self, proc: subprocess.Popen, out_r: int, err_r: int, cap: int) -> None:
        self.proc = proc
        self.cap = cap
        self.bufs = {out_r: bytearray(), err_r: bytearray()}
        self.poller = select.poll()
        self.poller.register(out_r, select.POLLIN)
        self.poller.register(err_r, select.POLLIN)
        self.open_pipes = 2
        self.paused: dict[int, float] = {}  # fd -> when to look at it again
        self.pidfd = _pidfd_open(proc.pid)
        if self.pidfd >= 0:
            self.poller.register(self.pidfd, select.POLLIN)
        self.exited = False

    def close(self) -> None:
        if self.pidfd >= 0:
            os.close(self.pidfd)

    def run(self, deadline: float) -> bool:
        """Collect until done; True when the deadline came first."""
        drain_until = math.inf
        while self.open_pipes or not self.exited:
            now = time.monotonic()
            if now >= deadline:
                return True
            if self.exited and now >= drain_until:
                break
            self._resume(now)
            events = self.poller.poll(math.ceil(self._wait(now, deadline) * 1000))
            for fd, _event in events:
                self._ready(fd)
            if self.pidfd < 0 and not self.exited:
                self.exited = self.proc.poll() is not None
            if self.exited and drain_until == math.inf:
                drain_until = time.monotonic() + EXIT_GRACE
            if self.exited and self.open_pipes and not events:
                break  # child gone, pipes quiet: children holding them are not our wait
        return False

    def _resume(self, now: float) -> None:
        """Poll again the pipes whose discard pause is over."""
        for fd, when in list(self.paused.items()):
            if when <= now:
                del self.paused[fd]
                self.poller.register(fd, select.POLLIN)

    def _wait(self, now: float, deadline: float) -> float:
        """How long the next poll may block, in seconds."""
        if self.exited:
            return 0.0  # only take what is already there
        wait = deadline - now
        if self.pidfd < 0:
            wait = min(wait, NO_PIDFD_POLL)
        if self.paused:
            wait = min(wait, min(self.paused.values()) - now)
        return min(max(wait, 0.0), MAX_POLL)

    def _ready(self, fd: int) -> None:
        """Take what a ready fd has: the child's exit, or output kept, dropped or EOF."""
        if fd == self.pidfd:
            self.poller.unregister(fd)
            self.exited = True
            return
        buf = self.bufs[fd]
        if len(buf) < self.cap:
            data = os.read(fd, CHUNK)
            got = len(data)
            buf += data[: self.cap - len(buf)]
        else:
            got = _discard(fd)
            if got:
                self.poller.unregister(fd)
                self.paused[fd] = time.monotonic() + DISCARD_PACE
        if not got:
            self.poller.unregister(fd)
            self.open_pipes -= 1


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
