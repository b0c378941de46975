"""Durations as people write them in YAML ("30s", "1m30s", "500ms", 15) -> float seconds,
and points in time as status, logs and summaries write them.

Kept apart from the config loader so probes and the CLI can parse and print durations
the same way without importing YAML.
"""

from __future__ import annotations

import datetime as dt
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


_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1))
STYLES = ("exact", "measured", "age")


def format_duration(seconds: float, style: str = "exact") -> str:
    """A duration as pd-watchdog writes it everywhere, in one of three precisions:

    * "exact", for config values and messages about them: "500ms", "2.5s", "1m30s"; exact
      to the millisecond, so parse_duration(format_duration(x)) == x for durations written
      in whole milliseconds;
    * "measured", for a time in a probe's summary or a log line ("response took 2.31s",
      "timed out after 0.5s", "retry in 12s"): seconds to 2 decimals under 10 s, whole
      seconds up to a minute, then minutes and seconds ("1m15s");
    * "age", for how long ago something happened or how long it has lasted (status,
      outbox): the two largest units, counted down ("40s", "12m5s", "3h20m", "2d4h").
    """
    if not math.isfinite(seconds):
        return f"{seconds}s"
    if style == "exact":
        total_ms = round(seconds * 1000)
        if total_ms < 1000:
            return f"{total_ms}ms"
        if total_ms < 60_000 and total_ms % 1000:
            return f"{total_ms / 1000:g}s"
        return _in_units(total_ms, len(_UNITS))
    if style == "measured":
        if seconds < 9.995:  # what rounds to 10.00 is "10s"
            return f"{seconds:.2f}".rstrip("0").rstrip(".") + "s"
        whole = round(seconds)
        return f"{whole}s" if whole < 60 else _in_units(whole * 1000, len(_UNITS))
    if style == "age":
        whole = int(seconds)
        return f"{whole}s" if whole < 60 else _in_units(whole * 1000, 2)
    raise ValueError(f"unknown duration style {style!r}: one of {', '.join(STYLES)}")


def _in_units(total_ms: int, most: int) -> str:
    """"1d2h3m4s5ms": `most` units from the largest one present (what is below them is
    dropped), a unit that counts zero left out. `total_ms` is at least 1s."""
    start = next(i for i, (_, size) in enumerate(_UNITS) if total_ms >= size)
    parts = []
    for unit, size in _UNITS[start:start + most]:
        count, total_ms = divmod(total_ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return {dict: "a mapping", list: "a list"}.get(type(value), type(value).__name__)


def format_time(epoch: float, *, seconds: bool = False, zone: bool = True) -> str:
    """A point in time in the host's zone, as pd-watchdog writes it everywhere:
    "2026-12-01 23:40 UTC" (seconds=True: "23:40:05"; zone=False: without the zone)."""
    local = dt.datetime.fromtimestamp(epoch).astimezone()
    text = local.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    return f"{text} {local.strftime('%Z')}" if zone else text


def parse_instant(text: str, zone: dt.tzinfo | None = None) -> float | None:
    """Epoch seconds of an ISO 8601 time ("2026-12-24T22:00", "...+01:00", "...Z"), one
    without an offset being in `zone` (None: the host's); None when it is not one."""
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.astimezone() if zone is None else moment.replace(tzinfo=zone)
    return moment.timestamp()
