"""`pd-watchdog status`: what the runner knows, read from its state file without disturbing it.

The state file says what was recorded; a live runner's runtime.json adds what only it knows
(which checks have not run since it started, changes it holds in memory while the file takes
no writes). `collect` works without a loadable config too: the runner may be running the
previous one, and then the state is what the operator needs.
"""

from __future__ import annotations

import json
import time
from typing import Any

from watchdog import remediation, runtime, status_holds
from watchdog.durations import format_duration, format_time
from watchdog.holds import Window
from watchdog.leadership.report import LEADER_META, group_info, group_lines
from watchdog.logs import mask, mask_data
from watchdog.model import Check, CheckState, Policy
from watchdog.state import describe
from watchdog.store import Store, StoredCheck
from watchdog.words import plural

PENDING = "pending"
PERFDATA_SHOWN = 3  # perfdata values in the table's summary column


def collect(state_dir: str, checks: tuple[Check, ...] | None = (), now: float | None = None,
            windows: tuple[Window, ...] = (), store: Store | None = None) -> dict[str, Any]:
    """Plain data for --json and for the table: every check, holds, then the outbox.

    checks=None: the config did not load, so whether a check is configured is unknown.
    `store` (closed here): the config's, e.g. a group's PostgreSQL; else state_dir's file."""
    now = time.time() if now is None else now
    store = store or Store(state_dir, readonly=True)
    try:
        stored = store.load_checks()
        outbox = store.outbox_stats(now)
        dead = store.dead_letters(limit=20)
        silences = store.silences(now)
        runs = remediation.stored_runs(store, checks or (), now)
        leader = store.get_meta(LEADER_META)
    finally:
        store.close()
    live = runtime.read(state_dir)
    configured = {check.name: check for check in checks or ()}
    rows = [
        _row(name, configured.get(name), stored.get(name), live, now)
        for name in list(configured) + sorted(set(stored) - set(configured))
    ]
    for row in rows:
        row["remediation"] = remediation.status_entry(configured.get(row["name"]), runs, now)
    if checks is None:
        for row in rows:
            row["configured"] = None
    states = {name: row.state for name, row in stored.items()}
    holding = status_holds.annotate(rows, checks or (), windows, silences, states, now)
    return {
        "state_dir": state_dir,
        "runner": _runner(live),
        "group": group_info(leader, live),
        "checks": rows,
        **holding,
        "outbox": outbox,
        "dead_letters": dead,
    }


def _row(name: str, check: Check | None, row: StoredCheck | None, live: dict | None,
         now: float) -> dict[str, Any]:
    policy = Policy.of(check) if check else Policy(name=name, incident_key="", source="")
    entry: dict[str, Any] = {
        "name": name,
        "configured": check is not None,
        "incident_key": row.incident_key if row else (check.incident_key if check else ""),
        "origin": check.origin if check else None,
    }
    state = row.state if row else CheckState()
    last_result, last_at = (row.last_result, row.last_at) if row else (None, None)
    kept = ((live or {}).get("checks") or {}).get(name)
    if kept and kept.get("state"):  # newer than the file: the runner could not record it
        state = CheckState.from_dict(kept["state"])
        entry["unrecorded"] = True
        if kept.get("summary") is not None:
            last_result = {"ok": kept.get("ok"), "summary": kept["summary"]}
            last_at = kept.get("at")
    # runtime.json is up to a second older than the file: a result since counts as a run
    since = None
    if live is not None:
        since = ((live.get("changed") or {}).get(name)) or live.get("started_at")
    not_run = last_result is None or (since is not None and (last_at or 0) < since)
    entry.update(
        state=PENDING if not_run and not state.triggered else describe(state, policy),
        pending=not_run,
        triggered=state.triggered,
        severity=state.severity,
        failures=state.failures,
        passes=state.passes,
        triggered_since=row.triggered_since if row else None,
        failing_since=row.failing_since if row and state.failures else None,
        last_result=last_result,
        last_at=last_at,
        age=None if last_at is None else max(0.0, now - last_at),
    )
    return entry


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
        "started_at": live.get("started_at"),
    }


