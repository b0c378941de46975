"""File probe: a file's existence, age, size, owner, mode and content (check_file_age and
Monit's file checks), read with one stat() and, for `contains`, one bounded read.

A plain run: stat() may block on a hung network filesystem, so it runs on a worker
thread, never on the event loop.
"""

from __future__ import annotations

import os
import pwd
import stat
import time
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import Field, PlainValidator, StringConstraints

from watchdog.config.fields import NO_NUL, Duration, Flag, Says, Section, problem
from watchdog.config.sizefield import Size
from watchdog.durations import format_duration
from watchdog.model import ProbeResult
from watchdog.probes._match import Match, TextMatch
from watchdog.probes.base import validate
from watchdog.sizes import format_size, parse_size

NAME = "file"
OPEN_SOCKETS = 0
CONTENT_CAP = 1024 * 1024  # `contains` looks at the first 1 MiB, as http's body checks do
_ASSERTIONS = ("max_age", "min_size", "max_size", "contains", "owner", "mode")


def user_or_uid(value: Any) -> str | int:
    """A user name, or a uid (a number, or digits): looked up at run time, so a config
    validated on another host still loads."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise problem("a uid must be 0 or more")
        return value
    if not isinstance(value, str) or not value.strip():
        raise problem("must be a user name or a uid")
    return int(value) if value.strip().isdigit() else value.strip()


class Spec(Section):
    """The file and what must hold of it; each assertion given is checked."""

    path: Annotated[
        str, StringConstraints(min_length=1, pattern=NO_NUL),
        Says("must be a file path (relative paths start at the check file)",
             missing="required: the path of the file to check", null_is_unset=True),
    ] = Field(description="the file; relative to this file's folder")
    exists: Flag = Field(True, description="false: the check passes while the path is absent "
                         "(a lock or flag file that must not be left behind)")
    max_age: Duration | None = Field(
        None, description="fail when the file was last modified longer ago (its mtime)")
    min_size: Size | None = Field(None, description="fail when the file is smaller")
    max_size: Size | None = Field(None, description="fail when the file is larger")
    contains: Match | None = Field(
        None, description="text the first 1 MiB must contain: a string, or {regex: ...}")
    owner: Annotated[
        str | int, PlainValidator(user_or_uid, json_schema_input_type=str | int),
        Says("must be a user name or a uid", null_is_unset=True),
    ] = Field(None, description="the owning user, by name or uid")
    mode: Annotated[
        str, StringConstraints(pattern=r"^0?[0-7]{3,4}$"),
        Says("must be octal permission bits in quotes, such as '0640' (unquoted, YAML reads "
             "0640 as a number)"),
    ] | None = Field(None, description="the exact permission bits, as octal text: '0640'")

    @classmethod
    def rules(cls, data: dict[str, Any]) -> Iterable[tuple[tuple, str]]:
        if data.get("exists") is False:
            for key in _ASSERTIONS:
                if data.get(key) is not None:
                    yield (key,), "has no effect with exists: false; remove one of them"
        try:
            low, high = parse_size(data["min_size"]), parse_size(data["max_size"])
        except (KeyError, ValueError):
            return  # one missing, or the field's own error says what is wrong
        if low > high:
            yield ("min_size",), "is larger than max_size"


class Options(Section):
    """A file's existence, age, size, owner, mode and content, with one stat() per run."""

    file: Annotated[Spec, Says("must be a mapping with at least `path: /some/file`")] = Field(
        description="the file and what must hold of it")


KEYS = frozenset(Options.model_fields)


