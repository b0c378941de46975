"""When the sender tries an event again, and in what order it sends: pure rules, kept apart
so they can be tested alone (the sender's lanes apply them)."""

from __future__ import annotations

from collections.abc import Sequence

from pagerduty_api.exceptions import PagerDutyException
from watchdog.model import TRIGGER
from watchdog.store import OutboxItem

# The longest wait between two attempts at one event. A trigger is a page someone needs: once
# PagerDuty is back it must go out within seconds, so its backoff stops growing at 15 s (four
# lanes then probe a PagerDuty that is down some 30 times a minute, well inside its budget).
# A resolve pages nobody and may wait longer. The sender's shared recovery (the first event
# PagerDuty takes again wakes every lane) usually ends both waits early.
TRIGGER_BACKOFF_MAX = 15.0
RESOLVE_BACKOFF_MAX = 60.0
RETRY_AFTER_MAX = 60.0  # the longest Retry-After honoured: a wild header must not park a page


def send_order(items: Sequence[OutboxItem]) -> list[OutboxItem]:
    """Pages first: triggers with nothing older of their key pending, then the rest, each in
    outbox order. No event ever moves ahead of an older one of the same key.

    `items` must hold every pending event of their keys older than the newest one (a lane's
    oldest rows do: each key belongs to one lane).
    """
    seen: set[str] = set()
    first: list[OutboxItem] = []
    rest: list[OutboxItem] = []
    for item in items:
        key = item.event.incident_key
        (first if item.event.action == TRIGGER and key not in seen else rest).append(item)
        seen.add(key)
    return first + rest


def retry_after_of(exc: BaseException) -> float | None:
    """PagerDuty's Retry-After in seconds, bounded by RETRY_AFTER_MAX; None if absent."""
    value = getattr(exc, "retry_after", None)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        return None
    return min(float(value), RETRY_AFTER_MAX)


def is_delivery_error(exc: BaseException) -> bool:
    """PagerDuty or the network said no (expected), as opposed to a bug in our code.

    Whether to try again is pagerduty_api.is_retryable's to say; this only picks the log line.
    requests' exceptions are OSErrors.
    """
    return isinstance(exc, PagerDutyException | OSError)
