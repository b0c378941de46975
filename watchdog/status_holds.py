"""What `status` says about holds: each check's ("held: <why> until <when>"), the
maintenance windows with their next start, and the active silences.

Worked out the way the runner does (watchdog.holds), from the config's windows, the
store's silences and the stored states of parents, so it is right beside a live runner
and with none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from watchdog.durations import format_time
from watchdog.holds import Holds, Silence, Window, describe, passing
from watchdog.model import Check, CheckState


def annotate(rows: list[dict[str, Any]], checks: Sequence[Check], windows: Sequence[Window],
             silences: Sequence[Silence], states: Mapping[str, CheckState],
             now: float) -> dict[str, Any]:
    """Add "held" (a list of sentences; empty when none) to each check row; return the
    windows' and silences' part of the status."""
    holds = Holds(tuple(windows), [check.name for check in checks])
    holds.set_silences(silences)
    parents = {check.name: check.depends_on for check in checks}
    for row in rows:
        failing = [p for p in parents.get(row["name"], ()) if not passing(states.get(p))]
        found = holds.all_for(row["name"], now, failing)
        row["held"] = [describe(hold) for hold in found]
        row["held_until"] = found[0].until if found else None
        row["flapping"] = states.get(row["name"], CheckState()).flapping
    return {
        "maintenance": [_window(holds, window, now) for window in windows],
        "silences": [{"id": s.id, "patterns": list(s.patterns), "reason": s.reason,
                      "until": s.until, "created_by": s.created_by} for s in silences],
    }


def _window(holds: Holds, window: Window, now: float) -> dict[str, Any]:
    occurrence = holds.occurrence(window, now)
    return {
        "name": window.name, "checks": list(window.checks), "origin": window.origin,
        "schedule": window.schedule, "open_until": occurrence[1] if occurrence else None,
        "next_start": window.next_start(now),
    }


def lines(data: dict[str, Any]) -> list[str]:
    """The table's part: held checks, windows, silences (nothing when there are none)."""
    out = []
    held = [row for row in data["checks"] if row.get("held")]
    if held:
        out.append("held back (triggers wait; resolves still go out):")
        out += [f"  {row['name']}: held: {row['held'][0]}" for row in held]
    for window in data.get("maintenance", ()):
        when = (f"open until {format_time(window['open_until'])}" if window["open_until"]
                else f"next {format_time(window['next_start'])}" if window["next_start"]
                else "over")
        out.append(f"maintenance {window['name']} ({' '.join(window['checks'])}): {when}")
    for silence in data.get("silences", ()):
        out.append(f"silence {silence['id']} ({' '.join(silence['patterns'])}) until "
                   f"{format_time(silence['until'])} by {silence['created_by']}: "
                   f"{silence['reason']}")
    return out + [""] if out else []