class FileProbe:
    """A parsed file check: the absolute path and the assertions, nothing left to parse."""

    __slots__ = ("path", "exists", "max_age", "min_size", "max_size", "contains", "owner",
                 "mode")

    def __init__(self, path: str, exists: bool = True, max_age: float | None = None,
                 min_size: int | None = None, max_size: int | None = None,
                 contains: TextMatch | None = None, owner: str | int | None = None,
                 mode: int | None = None):
        self.path = path
        self.exists = exists
        self.max_age = max_age
        self.min_size = min_size
        self.max_size = max_size
        self.contains = contains
        self.owner = owner
        self.mode = mode

    def __repr__(self) -> str:
        return f"FileProbe({self.path!r})"

    def run(self, timeout: float) -> ProbeResult:
        """One stat() (and one bounded read for `contains`); never raises."""
        start = time.monotonic()
        details: dict[str, Any] = {"path": self.path}
        try:
            ok, summary, severity = self._run(details)
        except Exception as exc:  # the runner must survive anything a probe hits
            ok, summary, severity = False, f"probe error: {type(exc).__name__}: {exc}", "error"
        return ProbeResult(ok, summary, severity, details, time.monotonic() - start)

    def _run(self, details: dict[str, Any]) -> tuple[bool, str, str | None]:
        try:
            info = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            details["exists"] = False
            if not self.exists:
                return True, f"{self.path} is absent", None
            return False, f"file not found: {self.path}", None
        except PermissionError:
            details["exists"] = None
            return False, f"permission denied: cannot stat {self.path} (a folder on the way " \
                          "is not searchable by the runner's user)", "error"
        details.update(_facts(info))
        if not self.exists:
            return False, f"{self.path} exists (expected absent)", None
        failure = self._assess(info, details)
        if failure is not None:
            return False, failure, "error" if failure.startswith("permission denied") else None
        return True, f"{self.path}: {format_size(info.st_size)}, modified " \
                     f"{format_duration(max(details['age_seconds'], 0), 'age')} ago", None

    def _assess(self, info: os.stat_result, details: dict[str, Any]) -> str | None:
        """The first assertion that does not hold, as a summary; None when all do."""
        age = details["age_seconds"]
        if self.max_age is not None and age > self.max_age:
            return f"{self.path} is {format_duration(age, 'age')} old " \
                   f"(max {format_duration(self.max_age)})"
        if self.min_size is not None and info.st_size < self.min_size:
            return f"{self.path} is {format_size(info.st_size)} (min {format_size(self.min_size)})"
        if self.max_size is not None and info.st_size > self.max_size:
            return f"{self.path} is {format_size(info.st_size)} (max {format_size(self.max_size)})"
        if self.owner is not None:
            found = info.st_uid if isinstance(self.owner, int) else details["owner"]
            if found != self.owner:
                return f"{self.path} is owned by {details['owner']} (uid {info.st_uid}), " \
                       f"expected {self.owner}"
        if self.mode is not None and stat.S_IMODE(info.st_mode) != self.mode:
            return f"{self.path} has mode {details['mode']} (expected {self.mode:04o})"
        if self.contains is not None:
            return self._content(details)
        return None

    def _content(self, details: dict[str, Any]) -> str | None:
        try:
            with open(self.path, "rb") as handle:
                data = handle.read(CONTENT_CAP + 1)
        except PermissionError:
            return f"permission denied: cannot read {self.path} (the runner's user may not)"
        except IsADirectoryError:
            return f"{self.path} is a folder: contains needs a file"
        where = ""
        if len(data) > CONTENT_CAP:
            data, where = data[:CONTENT_CAP], " in the first 1 MiB"
            details["content_truncated"] = True
        if self.contains.search(data.decode("utf-8", "replace")):
            return None
        verb = "match" if self.contains.regex is not None else "contain"
        return f"{self.path} does not {verb} {self.contains.describe()}{where}"


def _facts(info: os.stat_result) -> dict[str, Any]:
    """What a user would graph or alert on, from one stat()."""
    try:
        owner = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        owner = str(info.st_uid)
    return {
        "exists": True,
        "type": "folder" if stat.S_ISDIR(info.st_mode) else
                "file" if stat.S_ISREG(info.st_mode) else "other",
        "size_bytes": info.st_size,
        "age_seconds": round(time.time() - info.st_mtime, 1),
        "mode": f"{stat.S_IMODE(info.st_mode):04o}",
        "owner": owner,
        "uid": info.st_uid,
    }


def build(options: Options, base_dir: str) -> FileProbe:
    """The probe, from validated options: the path made absolute once."""
    spec = options.file
    path = os.path.normpath(os.path.join(base_dir, os.path.expanduser(spec.path)))
    return FileProbe(path, spec.exists, spec.max_age, spec.min_size, spec.max_size,
                     spec.contains, spec.owner, None if spec.mode is None else int(spec.mode, 8))


def parse(options: dict[str, Any], base_dir: str) -> FileProbe:
    """Validate the check's `file:` mapping and build the probe; OptionError lists every
    problem."""
    return build(validate(Options, options, base_dir), base_dir)
