"""Small helpers shared by the probe kinds: durations, number formatting, option checks."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from watchdog import durations


def parse_duration(value: Any) -> float:
    """The config's duration grammar and messages (they echo the bad value), without its
    100ms floor (a latency limit may be 50ms)."""
    return durations.parse_duration(value, minimum=0.001)


def fmt_seconds(seconds: float) -> str:
    """"2s", "0.5s", "2.3s": short and stable for summaries that people read in a page."""
    if seconds >= 10:
        return f"{seconds:.0f}s"
    text = f"{seconds:.2f}".rstrip("0").rstrip(".")
    return f"{text}s"


def unknown_keys(
    given: Iterable[str], known: Iterable[str], prefix: str
) -> list[tuple[str, str]]:
    """One problem per unknown key, with a did-you-mean so a typo is fixed in one go."""
    known = sorted(known)
    problems = []
    for key in given:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "known: " + ", ".join(known)
        problems.append((f"{prefix}{key}", f"unknown option; {hint}"))
    return problems


def scalar_text(value: Any) -> str | None:
    """A YAML scalar as text (numbers converted), or None for anything else (bool too,
    since `yes`/`on` turning into "True" would surprise)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return str(value)
    return None
