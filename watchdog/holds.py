"""When a trigger must wait: maintenance windows, silences and failing parents.

Given the time, `Holds.hold_for` says which hold applies to a check; the state machine
gets it as an input. No I/O here: windows come from the config, silences from the store
(the runner reads them), parents' states from the runner's memory. Which windows and
silences name a check is worked out once per config or silence change, and a window's
current occurrence once per boundary, so asking costs a few dictionary lookups per result.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo

from cronsim import CronSim

from watchdog.durations import format_time
from watchdog.model import CheckState, Hold

_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class Window:
    """A maintenance window: every `schedule` (cron, in `tz`) for `duration` seconds, or
    once from `start` to `end` (epoch seconds)."""

    name: str
    checks: tuple[str, ...]
    duration: float = 0.0
    schedule: str | None = None
    tz: tzinfo | None = None
    start: float | None = None
    end: float | None = None
    origin: str = ""

    def occurrence(self, now: float) -> tuple[float, float] | None:
        """(start, end) of the occurrence `now` falls in, else None."""
        if self.schedule is None:
            if self.start is not None and self.end is not None and self.start <= now < self.end:
                return self.start, self.end
            return None
        # The latest start at or before now (cronsim's reverse walk excludes its own
        # instant, hence the tick); DST is cronsim's to get right, in the window's zone.
        latest = next(CronSim(self.schedule, datetime.fromtimestamp(now, self.tz) + _TICK,
                              reverse=True), None)
        if latest is None:
            return None
        begin = latest.timestamp()
        return (begin, begin + self.duration) if now < begin + self.duration else None

    def next_start(self, now: float) -> float | None:
        """When the next occurrence after `now` starts (None: a one-off that has begun)."""
        if self.schedule is None:
            return self.start if self.start is not None and self.start > now else None
        upcoming = next(CronSim(self.schedule, datetime.fromtimestamp(now, self.tz)), None)
        return upcoming.timestamp() if upcoming is not None else None

    def names(self, check: str) -> bool:
        return matches(self.checks, check)


@dataclass(frozen=True)
class Silence:
    """An ad-hoc hold set from the command line; it always ends by itself."""

    id: str
    patterns: tuple[str, ...]
    reason: str
    created_at: float
    until: float
    created_by: str = ""

    def active(self, now: float) -> bool:
        return self.created_at <= now < self.until


def matches(patterns: Iterable[str], name: str) -> bool:
    """Shell-style globs on check names (* ? [abc]), case-sensitive like the names."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def unmatched(patterns: Iterable[str], names: Iterable[str]) -> list[str]:
    """The patterns that name no check (for validate's warning and silence's refusal)."""
    names = list(names)
    return [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in names)]


@dataclass
class _Cached:
    """A window's answer, good while `valid_from <= now < valid_until`."""

    valid_from: float
    valid_until: float
    occurrence: tuple[float, float] | None


@dataclass
class Holds:
    """Every check's holds, cheap to ask once per result."""

    windows: Sequence[Window] = ()
    names: Iterable[str] = ()
    _by_check: dict[str, list[Window]] = field(default_factory=dict, init=False)
    _silenced: dict[str, list[Silence]] = field(default_factory=dict, init=False)
    _cache: dict[str, _Cached] = field(default_factory=dict, init=False)
    silences: tuple[Silence, ...] = field(default=(), init=False)

    def __post_init__(self) -> None:
        self.names = list(self.names)
        for name in self.names:
            mine = [window for window in self.windows if window.names(name)]
            if mine:
                self._by_check[name] = mine

    def set_silences(self, silences: Iterable[Silence]) -> None:
        self.silences = tuple(silences)
        self._silenced = {}
        for silence in self.silences:
            for name in self.names:
                if matches(silence.patterns, name):
                    self._silenced.setdefault(name, []).append(silence)

    def occurrence(self, window: Window, now: float) -> tuple[float, float] | None:
        """The window's current occurrence, recomputed only when `now` leaves the cached span."""
        cached = self._cache.get(window.name)
        if cached is None or not cached.valid_from <= now < cached.valid_until:
            occurrence = window.occurrence(now)
            if occurrence is not None:
                cached = _Cached(occurrence[0], occurrence[1], occurrence)
            else:
                upcoming = window.next_start(now)
                cached = _Cached(now, upcoming if upcoming is not None else float("inf"), None)
            self._cache[window.name] = cached
        return cached.occurrence

    def hold_for(
        self, name: str, now: float, failing_parents: Sequence[str] = ()
    ) -> Hold | None:
        """The hold on `name`'s triggers now: a silence, else a maintenance window (the one
        that lasts longest), else a failing parent; None when its pages may go out."""
        if not failing_parents and name not in self._by_check and name not in self._silenced:
            return None  # most checks, most of the time: no lists built, nothing sorted
        holds = self.all_for(name, now, failing_parents)
        return holds[0] if holds else None

    def all_for(self, name: str, now: float, failing_parents: Sequence[str] = ()) -> list[Hold]:
        """Every hold on `name` now, the one that decides first (for `status`)."""
        found: list[Hold] = []
        silences = [s for s in self._silenced.get(name, ()) if s.active(now)]
        for silence in sorted(silences, key=lambda s: -s.until):
            found.append(Hold(f"silenced by {silence.id}: {silence.reason}", silence.until))
        active = []
        for window in self._by_check.get(name, ()):
            occurrence = self.occurrence(window, now)
            if occurrence is not None:
                active.append((occurrence[1], window.name))
        for end, window_name in sorted(active, reverse=True):
            found.append(Hold(f"maintenance {window_name}", end))
        for parent in failing_parents:
            found.append(Hold(f"parent {parent} failing"))
        return found

    def windows_of(self, name: str) -> list[Window]:
        return list(self._by_check.get(name, ()))


def describe(hold: Hold) -> str:
    """"maintenance nightly until 2026-12-06 04:00 CET": how status and logs say a hold."""
    if hold.until is None:
        return hold.reason
    return f"{hold.reason} until {format_time(hold.until, seconds=True)}"


def passing(state: CheckState | None) -> bool:
    """A parent lets its children page only while it passes: no failure in a row and no
    open incident (an unknown parent counts as passing; it is confirmed before a page)."""
    return state is None or (state.failures == 0 and not state.triggered)


def failing_parents(parents: Sequence[str], passing: Mapping[str, bool]) -> list[str]:
    """The parents that are not passing (unknown parents count as passing: a parent that
    was never probed is confirmed by a fresh probe before a child pages)."""
    return [parent for parent in parents if not passing.get(parent, True)]
