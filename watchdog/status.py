"""`pd-watchdog status`: what the runner knows, read from its state file without disturbing it."""

from __future__ import annotations

import json
import time
from typing import Any

from watchdog import runtime
from watchdog.config import Config
from watchdog.logs import mask, mask_data
from watchdog.model import CheckState, Policy
from watchdog.state import describe
from watchdog.store import Store


def collect(config: Config, now: float | None = None) -> dict[str, Any]:
    """Plain data for --json and for the table: every check, then the outbox."""
    now = time.time() if now is None else now
    store = Store(config.state_dir, readonly=True)
    try:
        stored = store.load_checks()
        outbox = store.outbox_stats(now)
        dead = store.dead_letters(limit=20)
    finally:
        store.close()
    rows = []
    configured = {check.name: check for check in config.checks}
    for name in list(configured) + sorted(set(stored) - set(configured)):
        row = stored.get(name)
        check = configured.get(name)
        policy = Policy.of(check) if check else Policy(name=name, incident_key="", source="")
        entry: dict[str, Any] = {"name": name, "configured": check is not None}
        if row is None:
            entry.update(
                state="not run yet",
                incident_key=check.incident_key if check else "",
                triggered=False,
                failures=0,
                passes=0,
                triggered_since=None,
                last_result=None,
                last_at=None,
                age=None,
            )
        else:
            entry.update(
                state=describe(row.state, policy),
                incident_key=row.incident_key,
                triggered=row.state.triggered,
                severity=row.state.severity,
                failures=row.state.failures,
                passes=row.state.passes,
                triggered_since=row.triggered_since,
                last_result=row.last_result,
                last_at=row.last_at,
                age=None if row.last_at is None else max(0.0, now - row.last_at),
            )
        rows.append(entry)
    live = runtime.read(config.state_dir)
    if live is not None:
        _overlay(rows, live, configured, now)
    return {
        "state_dir": config.state_dir,
        "runner": _runner(live),
        "checks": rows,
        "outbox": outbox,
        "dead_letters": dead,
    }


def _runner(live: dict[str, Any] | None) -> dict[str, Any]:
    if live is None:
        return {"running": False, "degraded": None}
    return {
        "running": True,
        "pid": live.get("pid"),
        "degraded": live.get("degraded"),
        "degraded_for": live.get("degraded_for"),
        "dry_run": live.get("dry_run"),
        "unrecorded_changes": live.get("held", 0),
    }


def _overlay(rows: list[dict[str, Any]], live: dict[str, Any], configured: dict,
             now: float) -> None:
    """Show the newest state the live runner holds in memory, which the file has not got."""
    held = live.get("checks") or {}
    for entry in rows:
        kept = held.get(entry["name"])
        if not kept or not kept.get("state"):
            continue
        state = CheckState.from_dict(kept["state"])
        check = configured.get(entry["name"])
        policy = Policy.of(check) if check else Policy(name=entry["name"], incident_key="",
                                                        source="")
        entry.update(
            state=describe(state, policy),
            triggered=state.triggered,
            severity=state.severity,
            failures=state.failures,
            passes=state.passes,
            unrecorded=True,
        )
        if kept.get("summary") is not None:
            entry["last_result"] = {"ok": kept.get("ok"), "summary": kept["summary"]}
            entry["last_at"] = kept.get("at")
            entry["age"] = None if kept.get("at") is None else max(0.0, now - kept["at"])


def render_json(data: dict[str, Any], secrets: frozenset[str]) -> str:
    # Masked before encoding: a secret with a quote or a backslash changes once escaped.
    masked = mask_data(data, secrets)
    return json.dumps(masked, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def render_table(data: dict[str, Any], secrets: frozenset[str], now: float | None = None) -> str:
    now = time.time() if now is None else now
    lines = [("CHECK", "STATE", "LAST", "AGE", "INCIDENT KEY", "SUMMARY")]
    for row in data["checks"]:
        state = row["state"]
        if row.get("unrecorded"):
            state += " (in memory only)"
        if row.get("triggered_since"):
            state += f" {_age(now - row['triggered_since'])}"
        if not row["configured"]:
            state += " (not in config)"
        result = row["last_result"] or {}
        last = "-" if not result else ("OK" if result.get("ok") else "FAIL")
        lines.append(
            (
                row["name"],
                state,
                last,
                _age(row["age"]),
                row["incident_key"],
                (result.get("summary") or "")[:80],
            )
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(5)]
    text = _runner_lines(data.get("runner") or {})
    text += [
        "  ".join(str(col).ljust(widths[i]) for i, col in enumerate(line[:5])) + "  " + line[5]
        for line in lines
    ]
    box = data["outbox"]
    sent = box.get("sent", {})
    text.append("")
    text.append(
        f"outbox: {box['pending']} pending (oldest {_age(box['oldest_pending_age'])}), "
        f"{box['dead_letters']} dead letters; sent {sent.get('trigger', 0)} triggers, "
        f"{sent.get('resolve', 0)} resolves"
    )
    for letter in data["dead_letters"]:
        text.append(f"  dead letter: {letter}")
    return mask("\n".join(line.rstrip() for line in text), secrets)


def _runner_lines(runner: dict[str, Any]) -> list[str]:
    return _degraded_lines(runner) + _dry_run_lines(runner)


def _dry_run_lines(runner: dict[str, Any]) -> list[str]:
    reason = runner.get("dry_run")
    if not reason:
        return []
    if reason == "--dry-run":
        return [f"RUNNER IN DRY-RUN (pid {runner.get('pid')}, --dry-run): events are logged, "
                "not sent to PagerDuty", ""]
    return [
        f"RUNNER IN DRY-RUN (pid {runner.get('pid')}): {reason}; events are logged, not sent "
        "to PagerDuty, so nothing pages",
        "  give the runner its routing key (the example config reads PAGERDUTY_ROUTING_KEY, "
        "from /etc/pd-watchdog/env) and restart it, or run it with --dry-run to mean it",
        "",
    ]


def _degraded_lines(runner: dict[str, Any]) -> list[str]:
    degraded = runner.get("degraded")
    if not degraded:
        return []
    return [
        f"RUNNER DEGRADED for {_age(runner.get('degraded_for'))} (pid {runner.get('pid')}): "
        f"{degraded}",
        "  checks marked (in memory only) show the runner's newest state, which the state "
        "file does not have yet",
        "",
    ]


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
