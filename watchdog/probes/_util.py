"""Small helpers shared by the probe kinds: durations, number formatting, option checks."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*", re.ASCII)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
DURATION_HELP = "must be a positive duration such as 500ms, 2s, 1m, 1h or a number of seconds"


def parse_duration(value: Any) -> float:
    """Seconds from `2`, `0.5`, "500ms", "2s", "1m" or "1h"; ValueError(DURATION_HELP) else.

    Kept local (not a dependency) because these four units are all a check needs.
    """
    if isinstance(value, bool):
        raise ValueError(DURATION_HELP)
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.fullmatch(value)
        if not match:
            raise ValueError(DURATION_HELP)
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(DURATION_HELP)
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(DURATION_HELP)
    return seconds


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
