"""What an event may hold: PagerDuty's limits, applied before sending, for every event kind
(Alert's triggers and follow-ups, ChangeEvent's changes), so none is sent only to be refused."""

from __future__ import annotations

# Standard library imports
import logging
from datetime import datetime, timezone
from typing import Any

# Local package imports
from pagerduty_api._transport import encode_json, truncate
from pagerduty_api.exceptions import InvalidEventException

logger = logging.getLogger("pagerduty_api")

MAX_SUMMARY_LENGTH = 1024  # characters of a description / summary
MAX_BODY_BYTES = 512_000  # PagerDuty's 512 KB, counted on the safe side


def drop_none(fields: dict[str, Any]) -> dict[str, Any]:
    """Leave absent fields out: PagerDuty is sent no nulls."""
    return {name: value for name, value in fields.items() if value is not None}


def fit_summary(description: str | None) -> str | None:
    """Cut to PagerDuty's 1024 characters with a visible marker, rather than be refused."""
    return None if description is None else truncate(description, MAX_SUMMARY_LENGTH)


def iso_timestamp(value: datetime | str | None) -> str | None:
    """ISO 8601 as PagerDuty wants it; a naive datetime is taken as UTC."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.isoformat()
    raise TypeError(
        f"timestamp must be a datetime or an ISO 8601 string, got {type(value).__name__}"
    )


def refuse(error: str) -> InvalidEventException:
    """The exception for an event PagerDuty would refuse, caught before it is sent."""
    return InvalidEventException(f"event refused before sending: {error}", errors=[error])


def fit_body(event: dict[str, Any]) -> dict[str, Any]:
    """Keep the body under PagerDuty's size limit: trim details first, else refuse."""
    size = len(encode_json(event))
    if size <= MAX_BODY_BYTES:
        return event
    holder = event.get("payload", event)
    field = "custom_details" if "payload" in event else "details"
    if field in holder:
        original = len(encode_json(holder[field]))
        holder[field] = {
            "trimmed": True,
            "reason": f"{field} too large for PagerDuty's {MAX_BODY_BYTES}-byte event limit",
            "original_size_bytes": original,
        }
        size = len(encode_json(event))
        if size <= MAX_BODY_BYTES:
            logger.warning("PagerDuty event: %s trimmed (%d bytes)", field, original)
            return event
    raise refuse(f"event is {size} bytes of JSON; PagerDuty accepts at most {MAX_BODY_BYTES}")
