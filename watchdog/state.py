"""The pure core: how results turn into PagerDuty events.

No clock, no network, no disk: given the same inputs these functions always return the same
outputs, which is what lets the store replay them safely and the tests prove them exhaustively.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from watchdog import flapping
from watchdog.model import (
    NO_INPUTS,
    RESOLVE,
    TRIGGER,
    Check,
    CheckState,
    Event,
    Inputs,
    Policy,
    ProbeResult,
)

SUMMARY_LIMIT = 1024


def step(
    state: CheckState, result: ProbeResult, policy: Policy, inputs: Inputs = NO_INPUTS
) -> tuple[CheckState, list[Event]]:
    """Apply one probe result: Nagios-style soft/hard states with fail_after/recover_after,
    then flap detection, then holds (which delay triggers, never resolves)."""
    flap = policy.flapping
    history = flapping.remember(state.history, result.ok, flap.window) if flap else ""
    counted = _count(state, result, policy, history)
    if flap:
        percent = flapping.percent_state_change(history, flap.window)
        if state.flapping or percent >= flap.high:
            return _flapping(state, counted, result, policy, inputs, percent)
    return _normal(counted, result, policy, inputs)


def _count(state: CheckState, result: ProbeResult, policy: Policy, history: str) -> CheckState:
    """The counters after this result; triggered, severity and notified_at carried over."""
    # Built by hand, not with dataclasses.replace: this runs for every result (bench/holds_ab.py).
    if result.ok:
        passes = state.passes + 1
        if not state.triggered:
            passes = min(passes, policy.recover_after)
        if not state.failures and passes == state.passes and history == state.history:
            return state  # a check that keeps passing: nothing changes, nothing to copy
        failures = 0
    else:
        failures, passes = state.failures + 1, 0
    return CheckState(failures=failures, passes=passes, triggered=state.triggered,
                      severity=state.severity, held=state.held,
                      notified_at=state.notified_at, history=history,
                      flapping=state.flapping)


def _unheld(state: CheckState) -> CheckState:
    """The state with no trigger owed (the same object when none was: the common case)."""
    return replace(state, held=False) if state.held else state


def _normal(
    state: CheckState, result: ProbeResult, policy: Policy, inputs: Inputs
) -> tuple[CheckState, list[Event]]:
    if result.ok:
        if state.triggered and state.passes >= policy.recover_after:
            # A resolve is never held: an open incident that recovered is closed, hold or not.
            resolved = CheckState(passes=state.passes, history=state.history)
            return resolved, [_event(RESOLVE, policy, result, state.severity)]
        return _unheld(state), []
    severity = result.severity or policy.severity
    if state.triggered:
        if state.notified_at is None:  # a state from before repeat_interval: start its clock
            state = replace(state, notified_at=inputs.now)
        due = policy.repeat_interval > 0 and (
            inputs.now - state.notified_at >= policy.repeat_interval)
        if severity == state.severity and not due:
            return _unheld(state), []
    elif state.failures < policy.fail_after:
        return state, []
    return _trigger(state, policy, result, severity, inputs)


def _trigger(
    state: CheckState, policy: Policy, result: ProbeResult, severity: str, inputs: Inputs
) -> tuple[CheckState, list[Event]]:
    """Send the trigger the check owes, or hold it (state.held) while a hold applies."""
    if inputs.hold is not None:
        return replace(state, held=True), []
    sent = replace(state, triggered=True, severity=severity, held=False,
                   notified_at=inputs.now)
    return sent, [_event(TRIGGER, policy, result, severity, inputs.dependents)]


def _flapping(
    before: CheckState, state: CheckState, result: ProbeResult, policy: Policy,
    inputs: Inputs, percent: float,
) -> tuple[CheckState, list[Event]]:
    """One incident per flapping episode: opened when it starts (or when a hold on it
    ends), neither resolved nor triggered again until the percent falls below `low`."""
    flap = policy.flapping
    assert flap is not None
    if before.flapping and percent < flap.low:
        # The episode ends here. Its one resolve may come now (passing), or later by the
        # normal rules (a flapping check that settled on failing is simply down). An open
        # incident gets no further trigger on this step, so an episode never has two.
        state = replace(state, flapping=False)
        if not state.triggered or (result.ok and state.passes >= policy.recover_after):
            return _normal(state, result, policy, inputs)
        return _unheld(state), []
    state = replace(state, flapping=True)
    if state.triggered:
        return _unheld(state), []
    changes = flapping.state_changes(state.history)
    summary = (f"flapping: {changes} state changes in the last {len(state.history)} results "
               f"({percent:.0f}% weighted); last: {result.summary}")
    flap_result = replace(result, summary=summary, details={
        **result.details, "flapping_percent": round(percent, 1), "state_changes": changes})
    severity = state.severity or (result.severity if not result.ok else None) or policy.severity
    return _trigger(state, policy, flap_result, severity, inputs)


def _event(
    action: str, policy: Policy, result: ProbeResult, severity: str | None,
    dependents: tuple[str, ...] = (),
) -> Event:
    prefix = f"{policy.name}: recovered: " if action == RESOLVE else f"{policy.name}: "
    summary = (prefix + result.summary).replace("\n", " ")
    if len(summary) > SUMMARY_LIMIT:
        summary = summary[: SUMMARY_LIMIT - 1] + "…"
    return Event(
        action=action,
        incident_key=policy.incident_key,
        check=policy.name,
        summary=summary,
        severity=severity or policy.severity,
        source=policy.source,
        details=_details(result, policy, dependents),
    )


def _details(result: ProbeResult, policy: Policy, dependents: tuple[str, ...]) -> dict:
    details = {**result.details, **policy.details}
    if dependents:
        # The parent's page says what else is down behind it (their own pages are held).
        details["dependents_failing"] = list(dependents)
    return details


def trigger_of(policy: Policy, result: ProbeResult) -> Event:
    """The trigger this result would send now, whatever the counts say (`test-page NAME`
    shows exactly what a page of the check carries)."""
    return _event(TRIGGER, policy, result, result.severity or policy.severity)


def retrigger(state: CheckState, policy: Policy, summary: str, why: str) -> list[Event]:
    """The trigger to send again for an open incident PagerDuty may not know about (events
    went to dry-run, or to a key that was refused). PagerDuty dedups it if it does."""
    if not state.triggered:
        return []
    result = ProbeResult(ok=False, summary=f"{summary} ({why})", severity=state.severity)
    return [_event(TRIGGER, policy, result, state.severity)]


def describe(state: CheckState, policy: Policy) -> str:
    """A one-word-ish label for logs and `status`: ok, failing 2/3, triggered, recovering 1/2,
    flapping, held (failing 3/3)."""
    if state.flapping:
        return "flapping (trigger held)" if state.held else "flapping"
    if state.held and not state.triggered:
        return f"held (failing {state.failures}/{policy.fail_after})"
    if state.triggered:
        if state.passes:
            return f"recovering {state.passes}/{policy.recover_after}"
        return "triggered"
    if state.failures:
        return f"failing {state.failures}/{policy.fail_after}"
    return "ok"


def next_interval(state: CheckState, check: Check) -> float:
    """While a check is failing but not yet triggered, retry_interval confirms it sooner
    (not while its trigger is held: confirming sooner would change nothing)."""
    if check.retry_interval and state.failures and not state.triggered and not state.held:
        return min(check.retry_interval, check.interval)
    return check.interval


@dataclass(frozen=True)
class Known:
    """What the store remembers of a check, as far as reconciling needs it."""

    fingerprint: str
    incident_key: str
    state: CheckState


@dataclass
class Plan:
    """What reconcile decided: states to keep or reset, checks to forget, events to queue."""

    states: dict[str, CheckState] = field(default_factory=dict)
    forget: dict[str, list[Event]] = field(default_factory=dict)
    events: dict[str, list[Event]] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)


def reconcile(known: Mapping[str, Known], checks: Sequence[Check], source: str) -> Plan:
    """Carry state from the last run (or the last config) over to a new set of checks.

    Unchanged checks keep their state. A changed check keeps an open incident (so it is
    resolved when the check recovers, never orphaned) but restarts its counters. A check
    that disappeared, or whose incident key changed, while triggered gets a resolve, so no
    incident is left open that nothing will ever close.
    """
    plan = Plan()
    wanted = {check.name: check for check in checks}
    for name, old in known.items():
        if name not in wanted:
            plan.forget[name] = _removal(old, name, source, "check removed from the configuration")
    for check in checks:
        old = known.get(check.name)
        if old is None:
            plan.states[check.name] = CheckState()
        elif old.fingerprint == check.fingerprint:
            plan.states[check.name] = old.state
        elif old.incident_key == check.incident_key:
            plan.changed.append(check.name)
            plan.states[check.name] = CheckState(
                triggered=old.state.triggered, severity=old.state.severity
            )
        else:
            plan.changed.append(check.name)
            plan.states[check.name] = CheckState()
            resolve = _removal(old, check.name, source, "incident key changed in the configuration")
            if resolve:
                plan.events[check.name] = resolve
    return plan


def _removal(old: Known, name: str, source: str, why: str) -> list[Event]:
    if not old.state.triggered:
        return []
    return [
        Event(
            action=RESOLVE,
            incident_key=old.incident_key,
            check=name,
            summary=f"{name}: resolved: {why}",
            severity=old.state.severity or "critical",
            source=source,
            details={"reason": why},
        )
    ]
