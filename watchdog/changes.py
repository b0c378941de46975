"""Change events: tell PagerDuty what changed around the checks, beside their incidents.

`pagerduty: {change_events: [reload, maintenance, silence, remediation]}` turns each kind
on (none by default; Events API v2 only). A change event is an outbox Event of action
CHANGE (model.py), so it shares the outbox with triggers and resolves: durable, retried,
dead-lettered when refused, masked. They all have one key (CHANGE_KEY), so one lane sends
them, in the order they happened.

What has been announced (the windows open, the silences active) is kept in the store's meta
table, written in the same transaction as the events that announce it: a restart inside a
window does not announce it again, and a window that ended while the runner was down is
announced as ended at the next start. When the store refuses a write nothing is announced
and the next tick (every second) tries again; a reload's or a remediation's event is then
logged and let go (change events page nobody).

Every method is called with the runner's lock held, like the Recorder's.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from watchdog import logs
from watchdog.durations import format_time
from watchdog.holds import Holds, Silence, Window, matches
from watchdog.model import CHANGE, Check, Event
from watchdog.store import StoreError

if TYPE_CHECKING:
    from watchdog.config import Config
    from watchdog.recorder import Recorder
    from watchdog.store import Store

log = logging.getLogger("watchdog.runner")

CHANGE_KEY = "pd-watchdog/change-events"  # never sent: the outbox lane of every change event
META = "change_events"  # meta row: {"windows": {name: {...}}, "silences": {id: {...}}}
RELOAD, MAINTENANCE, SILENCE, REMEDIATION = "reload", "maintenance", "silence", "remediation"
MAX_NAMES = 20  # names a summary lists before "and N more" (custom_details have them all)

# The fields of a Check a reload may change, as the config calls them (probe: its options).
_COMPARED = tuple(f.name for f in fields(Check)
                  if f.name not in ("name", "probe", "fingerprint", "origin", "kind", "source"))


# ----------------------------------------------------------------------------- reload


@dataclass(frozen=True)
class ChecksDiff:
    """What a reload did to the checks: names added and removed, and for each check whose
    definition changed the keys that changed (the kind's name for its own options)."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def summary(self) -> str:
        """"reload: 1 check added (db); 2 changed (web: interval; api: http)"."""
        parts = []
        if self.added:
            parts.append(f"{_count(self.added)} added ({_names(self.added)})")
        if self.removed:
            parts.append(f"{_count(self.removed)} removed ({_names(self.removed)})")
        if self.changed:
            shown = [f"{name}: {', '.join(keys)}" for name, keys in self.changed.items()]
            parts.append(f"{_count(self.changed)} changed ({_names(shown, sep='; ')})")
        return "reload: " + "; ".join(parts)

    def details(self) -> dict[str, Any]:
        return {"added": list(self.added), "removed": list(self.removed),
                "changed": {name: list(keys) for name, keys in self.changed.items()}}


def diff_checks(old: Iterable[Check], new: Iterable[Check]) -> ChecksDiff:
    """The checks added, removed and changed between two configs, in the new file order
    (removed: the old order). A check whose fingerprint is the same did not change (moving
    it in its file does not count); the kind of a check that changed kind is a changed key."""
    before = {check.name: check for check in old}
    after = {check.name: check for check in new}
    changed: dict[str, tuple[str, ...]] = {}
    for name, check in after.items():
        was = before.get(name)
        if was is None or was.fingerprint == check.fingerprint:
            continue
        keys = [key for key in _COMPARED if getattr(was, key) != getattr(check, key)]
        if was.kind != check.kind:
            keys.insert(0, "kind")
        elif not keys:
            keys = [check.kind]  # nothing else differs: the probe's own options did
        changed[name] = tuple(keys)
    return ChecksDiff(
        added=tuple(name for name in after if name not in before),
        removed=tuple(name for name in before if name not in after),
        changed=changed,
    )


# ----------------------------------------------------------------------------- notes


class ChangeNotes:
    """Appends change events to the outbox for the kinds the config turns on."""

    def __init__(self, recorder: Recorder, store: Store) -> None:
        self.recorder = recorder
        self.store = store
        self.kinds: frozenset[str] = frozenset()
        self.source = ""
        self.secrets: frozenset[str] = frozenset()
        self._announced: dict[str, dict[str, Any]] | None = None  # read from meta when needed
        # when a window next starts or ends, and an announced silence expires (wall clock),
        # and the sooner of the two (asked once per result)
        self._boundaries = {MAINTENANCE: float("inf"), SILENCE: float("inf")}
        self._next_boundary = float("inf")
        self._holds: Holds | None = None  # the windows last looked at (a reload makes new ones)
        self._unwritten = False  # the last announcement was refused by the store: try again

    def apply(self, running: Config, new: Config) -> None:
        """Take a (re)loaded config; for a reload (new is not the running config), note
        what it did to the checks."""
        pd = new.settings.pagerduty
        self.kinds = frozenset(pd.change_events if pd is not None else ())
        self.source = new.pagerduty.source
        self.secrets = new.secrets
        if new is not running:
            diff = diff_checks(running.checks, new.checks)
            if diff:
                self.note(RELOAD, diff.summary(), diff.details())

    def note(self, kind: str, summary: str, details: Mapping[str, Any] | None = None, *,
             timestamp: float | None = None) -> bool:
        """Queue one change event of `kind` if that kind is on; True when it was queued.

        The one way in for every kind; secrets are masked in summary and details here, and
        the event says when it happened (`timestamp`, default now), not when it arrives."""
        if kind not in self.kinds:
            return False
        when = time.time() if timestamp is None else timestamp
        event = self._event(kind, summary, details or {}, when)
        if self.recorder.queue([event]):
            return True
        log.warning("change event not recorded (the state store refuses writes): %s", summary)
        return False

    def remediation(self, check: str, summary: str, details: Mapping[str, Any]) -> bool:
        """A remediation ran: call once per run, after it finished (with the lock held).

        `summary` says what ran and what came of it, in one line ("nginx: remediation
        `systemctl restart nginx` exited 0; the check passes again"); `details` what a
        responder would read: command, started_at, exit_code, output (bounded), fixed.
        Sent only with `remediation` in change_events; True when queued."""
        return self.note(REMEDIATION, summary, {"check": check, **details})

    def _event(self, kind: str, summary: str, details: Mapping[str, Any],
               timestamp: float | None) -> Event:
        if self.secrets:
            summary = logs.mask(summary, self.secrets)
            details = logs.mask_data(dict(details), self.secrets)
        return Event(action=CHANGE, incident_key=CHANGE_KEY, check=kind, summary=summary,
                     severity="info", source=self.source, details={"kind": kind, **details},
                     timestamp=timestamp)

    # ------------------------------------------------------------------ windows, silences

    def result_at(self, holds: Holds, now: float) -> None:
        """A probe result at `now`, before its holds are asked: once a window's boundary or
        a silence's end has passed, announce it first, so that end is recorded before the
        pages it releases (with the silences the holds know, as they will judge)."""
        if now >= self._next_boundary:
            self.tick(holds, [silence for silence in holds.silences if silence.active(now)], now)

    def tick(self, holds: Holds, silences: Sequence[Silence] | None, now: float) -> None:
        """Announce the maintenance windows and silences that began or ended since the last
        tick (silences None: the store could not say; they are looked at next time)."""
        announced = self._load()
        if announced is None:
            return
        events: list[Event] = []
        new = {"windows": dict(announced["windows"]), "silences": dict(announced["silences"])}
        if MAINTENANCE in self.kinds:
            # windows open and close only at their boundaries: between them, nothing to do
            if holds is not self._holds or now >= self._boundaries[MAINTENANCE] \
                    or self._unwritten:
                events += self._windows(holds, now, new["windows"])
        else:
            new["windows"] = {}
            self._boundaries[MAINTENANCE] = float("inf")
        if silences is None:
            pass
        elif SILENCE in self.kinds:
            events += self._silences(holds, silences, now, new["silences"])
            self._boundaries[SILENCE] = min(
                [float("inf")] + [s.until for s in silences if s.id in new["silences"]])
        else:
            new["silences"] = {}
            self._boundaries[SILENCE] = float("inf")
        self._next_boundary = min(self._boundaries.values())
        if new != announced:
            self._unwritten = not self.recorder.queue(events, {META: json.dumps(new)})
            if not self._unwritten:
                self._announced = new

    def _load(self) -> dict[str, dict[str, Any]] | None:
        if self._announced is None:
            if not self.kinds & {MAINTENANCE, SILENCE}:
                return None  # nothing to announce: do not even read
            try:
                text = self.store.get_meta(META)
            except StoreError:
                return None
            data = _json_object(text)
            self._announced = {"windows": _json_object(data.get("windows")),
                               "silences": _json_object(data.get("silences"))}
        return self._announced

    def _windows(self, holds: Holds, now: float, open_: dict[str, Any]) -> list[Event]:
        events = []
        current: dict[str, tuple[Window, float, float]] = {}
        boundaries = [float("inf")]
        for window in holds.windows:
            occurrence = holds.occurrence(window, now)
            if occurrence is not None:
                current[window.name] = (window, *occurrence)
                boundaries.append(occurrence[1])
            elif (upcoming := window.next_start(now)) is not None:
                boundaries.append(upcoming)
        self._boundaries[MAINTENANCE] = min(boundaries)
        self._holds = holds
        for name, was in list(open_.items()):
            if name not in current or current[name][1] != was.get("start"):
                del open_[name]
                ended = min(now, was.get("end") or now)
                covered = _names(was.get("checks") or [])
                events.append(self._event(MAINTENANCE, f"maintenance {name} ended ({covered}): "
                                          "held pages of checks still failing go out now",
                                          {"window": name, "state": "ended", **_times(was)},
                                          ended))
        for name, (window, start, end) in current.items():
            if name not in open_:
                # which checks it covers: worked out only when it is announced, not per tick
                covered = [check for check in holds.names if window.names(check)]
                now_open = {"start": start, "end": end, "patterns": list(window.checks),
                            "checks": covered}
                open_[name] = now_open
                events.append(self._event(MAINTENANCE, f"maintenance {name} started "
                                          f"({_names(now_open['checks'])}) until "
                                          f"{format_time(now_open['end'])}: their triggers are "
                                          "held", {"window": name, "state": "started",
                                                   **_times(now_open)}, now_open["start"]))
        return events

    def _silences(self, holds: Holds, silences: Sequence[Silence], now: float,
                  active: dict[str, Any]) -> list[Event]:
        events = []
        current = {silence.id: silence for silence in silences}
        for silence_id, was in list(active.items()):
            if silence_id in current:
                continue
            del active[silence_id]
            until = was.get("until") or now
            early = now < until - 1.0  # `unsilence` ends it at once; else it expired
            how = "removed" if early else "expired"
            events.append(self._event(SILENCE, f"silence {silence_id} {how} "
                                      f"({' '.join(was.get('matchers') or [])}): held pages of "
                                      "checks still failing go out now",
                                      {"silence": silence_id, "state": how, **_times(was)},
                                      now if early else until))
        for silence_id, silence in current.items():
            if silence_id in active:
                continue
            covered = [name for name in holds.names if matches(silence.patterns, name)]
            about = {"matchers": list(silence.patterns), "checks": covered,
                     "created_by": silence.created_by, "reason": silence.reason,
                     "created_at": silence.created_at, "until": silence.until}
            active[silence_id] = about
            events.append(self._event(SILENCE, f"silence {silence_id} started by "
                                      f"{silence.created_by or 'someone'}: "
                                      f"{' '.join(silence.patterns)} ({_count(covered)}) until "
                                      f"{format_time(silence.until)}: {silence.reason}",
                                      {"silence": silence_id, "state": "started",
                                       **_times(about)},
                                      silence.created_at))
        return events


def _times(about: Mapping[str, Any]) -> dict[str, Any]:
    """`about` with its instants (epoch seconds, as kept in meta) as ISO 8601 UTC, the way
    a responder reads them in custom_details."""
    return {key: _iso(value) if key in _INSTANTS and isinstance(value, int | float) else value
            for key, value in about.items()}


_INSTANTS = frozenset({"start", "end", "created_at", "until"})


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds")


def _json_object(value: Any) -> dict[str, Any]:
    """A dict from the meta row (text) or inside it; {} for anything else (damaged)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def _count(names: Sized) -> str:
    return f"{len(names)} check" + ("" if len(names) == 1 else "s")


def _names(names: Sequence[str], sep: str = ", ") -> str:
    shown = sep.join(names[:MAX_NAMES])
    more = len(names) - MAX_NAMES
    return shown + (f" and {more} more" if more > 0 else "") if names else "no checks"
