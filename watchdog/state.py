"""The pure core: how results turn into PagerDuty events.

No clock, no network, no disk: given the same inputs these functions always return the same
outputs, which is what lets the store replay them safely and the tests prove them exhaustively.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from watchdog.model import RESOLVE, TRIGGER, Check, CheckState, Event, Policy, ProbeResult

SUMMARY_LIMIT = 1024


def step(state: CheckState, result: ProbeResult, policy: Policy) -> tuple[CheckState, list[Event]]:
    """Apply one probe result: Nagios-style soft/hard states with fail_after/recover_after."""
    if result.ok:
        passes = state.passes + 1
        if state.triggered:
            if passes >= policy.recover_after:
                return CheckState(passes=passes), [_event(RESOLVE, policy, result, state.severity)]
            return CheckState(passes=passes, triggered=True, severity=state.severity), []
        return CheckState(passes=min(passes, policy.recover_after)), []

    severity = result.severity or policy.severity
    failures = state.failures + 1
    if state.triggered:
        changed = severity != state.severity
        events = [_event(TRIGGER, policy, result, severity)] if changed else []
        return CheckState(failures=failures, triggered=True, severity=severity), events
    if failures >= policy.fail_after:
        return (
            CheckState(failures=failures, triggered=True, severity=severity),
            [_event(TRIGGER, policy, result, severity)],
        )
    return CheckState(failures=failures), []


def _event(action: str, policy: Policy, result: ProbeResult, severity: str | None) -> Event:
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
        details={**result.details, **policy.details},
    )


def retrigger(state: CheckState, policy: Policy, summary: str, why: str) -> list[Event]:
    """The trigger to send again for an open incident PagerDuty may not know about (events
    went to dry-run, or to a key that was refused). PagerDuty dedups it if it does."""
    if not state.triggered:
        return []
    result = ProbeResult(ok=False, summary=f"{summary} ({why})", severity=state.severity)
    return [_event(TRIGGER, policy, result, state.severity)]


def describe(state: CheckState, policy: Policy) -> str:
    """A one-word-ish label for logs and `status`: ok, failing 2/3, triggered, recovering 1/2."""
    if state.triggered:
        if state.passes:
            return f"recovering {state.passes}/{policy.recover_after}"
        return "triggered"
    if state.failures:
        return f"failing {state.failures}/{policy.fail_after}"
    return "ok"


def next_interval(state: CheckState, check: Check) -> float:
    """While a check is failing but not yet triggered, retry_interval confirms it sooner."""
    if check.retry_interval and state.failures and not state.triggered:
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
