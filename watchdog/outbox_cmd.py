"""`pd-watchdog outbox`: see what waits for PagerDuty and what it refused; retry or drop it.

Safe beside a live runner: it opens the state file as a second SQLite writer (never the run
lock), each change is one transaction, and the runner's sender finds re-queued events at its
next look at the outbox (within seconds).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from watchdog.config import Config
from watchdog.logs import mask, mask_data
from watchdog.model import TRIGGER
from watchdog.store import Store

log = logging.getLogger("watchdog.outbox")

ALL = "all"


def collect(store: Store, now: float) -> dict[str, Any]:
    """Pending events (oldest first) and dead letters (newest first), as plain data."""
    pending = [
        {
            "id": item.id,
            "action": item.event.action,
            "incident_key": item.event.incident_key,
            "check": item.event.check,
            "summary": item.event.summary,
            "age": max(0.0, now - item.created_at),
            "attempts": item.attempts,
            "last_error": item.last_error,
        }
        for item in store.pending(limit=10_000)
    ]
    dead = []
    for letter in store.dead_letters(limit=None):
        event = letter["event"] if isinstance(letter["event"], dict) else {}
        dead.append({
            "id": letter["id"],
            "action": event.get("action", "?"),
            "incident_key": event.get("incident_key", "?"),
            "check": event.get("check", "?"),
            "summary": event.get("summary", ""),
            "failed_ago": max(0.0, now - letter["failed_at"]),
            "attempts": letter["attempts"],
            "reason": letter["reason"],
        })
    return {"pending": pending, "dead_letters": dead}


def render(data: dict[str, Any], secrets: frozenset[str]) -> str:
    """Two readable tables; secrets masked."""
    from watchdog.status import age  # one duration formatter for status and outbox

    lines = [f"pending: {len(data['pending'])}"]
    lines += _table(
        ("ID", "ACTION", "INCIDENT KEY", "AGE", "TRIES", "LAST ERROR"),
        [(str(p["id"]), p["action"], p["incident_key"], age(p["age"]), str(p["attempts"]),
          (p["last_error"] or "")[:100]) for p in data["pending"]],
    )
    lines += ["", f"dead letters: {len(data['dead_letters'])}"]
    lines += _table(
        ("ID", "ACTION", "INCIDENT KEY", "FAILED", "REASON"),
        [(str(d["id"]), d["action"], d["incident_key"], age(d["failed_ago"]) + " ago",
          d["reason"][:160]) for d in data["dead_letters"]],
    )
    if data["dead_letters"]:
        lines += ["", "retry: pd-watchdog outbox CONFIG --retry ID|all; "
                      "drop: pd-watchdog outbox CONFIG --drop ID|all --reason TEXT"]
    return mask("\n".join(line.rstrip() for line in lines), secrets)


def render_json(data: dict[str, Any], secrets: frozenset[str]) -> str:
    return json.dumps(mask_data(data, secrets), indent=2, sort_keys=True, ensure_ascii=False)


def _table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    if not rows:
        return []
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head) - 1)]
    return ["  " + "  ".join(col.ljust(widths[i]) for i, col in enumerate(row[:-1]))
            + "  " + row[-1] for row in [head, *rows]]


def chosen(store: Store, which: str) -> list[dict[str, Any]]:
    """The dead letters `which` names: ALL, or one id; ValueError for anything else."""
    letters = collect(store, time.time())["dead_letters"]
    if which == ALL:
        return letters
    try:
        wanted = int(which)
    except ValueError:
        raise ValueError(f"--retry/--drop take a dead letter's ID or 'all', not {which!r}") \
            from None
    found = [letter for letter in letters if letter["id"] == wanted]
    if not found:
        raise ValueError(f"no dead letter with ID {wanted} (see `pd-watchdog outbox CONFIG`)")
    return found


def retry(store: Store, which: str) -> tuple[list[int], list[str]]:
    """Re-queue dead letters; returns (re-queued ids, why others were skipped).

    A trigger is skipped when its check is no longer failing (or gone): sent now, it would
    open an incident that nothing resolves. Its resolve, if any, is retried as usual."""
    letters = chosen(store, which)
    open_keys = {row.incident_key for row in store.load_checks().values() if row.state.triggered}
    skipped, ids = [], []
    for letter in letters:
        if letter["action"] == TRIGGER and letter["incident_key"] not in open_keys:
            skipped.append(f"{letter['id']}: trigger of {letter['incident_key']} skipped: its "
                           "check is not failing any more, so this page would never be "
                           "resolved; drop it with --drop")
            continue
        ids.append(letter["id"])
    return store.requeue_dead_letters(ids), skipped


def drop(store: Store, which: str, reason: str) -> list[int]:
    """Forget dead letters, logging each with the reason given."""
    letters = chosen(store, which)
    dropped = store.drop_dead_letters([letter["id"] for letter in letters])
    for letter in letters:
        if letter["id"] in dropped:
            log.warning("dropped dead letter %d (%s %s): %s", letter["id"], letter["action"],
                        letter["incident_key"], reason)
    return dropped


def open_store(config: Config, *, write: bool) -> Store:
    """The state file (which must exist), for reading or for writing beside a live runner
    (which holds the run lock: a second writer needs none)."""
    Store.for_config(config, readonly=True).close()  # a clear error when there is no state
    return Store.for_config(config, readonly=not write)
