"""Durations as people write them in YAML ("30s", "1m30s", "500ms", 15) -> float seconds.

Kept apart from the config loader so probes and the CLI can parse and print durations
the same way without importing YAML.
"""

from __future__ import annotations

import math
import re

MIN_SECONDS = 0.1
MAX_SECONDS = 365 * 86400.0

# Units largest first, each at most once: "1h30m" and "1m30s500ms" read naturally;
# "30s1m" is rejected because it is almost always a typo. Minutes are "m", never "min".
_NUMBER = r"(\d+(?:\.\d+)?|\.\d+)"
_DURATION = re.compile(
    rf"(?:{_NUMBER}d)?(?:{_NUMBER}h)?(?:{_NUMBER}m(?!s))?(?:{_NUMBER}s)?(?:{_NUMBER}ms)?"
)
_UNIT_MS = (86_400_000, 3_600_000, 60_000, 1_000, 1)
_BARE = re.compile(r"[-+]?(\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_HINT = "write e.g. 500ms, 30s, 5m, 1h, 1d, 1m30s, or a number of seconds"


def parse_duration(value: object, minimum: float = MIN_SECONDS) -> float:
    """Return `value` in seconds; ValueError saying what is wrong and how to write it.

    Accepts an int/float of seconds, a numeric string, or unit strings (d, h, m, s, ms),
    combined largest first. Must be at least `minimum` (100ms for intervals: faster is a
    busy loop, not a check; a latency limit may be smaller) and at most 365d.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"must be a duration, not {_type_name(value)} — {_HINT}")
    if isinstance(value, str):
        text = value.strip()
        if _BARE.fullmatch(text):
            seconds = float(text)
        else:
            match = _DURATION.fullmatch(text) if text else None
            if match is None or not any(match.groups()):
                if text.startswith("-"):
                    raise ValueError(f"must be positive, got {value!r} — {_HINT}")
                raise ValueError(f"not a duration: {value!r} — {_HINT}")
            parts = zip(match.groups(), _UNIT_MS, strict=True)
            total_ms = sum(float(n) * unit for n, unit in parts if n)
            seconds = total_ms / 1000
    else:
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
    if math.isnan(seconds):
        raise ValueError(f"not a duration: {value!r} — {_HINT}")
    if seconds <= 0:
        raise ValueError(f"must be positive, got {value!r} — {_HINT}")
    if seconds < minimum:
        least = format_duration(minimum)
        raise ValueError(f"must be at least {least}, got {value!r} — use {least} or more")
    if seconds > MAX_SECONDS:
        raise ValueError(f"must be at most 365d, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """Short human form of a duration ("1m30s", "500ms", "2.5s") for messages.

    Exact to the millisecond, so parse_duration(format_duration(x)) == x for durations
    written in whole milliseconds.
    """
    total_ms = round(seconds * 1000)
    if total_ms < 1000:
        return f"{total_ms}ms"
    if total_ms < 60_000 and total_ms % 1000:
        return f"{total_ms / 1000:g}s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000),
                       ("ms", 1)):
        if total_ms >= size:
            parts.append(f"{total_ms // size}{unit}")
            total_ms %= size
    return "".join(parts)


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return {dict: "a mapping", list: "a list"}.get(type(value), type(value).__name__)
