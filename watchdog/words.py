"""Words for messages people read: "1 check", "2 checks"."""

from __future__ import annotations

from watchdog.model import ProbeResult


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`count` and the noun, singular for exactly one ("1 file", "0 files", "2 entries")."""
    return f"{count} {noun if count == 1 else (many or noun + 's')}"


def result_label(result: ProbeResult, severity: str) -> str:
    """What a person calls a result: the plugin's Nagios state when it has one (OK, WARNING,
    CRITICAL, UNKNOWN), else OK or the severity it would page with."""
    state = result.details.get("state") if isinstance(result.details, dict) else None
    if isinstance(state, str) and state:
        return state
    return "OK" if result.ok else (result.severity or severity).upper()
