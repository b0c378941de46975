"""A passive check's verdict: (now, the check's Record, what it expects) -> a result.

Pure: the runner keeps the records (watchdog.passive_feed), the probe hands them here with
the time. A check with no success yet and no failure stays pending (no result) until its
first deadline: first seen + expect_every + grace.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Any

from watchdog.durations import format_duration, format_time
from watchdog.model import ProbeResult
from watchdog.reports import Record

SUMMARY_TAIL = 200  # characters of the last output line a failure's summary shows


@dataclass(frozen=True)
class Expect:
    """What a passive check expects: a success every `every` seconds, `grace` late at most;
    a started run finished within `max_runtime` (None: no limit)."""

    every: float
    grace: float
    max_runtime: float | None = None

    @property
    def words(self) -> str:
        return f"due every {format_duration(self.every)}, grace {format_duration(self.grace)}"


def judge(expect: Expect, record: Record | None, now: float) -> ProbeResult | None:
    """The result at `now`, or None while there is nothing to judge yet (pending)."""
    if record is None:
        return None  # not even seen: the runner notes it at once, so this is brief
    details = _details(expect, record)
    if record.running and expect.max_runtime is not None and record.start_at is not None:
        ran = now - record.start_at
        if ran > expect.max_runtime:
            return ProbeResult(False, f"started {format_duration(ran, 'age')} ago and not "
                               f"finished (max_runtime {format_duration(expect.max_runtime)})",
                               details=details)
    if record.failed:
        return ProbeResult(False, "failed: " + finish_words(record), details=details)
    since = record.success_at if record.success_at is not None else record.first_seen
    due = since + expect.every + expect.grace
    if now > due:
        when = _clock(since) if record.success_at is not None else \
            f"{_clock(since)}, when the check was first seen"
        return ProbeResult(False, f"no success since {when} ({expect.words})", details=details)
    if record.success_at is None:
        return None  # before the first deadline, no verdict yet: pending
    summary = f"last success {format_duration(max(0.0, now - record.success_at), 'age')} ago"
    if record.duration is not None:
        summary += f" (took {format_duration(record.duration, 'measured')})"
    summary += f", due again by {_clock(due)}"
    if record.running and record.start_at is not None:
        summary += f"; running for {format_duration(max(0.0, now - record.start_at), 'age')}"
    return ProbeResult(True, summary, details=details)


def finish_words(record: Record) -> str:
    """How the last finish went: "exit code 2: disk full", "killed by signal SIGKILL"."""
    code = record.exit_code
    if code is None:
        words = ""
    elif code < 0:
        words = f"killed by signal {_signal_name(-code)}"
    else:
        words = f"exit code {code}"
    line = last_line(record.message)
    if words and line:
        return f"{words}: {line}"
    return words or line or "reported failure"


def last_line(text: str) -> str:
    """The last non-blank line of `text`, trimmed to SUMMARY_TAIL characters."""
    for line in reversed(text.splitlines()):
        if line.strip():
            line = line.strip()
            return line if len(line) <= SUMMARY_TAIL else line[: SUMMARY_TAIL - 1] + "…"
    return ""


def _details(expect: Expect, record: Record) -> dict[str, Any]:
    since = record.success_at if record.success_at is not None else record.first_seen
    details: dict[str, Any] = {
        "last_success_at": record.success_at,
        "last_start_at": record.start_at,
        "last_failure_at": record.failure_at,
        "due_at": round(since + expect.every + expect.grace, 3),
        "running": record.running,
        "exit_code": record.exit_code if record.exit_code is None or record.exit_code >= 0
        else None,
        "duration": None if record.duration is None else round(record.duration, 3),
        "message": record.message,
    }
    if record.exit_code is not None and record.exit_code < 0:
        details["signal"] = _signal_name(-record.exit_code)
    return details


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _clock(epoch: float) -> str:
    return format_time(epoch, zone=False)
