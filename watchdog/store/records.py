"""The plain data the store takes and gives back, and how an outbox item can end.

Backend-neutral: nothing here knows which database holds the rows.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from watchdog.model import CheckState, Event, ProbeResult

# How a delivered outbox item ended (Store.settle).
SENT = "sent"
DRY_RUN = "dry_run"
DEAD = "dead"


@dataclass(frozen=True)
class Deferred:
    """A state change the store could not take when it happened, written later by replay().

    Its events were handed to the sender from memory meanwhile: `queue` are those still to
    send (they join the outbox), `sent` the actions PagerDuty accepted (counted as sent, never
    queued again), `dead` those it refused, with the reason (kept as dead letters). A
    `state` of None means the check was removed (its row is deleted).
    """

    name: str
    fingerprint: str
    incident_key: str
    state: CheckState | None
    result: ProbeResult | None
    at: float
    queue: tuple[Event, ...] = ()
    sent: tuple[str, ...] = ()
    dead: tuple[tuple[Event, str], ...] = ()
    dry_run: tuple[str, ...] = ()  # actions a dry run logged (counted apart from sent)


@dataclass(frozen=True)
class StoredCheck:
    """A check as the store remembers it (the runner's view after a restart)."""

    name: str
    fingerprint: str
    incident_key: str
    state: CheckState
    last_result: dict[str, Any] | None
    last_at: float | None
    triggered_since: float | None
    failing_since: float | None = None  # first failure of the current run of failures


@dataclass(frozen=True)
class OutboxItem:
    """An event waiting for PagerDuty, with its delivery history."""

    id: int
    event: Event
    created_at: float
    attempts: int
    last_error: str | None


def lane_hash(incident_key: str) -> int:
    """Stable across processes and Python versions (unlike hash()), so lanes never reshuffle."""
    return zlib.crc32(incident_key.encode("utf-8"))


@dataclass(frozen=True)
class RemediationRun:
    """One run of a check's `remediate:` command; finished_at and exit_code are None while
    it runs (or when the runner died in it), exit_code also when it timed out."""

    check: str
    ran_at: float
    finished_at: float | None = None
    exit_code: int | None = None
    output: str = ""
