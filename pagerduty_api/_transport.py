"""Helpers shared by the resources: JSON encoding, key redaction and retry arithmetic."""

from __future__ import annotations

# Standard library imports
import json
import math
import random
from collections.abc import Callable, Iterable
from typing import Any

TRUNCATION_MARKER = "… [truncated]"
BODY_TEXT_LIMIT = 1000  # characters of an answer kept on an exception
BACKOFF_BASE = 0.5  # seconds
BACKOFF_CAP = 30.0  # seconds
# Events API v2 severities. Here, not in alert.py, so that pd-watchdog's config can name them
# without importing requests (alert.py does, and re-exports this).
SEVERITIES = ("critical", "error", "warning", "info")


def mask_key(key: str | None) -> str:
    """Show at most the last 4 characters: enough to tell keys apart, never enough to use one
    (nothing at all of a secret under 16 characters, where 4 would be a good part of it)."""
    if not key or len(key) < 16:
        return "…"
    return "…" + key[-4:]


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every secret in text by its mask_key(): the one masking of pagerduty_api and of
    pd-watchdog (its logs, status, outbox, probe output and delivery errors use it too).

    Secrets are taken in the order given (give the longest first when one may hold another).
    Text holding none comes back as the same object, unchanged.
    """
    for secret in secrets:
        if not secret or secret not in text:
            continue
        # Repeat: with a periodic secret, a mask's tail plus the text after it can re-form it.
        mask = mask_key(secret)
        while secret != mask and secret in text:
            text = text.replace(secret, mask)
    return text


def truncate(text: str, limit: int) -> str:
    """Cut text to limit characters, ending with a visible marker so the cut is not silent."""
    if len(text) <= limit:
        return text
    return text[: limit - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER


def jsonable(value: Any) -> Any:
    """Turn what JSON cannot carry (NaN, datetimes, sets, odd keys) into what PagerDuty accepts."""
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, str | int | float):
        return value
    return str(value)


def encode_json(value: Any) -> bytes:
    """Encode exactly the bytes that are sent, so size checks measure what PagerDuty gets."""
    text = json.dumps(jsonable(value), ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8", errors="replace")


def parse_retry_after(value: str | None) -> float | None:
    """Read a Retry-After given in seconds; an HTTP date or nonsense counts as absent."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def backoff_delay(
    retry: int,
    jitter: Callable[[float, float], float] = random.uniform,
    *,
    base: float = BACKOFF_BASE,
    cap: float = BACKOFF_CAP,
    retry_after: float | None = None,
) -> float:
    """Exponential backoff with full jitter, so many senders do not retry in step:
    jitter(0, min(cap, base * 2**retry)) for the retry-th retry (from 0), but never less than
    retry_after (the Retry-After PagerDuty asked for). The one backoff of the client and of
    pd-watchdog's sender, each with its own base and cap."""
    delay = jitter(0.0, min(cap, base * 2 ** min(max(retry, 0), 60)))
    if retry_after is not None and retry_after > delay:
        return retry_after
    return delay


def extract_errors(data: Any) -> list[str]:
    """PagerDuty's `errors` from a decoded answer, as strings; anything else gives none."""
    errors = data.get("errors") if isinstance(data, dict) else None
    if isinstance(errors, list):
        return [str(error) for error in errors]
    if isinstance(errors, str):
        return [errors]
    return []
