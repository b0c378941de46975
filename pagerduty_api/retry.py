"""Whether a failed call is worth another attempt: one decision, made from data.

As in Alertmanager's Retrier, the answers worth retrying are a table here, not a list of
exception types each caller keeps. Two horizons read it:

- `Resource.request()` retries, within its `retry_deadline`, what passes within seconds: the
  api's THROTTLE_STATUSES, 5xx, and no answer (a connection error, a timeout).
- `is_retryable()` answers for a caller that keeps the event and tries again for as long as it
  takes (pd-watchdog's sender): False only when no attempt can ever succeed, because the call
  itself is wrong; True when the delivery failed, including a 3xx or another 4xx (a wrong url or
  key: once that is fixed, the same event is accepted).
"""

from __future__ import annotations

# Local package imports
from pagerduty_api.exceptions import (
    ConfigurationException,
    IncidentKeyException,
    InvalidEventException,
    PagerDutyAPIServerException,
)

# PagerDuty's "too many": 429 on both APIs; Events API v1 answers 403 when throttled too (on
# v2 a 403 is an ordinary refusal).
THROTTLE_STATUSES: dict[str, frozenset[int]] = {
    "v1": frozenset({403, 429}),
    "v2": frozenset({429}),
}
DEFAULT_THROTTLE_STATUSES = frozenset({429})  # any other API (the REST API's Resource)

# PagerDuty's "this event is invalid": the same event is refused again, however often it goes.
REFUSED_STATUSES = frozenset({400})

# The call is wrong, not the delivery: the event, the key to act on, or the Alert's settings.
_NEVER_RETRYABLE = (InvalidEventException, IncidentKeyException, ConfigurationException)


def is_retryable(exc: BaseException) -> bool:
    """True when a later attempt at the same call may succeed; False when none ever can.

    False: InvalidEventException (PagerDuty's 400, or refused before sending),
    IncidentKeyException, ConfigurationException, and the ValueError or TypeError of an
    argument check (a v2 severity, a timestamp). True: every other PagerDutyAPIServerException
    (throttled, 5xx, no answer, a redirect or another 4xx), OSError (requests' exceptions are
    OSErrors: its InvalidURL, also a ValueError, is about delivery), and anything else, which
    is not ours to judge: a durable caller keeps the event rather than drop it on a surprise.
    """
    if isinstance(exc, _NEVER_RETRYABLE):
        return False
    if isinstance(exc, PagerDutyAPIServerException):
        return exc.status_code not in REFUSED_STATUSES
    if isinstance(exc, OSError):
        return True
    return not isinstance(exc, ValueError | TypeError)


def is_throttle(exc: BaseException, api: str | None) -> bool:
    """PagerDuty asked for fewer events: a throttle status of `api` (429, or 403 on v1)."""
    status = getattr(exc, "status_code", None)
    return status in THROTTLE_STATUSES.get(api or "", DEFAULT_THROTTLE_STATUSES)
