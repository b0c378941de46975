"""The run lock: one pd-watchdog run per state_dir, through flock on a file beside the state.

flock is released by the kernel when the process dies (even kill -9), so a stale lock file
never blocks a restart. The lock file holds the holder's pid, for the message of the next.
"""

from __future__ import annotations

import errno
import fcntl
import os

from watchdog import statefile
from watchdog.store.errors import StoreError, StoreLocked

LOCK_NAME = "lock"


def lock_path(state_dir: str) -> str:
    return os.path.join(state_dir, LOCK_NAME)


def take(state_dir: str, warnings: list[str]) -> tuple[int, statefile.Identity]:
    """Lock state_dir for this process; returns the open lock file and its identity.

    Raises StoreLocked naming the holder's pid. Permissions we could not narrow are added
    to `warnings`."""
    path = lock_path(state_dir)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot open lock file {path} ({exc.strerror})") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = _read_pid(fd)
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            who = f"pid {holder}" if holder else "pid unknown"
            raise StoreLocked(
                f"state_dir {state_dir} is used by another pd-watchdog run ({who}); "
                "stop it or use another state_dir"
            ) from exc
        raise StoreError(f"cannot lock {path} ({exc.strerror})") from exc
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    warnings += statefile.make_private_files([path])
    info = os.fstat(fd)
    return fd, statefile.Identity(info.st_dev, info.st_ino)


def holder(state_dir: str) -> int | None:
    """The pid written in state_dir's lock file if that process is alive, else None.

    Read, not locked: taking even a shared lock to test it could make a runner starting
    that instant fail to take its own."""
    try:
        fd = os.open(lock_path(state_dir), os.O_RDONLY)
    except OSError:
        return None
    try:
        pid = _read_pid(fd)
    finally:
        os.close(fd)
    if pid is None:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except OSError:
        return pid  # alive, another user's
    return pid


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
