"""runtime.json: what the live runner knows that its state file may not (yet) say.

`pd-watchdog status` reads the state file; while the runner cannot write that (a full disk),
the truth is in the runner's memory: that it is degraded, why, and the newest state of the
checks it could not record. The runner writes that here, in place, into a file it sized when
it started: overwriting bytes a file already has needs no free space (on tmpfs, ext4, xfs;
not on copy-on-write file systems, where a failed write is only logged), so this still works
when the disk is full. The file is only ever as current as the process named in it: status
believes it only while that process holds the state_dir's lock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from typing import Any

from watchdog import statefile
from watchdog.store import LOCK_NAME

log = logging.getLogger("watchdog.runner")

NAME = "runtime.json"
SIZE = 64 * 1024  # bytes set aside at start; a larger report keeps its first checks


class RuntimeFile:
    """The writer's side, in the runner."""

    def __init__(self, state_dir: str) -> None:
        self.path = os.path.join(state_dir, NAME)
        self._fd: int | None = None
        self._written = 0  # bytes of the last report, to blank what a shorter one leaves
        self._last: bytes | None = None

    def open(self) -> None:
        """Create the file 0600 at its full size now, while there is room for it."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, statefile.PRIVATE_FILE)
        except OSError as exc:
            log.warning("cannot create %s (%s); `status` will not see a degraded runner",
                        self.path, exc.strerror)
            return
        try:
            os.fchmod(fd, statefile.PRIVATE_FILE)
            os.posix_fallocate(fd, 0, SIZE)
            os.pwrite(fd, b" " * SIZE, 0)  # real bytes: fallocate alone may be lazy
            os.fsync(fd)
        except OSError as exc:
            os.close(fd)
            log.warning("cannot size %s (%s); `status` will not see a degraded runner",
                        self.path, exc.strerror)
            return
        self._fd = fd
        self._written = SIZE

    def write(self, report: dict[str, Any]) -> None:
        """Overwrite the report in place (only when it changed)."""
        if self._fd is None:
            return
        data = _encode(report)
        if data == self._last:
            return
        padded = data.ljust(self._written, b" ")
        try:
            os.pwrite(self._fd, padded, 0)
        except OSError as exc:
            log.debug("cannot update %s: %s", self.path, exc)
            return
        self._last, self._written = data, len(data)

    def close(self) -> None:
        """Say the runner stopped, and let the file go."""
        if self._fd is None:
            return
        self.write({"pid": os.getpid(), "running": False})
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None


def _encode(report: dict[str, Any]) -> bytes:
    data = json.dumps(report, default=str, ensure_ascii=False).encode("utf-8", "replace")
    checks = dict(report.get("checks") or {})
    while len(data) > SIZE and checks:
        keep = max(0, len(checks) // 2)
        checks = dict(list(checks.items())[:keep])
        report = {**report, "checks": checks, "checks_cut": True}
        data = json.dumps(report, default=str, ensure_ascii=False).encode("utf-8", "replace")
    return data[:SIZE]


def read(state_dir: str) -> dict[str, Any] | None:
    """The live runner's report, or None when there is no runner or no report."""
    path = os.path.join(state_dir, NAME)
    try:
        with open(path, "rb") as file:
            raw = file.read(SIZE)
    except OSError:
        return None
    try:
        report = json.loads(raw.strip(b" \0\n"))
    except ValueError:
        return None
    if not isinstance(report, dict) or not report.get("running"):
        return None
    pid = report.get("pid")
    if not isinstance(pid, int) or pid != _lock_holder(state_dir) or not _alive(pid):
        return None  # left by a runner that died: what it knew died with it
    return report


def _lock_holder(state_dir: str) -> int | None:
    """The pid the runner wrote into its lock file."""
    try:
        with open(os.path.join(state_dir, LOCK_NAME), encoding="ascii", errors="replace") as file:
            return int(file.read(64).strip() or 0) or None
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, and another user's
    return True
