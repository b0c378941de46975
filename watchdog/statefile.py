"""The state files on disk: who may read them, and whether they are still the ones we opened.

The store keeps its SQLite connection open for the life of the runner, so the kernel lets it
go on writing to a file that was deleted, replaced or made read-only meanwhile: every write
then succeeds, and the next start finds an empty folder, or a file it cannot open. The runner
calls `problems()` every second so that is noticed within seconds, not at the next start.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
SIDE_FILES = ("-wal", "-shm")  # SQLite's write-ahead log and its index, beside the database


@dataclass(frozen=True)
class Identity:
    """Which file a path named when we opened it (a new file at the path is another one)."""

    device: int
    inode: int

    @classmethod
    def of(cls, path: str) -> Identity | None:
        try:
            info = os.stat(path)
        except OSError:
            return None
        return cls(info.st_dev, info.st_ino)


def make_private_dir(path: str) -> list[str]:
    """Create the folder 0700, or narrow it to 0700 if it is ours; warnings for what is not.

    systemd's StateDirectory= creates 0755 folders, and a folder made by hand follows the
    umask: whoever created it, the state (open incidents, check output) is only ours to read.
    """
    os.makedirs(path, mode=PRIVATE_DIR, exist_ok=True)
    return _narrow(path, PRIVATE_DIR, "state_dir")


def make_private_files(paths: list[str]) -> list[str]:
    """Narrow existing state files to 0600; warnings for those we cannot narrow."""
    warnings: list[str] = []
    for path in paths:
        if os.path.exists(path):
            warnings += _narrow(path, PRIVATE_FILE, "state file")
    return warnings


def create_private(path: str) -> None:
    """Create an empty file 0600 (whatever the umask) if there is none yet.

    SQLite gives its -wal and -shm files the database file's mode, so creating the database
    0600 keeps all three private."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)


def _narrow(path: str, mode: int, what: str) -> list[str]:
    try:
        info = os.stat(path)
    except OSError:
        return []
    if not info.st_mode & 0o077:
        return []
    if info.st_uid == os.geteuid() or os.geteuid() == 0:
        try:
            os.chmod(path, stat.S_IMODE(info.st_mode) & mode)
            return []
        except OSError:
            pass
    return [
        f"{what} {path} is readable by other users (mode {stat.S_IMODE(info.st_mode):o}) and "
        f"pd-watchdog cannot change that: chmod {mode:o} {path}"
    ]


def problems(path: str, opened: Identity | None) -> list[str]:
    """What is wrong with the database file we have open, as an operator would say it."""
    now = Identity.of(path)
    if now is None:
        return [f"state file {path} was deleted while pd-watchdog was running"]
    if opened is not None and now != opened:
        return [f"state file {path} was replaced by another file while pd-watchdog was running"]
    found = []
    for suffix in SIDE_FILES[:1]:  # the WAL exists while a connection is open in WAL mode
        if not os.path.exists(path + suffix):
            found.append(f"state file {path + suffix} was deleted while pd-watchdog was running")
    if not writable(path):
        found.append(f"state file {path} was made read-only; the next start could not use it")
    return found


def writable(path: str) -> bool:
    """Whether we could open the file for writing again (at the next start).

    os.access alone says yes to root whatever the mode: a file whose owner-write bit was
    taken away on purpose is read-only to us too."""
    try:
        info = os.stat(path)
    except OSError:
        return False
    if info.st_uid == os.geteuid() and not info.st_mode & stat.S_IWUSR:
        return False
    return os.access(path, os.W_OK)


def remove_side_files(path: str) -> None:
    """Remove -wal/-shm files left beside a path whose database is gone: applied to a new
    database they would corrupt it."""
    for suffix in SIDE_FILES:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + suffix)


def fsync(path: str) -> None:
    """Make a file's data, or (for a folder) a rename in it, durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
