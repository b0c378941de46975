"""When the sender tries an event again, and in what order it sends: pure rules, kept apart
so they can be tested alone (the sender's lanes apply them)."""

from __future__ import annotations

import random
from collections.abc import Sequence

import requests

from pagerduty_api.exceptions import (
    IncidentKeyException,
    InvalidEventException,
    PagerDutyAPIServerException,
)
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

# Refusals that no retry can fix: PagerDuty's 400, or the client refusing before sending
# (a key or value it knows PagerDuty would reject). These go to the dead letters.
_REFUSALS = (InvalidEventException, IncidentKeyException, ValueError, TypeError)


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


def backoff_delay(
    attempts: int, *, base: float, cap: float, retry_after: float | None, rng: random.Random
) -> float:
    """Full jitter, uniform(0, min(cap, base * 2**(attempts-1))), but at least retry_after."""
    ceiling = min(cap, base * 2 ** min(max(attempts - 1, 0), 60))
    delay = rng.uniform(0.0, ceiling)
    if retry_after is not None and retry_after > delay:
        delay = retry_after
    return delay


def retry_after_of(exc: BaseException) -> float | None:
    """PagerDuty's Retry-After in seconds, bounded by RETRY_AFTER_MAX; None if absent."""
    value = getattr(exc, "retry_after", None)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        return None
    return min(float(value), RETRY_AFTER_MAX)


def is_throttle(exc: BaseException, api: str | None) -> bool:
    """PagerDuty's "too many": 429, or 403 on Events API v1."""
    status = getattr(exc, "status_code", None)
    return status == 429 or (status == 403 and api == "v1")


def is_refusal(exc: BaseException) -> bool:
    """Refused for good (dead letter) rather than worth another attempt."""
    # requests' InvalidURL is also a ValueError, but it is about transport, not the event.
    return isinstance(exc, _REFUSALS) and not isinstance(exc, requests.RequestException)


def is_delivery_error(exc: BaseException) -> bool:
    """PagerDuty or the network said no (expected), as opposed to a bug in our code."""
    return isinstance(exc, PagerDutyAPIServerException | requests.RequestException | OSError)
