"""Small helpers shared by the probe kinds: durations, number formatting, option checks."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from watchdog import durations

DURATION_HELP = "must be a positive duration such as 500ms, 2s, 1m30s or a number of seconds"


def parse_duration(value: Any) -> float:
    """The config's duration grammar, without its 100ms floor (a latency limit may be 50ms)."""
    try:
        return durations.parse_duration(value, minimum=0.001)
    except ValueError as exc:
        raise ValueError(f"{DURATION_HELP} ({exc})") from None


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
