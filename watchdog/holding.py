"""The runner's side of holding pages back: what the state machine is told with each result.

`HoldKeeper` knows the config's windows and dependencies and the store's silences, and for
each result works out the `Inputs` (the time, the hold that applies, a parent's failing
dependents). It also wins the race of a child crossing fail_after before its slower parent
is probed again: such a child's trigger waits ("checking parents first"), its parents are
probed at once, and the child is probed again once they have answered; only then, with
every parent's fresh state known, may it page. It decides nothing itself (that is
state.step's) and does no I/O but reading silences through the store it is handed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from watchdog.durations import format_duration
from watchdog.holds import Holds, Silence, Window, describe, passing
from watchdog.model import TRIGGER, Check, CheckState, Hold, Inputs, Policy, ProbeResult
from watchdog.state import step

log = logging.getLogger("watchdog.runner")


@dataclass
class Asked:
    """What one result needs besides the state machine: its inputs, and the checks to
    probe now (a child's parents, or a child whose parents have all answered)."""

    inputs: Inputs
    probe_now: list[str] = field(default_factory=list)


class HoldKeeper:
    """Holds, dependencies and silences for every check of the running config."""

    def __init__(self) -> None:
        self.holds = Holds()
        self.children: dict[str, list[str]] = {}
        self.parents: dict[str, tuple[str, ...]] = {}
        self._confirming: dict[str, set[str]] = {}  # child -> parents not yet answered
        self._confirmed: set[str] = set()  # children whose next result may page
        self._windows_open: dict[str, float] = {}  # window name -> end, for the log
        self._silence_ids: dict[str, Silence] = {}

    def configure(self, checks: Iterable[Check], windows: Iterable[Window]) -> None:
        """Take a (re)loaded config; silences are kept (they live in the store)."""
        checks = list(checks)
        self.holds = Holds(tuple(windows), [check.name for check in checks])
        self.holds.set_silences(self._silence_ids.values())
        self.parents = {check.name: check.depends_on for check in checks if check.depends_on}
        self.children = {}
        for child, parents in self.parents.items():
            for parent in parents:
                self.children.setdefault(parent, []).append(child)
        names = {check.name for check in checks}
        self._confirming = {c: p for c, p in self._confirming.items() if c in names}
        self._confirmed &= names

    # ------------------------------------------------------------------ per result

    def ask(self, check: Check, before: CheckState, result: ProbeResult, policy: Policy,
            states: Mapping[str, CheckState], now: float) -> Asked:
        """The inputs for this result of `check`, and whom to probe at once."""
        name = check.name
        # Most checks are nobody's parent or child: skip building what they do not need.
        probe_now = self._answered(name) if name in self.children else []
        parents = self.parents.get(name, ())
        failing = [parent for parent in parents if not passing(states.get(parent))] \
            if parents else ()
        hold = self.holds.hold_for(name, now, failing)
        confirmed = name in self._confirmed
        self._confirmed.discard(name)
        if hold is None and parents and not confirmed and not before.triggered \
                and self._would_page(before, result, policy, now):
            self._confirming[name] = set(parents)
            hold = Hold("checking parents first: " + ", ".join(parents))
            probe_now += [parent for parent in parents if parent not in probe_now]
        dependents: tuple[str, ...] = ()
        if not result.ok and name in self.children:
            dependents = tuple(child for child in self.children[name]
                               if (state := states.get(child)) is not None
                               and (state.failures or state.held))
        return Asked(Inputs(now=now, hold=hold, dependents=dependents), probe_now)

    def _answered(self, name: str) -> list[str]:
        """`name` just produced a result: the children that were waiting only for it."""
        if name not in self.children:
            return []
        ready = []
        for child in self.children[name]:
            waiting = self._confirming.get(child)
            if waiting is not None and name in waiting:
                waiting.discard(name)
                if not waiting:
                    del self._confirming[child]
                    self._confirmed.add(child)
                    ready.append(child)
        return ready

    @staticmethod
    def _would_page(before: CheckState, result: ProbeResult, policy: Policy,
                    now: float) -> bool:
        if result.ok:
            return False
        _, events = step(before, result, policy, Inputs(now=now))
        return any(event.action == TRIGGER for event in events)

    def holds_of(self, name: str, now: float, states: Mapping[str, CheckState]) -> list[Hold]:
        """Every hold on `name` now (for status and runtime.json)."""
        failing = [p for p in self.parents.get(name, ()) if not passing(states.get(p))]
        return self.holds.all_for(name, now, failing)

    # ------------------------------------------------------------------ housekeeping

    def refresh(self, silences: Iterable[Silence], now: float) -> None:
        """Take the store's active silences (read every second) and log what began or ended,
        silences and maintenance windows alike."""
        current = {silence.id: silence for silence in silences}
        if current.keys() != self._silence_ids.keys():
            for silence_id in current.keys() - self._silence_ids.keys():
                silence = current[silence_id]
                left = format_duration(silence.until - now, "age")
                log.warning("silence %s started by %s: %s (%s) for %s: %s", silence_id,
                            silence.created_by or "someone", " ".join(silence.patterns),
                            _count(self.holds, silence), left, silence.reason)
            for silence_id in self._silence_ids.keys() - current.keys():
                log.warning("silence %s ended (%s): held pages of checks still failing go out "
                            "now", silence_id, " ".join(self._silence_ids[silence_id].patterns))
            self._silence_ids = current
            self.holds.set_silences(current.values())
        self._log_windows(now)

    def _log_windows(self, now: float) -> None:
        for window in self.holds.windows:
            occurrence = self.holds.occurrence(window, now)
            was = self._windows_open.get(window.name)
            if occurrence is not None and was is None:
                self._windows_open[window.name] = occurrence[1]
                log.warning("maintenance %s started (%s) for %s: their triggers are held",
                            window.name, " ".join(window.checks),
                            format_duration(occurrence[1] - now, "age"))
            elif occurrence is None and was is not None:
                del self._windows_open[window.name]
                log.warning("maintenance %s ended: held pages of checks still failing go out "
                            "now", window.name)


def log_hold(name: str, before: CheckState, after: CheckState, hold: Hold | None,
             events: list) -> None:
    """Say when a trigger was held back and when it was released (or no longer owed)."""
    if after.held and not before.held and hold is not None:
        log.warning("check %s: trigger held: %s", name, describe(hold))
    elif before.held and any(event.action == TRIGGER for event in events):
        log.warning("check %s: hold over; trigger released", name)
    elif before.held and not after.held:
        log.info("check %s: its held trigger is no longer owed (it recovered); nothing sent",
                 name)


def _count(holds: Holds, silence: Silence) -> str:
    from watchdog.holds import matches

    n = sum(1 for name in holds.names if matches(silence.patterns, name))
    return f"{n} check" + ("" if n == 1 else "s")
