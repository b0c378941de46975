"""Small helpers shared by the probe kinds: durations read and written as probes do."""

from __future__ import annotations

from typing import Any

from watchdog import durations


def parse_duration(value: Any) -> float:
    """The config's duration grammar and messages (they echo the bad value), without its
    100ms floor (a latency limit may be 50ms)."""
    return durations.parse_duration(value, minimum=0.001)


def fmt_seconds(seconds: float) -> str:
    """"2s", "0.5s", "2.31s", "1m15s": durations.format_duration's "measured" style, the
    one for summaries that people read in a page."""
    return durations.format_duration(seconds, "measured")
