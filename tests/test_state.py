"""The state machine: examples first, then invariants over arbitrary result sequences."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.model import RESOLVE, TRIGGER, Check, CheckState, Policy, ProbeResult
from watchdog.state import Known, describe, next_interval, reconcile, step

POLICY = Policy(
    name="web",
    incident_key="pd-watchdog/h/web",
    source="h",
    fail_after=3,
    recover_after=2,
    severity="critical",
    details={"runbook": "r"},
)
OK = ProbeResult(ok=True, summary="fine")
FAIL = ProbeResult(ok=False, summary="down", details={"status_code": 503})
WARN = ProbeResult(ok=False, summary="slow", severity="warning")


def run(results, policy=POLICY, state=None):
    state = state or CheckState()
    events = []
    for result in results:
        state, new = step(state, result, policy)
        events.extend(new)
    return state, events


def test_triggers_after_fail_after_consecutive_failures_and_resolves_after_recover_after():
    state, events = run([FAIL, FAIL])
    assert events == [] and describe(state, POLICY) == "failing 2/3"
    state, events = run([FAIL], state=state)
    assert [e.action for e in events] == [TRIGGER]
    trigger = events[0]
    assert trigger.summary == "web: down"
    assert trigger.severity == "critical" and trigger.source == "h"
    assert trigger.incident_key == "pd-watchdog/h/web"
    assert trigger.details == {"status_code": 503, "runbook": "r"}
    state, events = run([OK], state=state)
    assert events == [] and describe(state, POLICY) == "recovering 1/2"
    state, events = run([OK], state=state)
    assert [(e.action, e.incident_key) for e in events] == [(RESOLVE, "pd-watchdog/h/web")]
    assert events[0].summary == "web: recovered: fine"
    assert state == CheckState(passes=2) and describe(state, POLICY) == "ok"


def test_flapping_below_thresholds_sends_nothing():
    _, events = run([FAIL, FAIL, OK, FAIL, FAIL, OK] * 10)
    assert events == []


def test_a_failure_while_recovering_keeps_the_incident_open_without_a_new_trigger():
    state, events = run([FAIL, FAIL, FAIL, OK, FAIL, OK, FAIL])
    assert [e.action for e in events] == [TRIGGER]
    assert state.triggered and describe(state, POLICY) == "triggered"


def test_severity_change_while_triggered_sends_one_more_trigger_on_the_same_key():
    state, events = run([WARN, WARN, WARN, WARN, FAIL, FAIL, FAIL])
    assert [(e.action, e.severity) for e in events] == [(TRIGGER, "warning"), (TRIGGER, "critical")]
    assert {e.incident_key for e in events} == {POLICY.incident_key}


def test_resolve_carries_the_severity_it_was_triggered_with():
    _, events = run([WARN, WARN, WARN, OK, OK])
    assert [(e.action, e.severity) for e in events] == [(TRIGGER, "warning"), (RESOLVE, "warning")]


def test_summary_is_one_line_and_bounded():
    long = ProbeResult(ok=False, summary="x\n" * 2000)
    _, events = run([long] * 3)
    assert len(events[0].summary) == 1024 and "\n" not in events[0].summary


def test_next_interval_uses_retry_interval_only_while_failing_untriggered():
    check = Check(name="c", kind="command", probe=None, interval=30, retry_interval=5)
    assert next_interval(CheckState(), check) == 30
    assert next_interval(CheckState(failures=1), check) == 5
    assert next_interval(CheckState(failures=3, triggered=True), check) == 30
    assert next_interval(CheckState(failures=1), Check(name="c", kind="x", probe=None)) == 30


def _check(name, fingerprint="f1", key=None):
    return Check(
        name=name,
        kind="command",
        probe=None,
        incident_key=key or f"k/{name}",
        fingerprint=fingerprint,
    )


def test_reconcile_keeps_unchanged_state_and_resolves_removed_triggered_checks():
    triggered = CheckState(failures=5, triggered=True, severity="warning")
    known = {
        "same": Known("f1", "k/same", triggered),
        "gone": Known("f1", "k/gone", triggered),
        "gone-ok": Known("f1", "k/gone-ok", CheckState(passes=2)),
        "edited": Known("f0", "k/edited", triggered),
        "rekeyed": Known("f0", "old-key", triggered),
    }
    checks = [_check("same"), _check("edited"), _check("rekeyed", key="new-key"), _check("new")]
    plan = reconcile(known, checks, source="h")
    assert plan.states["same"] == triggered
    assert plan.states["edited"] == CheckState(triggered=True, severity="warning")
    assert plan.states["rekeyed"] == CheckState() and plan.states["new"] == CheckState()
    assert sorted(plan.changed) == ["edited", "rekeyed"]
    assert set(plan.forget) == {"gone", "gone-ok"}
    assert plan.forget["gone-ok"] == []
    [resolve] = plan.forget["gone"]
    assert (resolve.action, resolve.incident_key, resolve.source) == (RESOLVE, "k/gone", "h")
    assert "removed" in resolve.summary
    [rekey] = plan.events["rekeyed"]
    assert (rekey.action, rekey.incident_key) == (RESOLVE, "old-key")


# --- invariants over arbitrary sequences -------------------------------------------------

results = st.one_of(
    st.just(OK),
    st.sampled_from([None, "warning", "error", "critical", "info"]).map(
        lambda sev: ProbeResult(ok=False, summary="bad", severity=sev)
    ),
)
policies = st.builds(
    lambda f, r, s: Policy(
        name="c", incident_key="key", source="h", fail_after=f, recover_after=r, severity=s
    ),
    st.integers(1, 5),
    st.integers(1, 5),
    st.sampled_from(["critical", "error", "warning", "info"]),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(results, max_size=80), policies)
def test_events_match_a_reference_model(seq, policy):
    """Re-derive the expected events by a different route: scanning runs of results."""
    state, events = run(seq, policy)
    expected, open_severity, fails, passes = [], None, 0, 0
    for result in seq:
        if result.ok:
            fails, passes = 0, passes + 1
            if open_severity is not None and passes == policy.recover_after:
                expected.append((RESOLVE, open_severity))
                open_severity = None
        else:
            fails, passes = fails + 1, 0
            severity = result.severity or policy.severity
            if (
                open_severity is None
                and fails == policy.fail_after
                or (open_severity is not None and severity != open_severity)
            ):
                expected.append((TRIGGER, severity))
                open_severity = severity
    assert [(e.action, e.severity) for e in events] == expected
    assert state.triggered == (open_severity is not None)


@settings(max_examples=400, deadline=None)
@given(st.lists(results, max_size=80), policies)
def test_one_resolve_per_incident_and_stable_key(seq, policy):
    _, events = run(seq, policy)
    assert {e.incident_key for e in events} <= {"key"}
    open_ = False
    for event in events:
        if event.action == RESOLVE:
            assert open_, "resolve without an open incident"
            open_ = False
        else:
            open_ = True
    # Every trigger after the first in an incident is a severity change.
    severities = []
    for event in events:
        if event.action == TRIGGER:
            assert not severities or severities[-1] != event.severity
            severities.append(event.severity)
        else:
            severities = []


@settings(max_examples=300, deadline=None)
@given(st.lists(results, max_size=60), policies)
def test_no_run_of_failures_reaching_fail_after_means_no_events(seq, policy):
    longest = run_length = 0
    for result in seq:
        run_length = 0 if result.ok else run_length + 1
        longest = max(longest, run_length)
    _, events = run(seq, policy)
    assert (events == []) == (longest < policy.fail_after)


@settings(max_examples=200, deadline=None)
@given(st.lists(results, max_size=60), policies, st.integers(0, 60))
def test_splitting_a_sequence_anywhere_changes_nothing(seq, policy, cut):
    """State is all the machine remembers: stopping and resuming (a restart) is invisible."""
    whole_state, whole_events = run(seq, policy)
    first_state, first_events = run(seq[:cut], policy)
    restored = CheckState.from_dict(first_state.to_dict())
    second_state, second_events = run(seq[cut:], policy, state=restored)
    assert second_state == whole_state
    assert first_events + second_events == whole_events
