"""The group as `pd-watchdog status` shows it: who leads since when (from the store's meta,
written at each takeover), and what the member you ask is doing (its runtime.json)."""

from __future__ import annotations

import json
from typing import Any

from watchdog.durations import format_duration, format_time

LEADER_META = "leader"  # meta: {"member", "group", "since"} of the latest takeover


def leader_record(member: str, group: str, since: float) -> str:
    """The meta value a new leader writes."""
    return json.dumps({"member": member, "group": group, "since": since})


def group_info(meta: str | None, live: dict[str, Any] | None) -> dict[str, Any] | None:
    """Plain data for --json: the group, its leader and since when, this member's phase;
    None when this is no group (no takeover recorded, no member running)."""
    try:
        record = json.loads(meta) if meta else {}
    except ValueError:
        record = {}
    record = record if isinstance(record, dict) else {}
    live = live if live and live.get("group") else None
    if not record and live is None:
        return None
    info: dict[str, Any] = {
        "name": (live or record).get("group"),
        "leader": record.get("member"),
        "leader_since": record.get("since"),
    }
    if live is not None:
        if live.get("phase") == "waiting" and live.get("leader"):
            info["leader"] = live["leader"]  # the live holder, as the server said
        info["member"] = {"name": live.get("member"), "pid": live.get("pid"),
                          "phase": live.get("phase"), "since": live.get("phase_since"),
                          "reason": live.get("phase_reason") or None}
    return info


def group_lines(info: dict[str, Any] | None, now: float) -> list[str]:
    """The lines above the checks' table."""
    if not info:
        return []
    since = info.get("leader_since")
    when = (f" since {format_time(since, seconds=True)} ({format_duration(now - since, 'age')})"
            if isinstance(since, int | float) and info.get("leader") else "")
    lines = [f"group {info['name']}: led by {info.get('leader') or 'nobody'}{when}"]
    member = info.get("member")
    if member:
        phase = member.get("phase")
        text = {"leading": "leading",
                "waiting": f"waiting for the lock (held by {info.get('leader') or 'nobody'})",
                }.get(phase, f"not leading: {member.get('reason')}")
        lines.append(f"this member ({member.get('name')}, pid {member.get('pid')}): {text}")
    else:
        lines.append("this member: not running")
    return [*lines, ""]