def render_json(data: dict[str, Any], secrets: frozenset[str]) -> str:
    # Masked before encoding: a secret with a quote or a backslash changes once escaped.
    masked = mask_data(data, secrets)
    return json.dumps(masked, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def render_table(data: dict[str, Any], secrets: frozenset[str], now: float | None = None) -> str:
    now = time.time() if now is None else now
    lines = [("CHECK", "STATE", "LAST", "AGE", "INCIDENT KEY", "SUMMARY")]
    for row in data["checks"]:
        result = row["last_result"] or {}
        lines.append((
            row["name"],
            _state_text(row, now),
            _result_label(result),
            age(row["age"]),
            row["incident_key"],
            _summary(result),
        ))
    widths = [max(len(str(line[i])) for line in lines) for i in range(5)]
    text = group_lines(data.get("group"), now) + _runner_lines(data.get("runner") or {})
    text += [
        "  ".join(str(col).ljust(widths[i]) for i, col in enumerate(line[:5])) + "  " + line[5]
        for line in lines
    ]
    text += [""] + status_holds.lines(data) + _outbox_lines(data, now)
    return mask("\n".join(line.rstrip() for line in text), secrets)


def _state_text(row: dict[str, Any], now: float) -> str:
    state = row["state"]
    if row.get("triggered_since"):
        state += f" {age(now - row['triggered_since'])}"
    if row.get("failing_since") and row["failures"]:
        state += (f", failing since {_clock(row['failing_since'])} "
                  f"({plural(row['failures'], 'result')})")
    state += remediation.status_text(row.get("remediation"), now)
    if row.get("unrecorded"):
        state += " (in memory only)"
    if row["configured"] is False:
        state += " (not in config)"
    return state


def _result_label(result: dict[str, Any]) -> str:
    """OK/WARNING/CRITICAL/UNKNOWN for plugins (their Nagios state), else OK or FAIL."""
    if not result:
        return "-"
    details = result.get("details") if isinstance(result.get("details"), dict) else {}
    state = details.get("state")
    if isinstance(state, str) and state:
        return state
    return "OK" if result.get("ok") else "FAIL"


def _summary(result: dict[str, Any]) -> str:
    """The probe's own words (for HTTP, the assertion that failed) and the first perfdata."""
    summary = (result.get("summary") or "")[:80]
    details = result.get("details") if isinstance(result.get("details"), dict) else {}
    perfdata = details.get("perfdata")
    if isinstance(perfdata, dict) and perfdata:
        shown = [_perf(label, item) for label, item in list(perfdata.items())[:PERFDATA_SHOWN]]
        summary += " | " + " ".join(shown)
    return summary


def _perf(label: str, item: Any) -> str:
    value = item.get("value") if isinstance(item, dict) else item
    number = f"{value:g}" if isinstance(value, int | float) else str(value)
    uom = item.get("uom") if isinstance(item, dict) else ""
    return f"{label}={number}{uom or ''}"


def _outbox_lines(data: dict[str, Any], now: float) -> list[str]:
    box = data["outbox"]
    sent = box.get("sent", {})
    dry = box.get("dry_run") or {}
    dry_text = (f"; a dry run logged {plural(dry.get('trigger', 0), 'trigger')}, "
                f"{plural(dry.get('resolve', 0), 'resolve')} (not sent)"
                if dry.get("trigger") or dry.get("resolve") else "")
    lines = [
        f"outbox: {box['pending']} pending (oldest {age(box['oldest_pending_age'])}), "
        f"{plural(box['dead_letters'], 'dead letter')}; sent "
        f"{plural(sent.get('trigger', 0), 'trigger')}, {plural(sent.get('resolve', 0), 'resolve')}"
        f"{dry_text}"
    ]
    for letter in data["dead_letters"][:5]:
        event = letter["event"] if isinstance(letter["event"], dict) else {}
        lines.append(
            f"  dead letter {letter['id']}: {event.get('action', '?')} "
            f"{event.get('incident_key', '?')}, {age(now - letter['failed_at'])} ago: "
            f"{letter['reason'][:160]}"
        )
    if data["dead_letters"]:
        lines.append("  (all of them, and how to retry or drop them: pd-watchdog outbox CONFIG)")
    return lines


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
        f"RUNNER DEGRADED for {age(runner.get('degraded_for'))} (pid {runner.get('pid')}): "
        f"{degraded}",
        "  checks marked (in memory only) show the runner's newest state, which the state "
        "file does not have yet",
        "",
    ]


def _clock(stamp: float) -> str:
    return format_time(stamp, seconds=True, zone=False)


def age(seconds: float | None) -> str:
    """How long ago, or for how long: "-" when unknown, else "40s", "12m5s", "3h20m"."""
    if seconds is None:
        return "-"
    return format_duration(seconds, "age")
