"""What passive checks are told (`pd-watchdog ping`, `wrap`, the push endpoint), as plain data.

A passive check does not probe anything: a cron job or another host reports to it. Each
report is folded into the check's Record (its last success, start and failure, and what the
last finish said), which the store keeps durably, so a restart of the runner changes
nothing about when the check is due. Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

START = "start"
SUCCESS = "success"
FAIL = "fail"
KINDS = (START, SUCCESS, FAIL)
MESSAGE_CAP = 10 * 1024  # characters of a report's message kept (the push body cap, too)


@dataclass(frozen=True)
class Report:
    """One report. `exit_code` is the job's (negative: killed by that signal), None when
    the reporter did not say; `duration` in seconds, None when unknown."""

    kind: str
    at: float
    exit_code: int | None = None
    duration: float | None = None
    message: str = ""


@dataclass(frozen=True)
class Record:
    """Everything a passive check knows, as the store keeps it. `first_seen` (when the check
    was first configured or reported) starts the clock until the first success; `seq` orders
    the store's writes, so the runner reads only what changed."""

    first_seen: float
    success_at: float | None = None
    start_at: float | None = None
    failure_at: float | None = None
    exit_code: int | None = None
    duration: float | None = None
    message: str = ""
    seq: int = 0

    @property
    def finished_at(self) -> float | None:
        """When the last finish (success or failure) was reported."""
        ends = [at for at in (self.success_at, self.failure_at) if at is not None]
        return max(ends) if ends else None

    @property
    def running(self) -> bool:
        """A start was reported and no finish since."""
        finished = self.finished_at
        return self.start_at is not None and (finished is None or self.start_at > finished)

    @property
    def failed(self) -> bool:
        """The last finish was a failure."""
        return self.failure_at is not None and (
            self.success_at is None or self.failure_at >= self.success_at)


def fold(record: Record | None, report: Report) -> Record:
    """The record after `report` (a check never reported to starts at the report)."""
    base = record if record is not None else Record(first_seen=report.at)
    if report.kind == START:
        return replace(base, start_at=report.at)
    duration = report.duration
    if duration is None and base.running and base.start_at is not None:
        duration = max(0.0, report.at - base.start_at)  # a ping after a ping --start
    finish = {"exit_code": report.exit_code, "duration": duration,
              "message": report.message[-MESSAGE_CAP:]}
    if report.kind == SUCCESS:
        return replace(base, success_at=report.at, **finish)
    return replace(base, failure_at=report.at, **finish)
