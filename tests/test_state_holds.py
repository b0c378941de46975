"""The state machine with holds, flap detection and re-notification: examples, then
invariants over arbitrary sequences (hypothesis)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.flapping import Flapping, percent_state_change, state_changes
from watchdog.model import RESOLVE, TRIGGER, CheckState, Hold, Inputs, Policy, ProbeResult
from watchdog.state import describe, step

OK = ProbeResult(ok=True, summary="fine")
FAIL = ProbeResult(ok=False, summary="down")
WINDOW = Hold("maintenance nightly", until=1000.0)
POLICY = Policy(name="db", incident_key="k/db", source="h", fail_after=3, recover_after=2)
FLAPPY = Policy(name="db", incident_key="k/db", source="h", fail_after=2, recover_after=2,
                flapping=Flapping(window=21, high=50, low=25))


def run(steps, policy=POLICY, state=None, start=0.0, every=10.0):
    """steps: (result, hold or None); the clock advances `every` seconds per result."""
    state = state or CheckState()
    events = []
    for index, (result, hold) in enumerate(steps):
        state, new = step(state, result, policy, Inputs(now=start + index * every, hold=hold))
        events.extend(new)
    return state, events


def actions(events):
    return [event.action for event in events]


# --- holds ----------------------------------------------------------------------------


def test_a_failure_that_goes_hard_in_a_window_pages_once_after_it_if_still_failing():
    state, events = run([(FAIL, WINDOW)] * 5)
    assert events == [] and state.held and not state.triggered
    assert describe(state, POLICY) == "held (failing 5/3)"
    state, events = run([(FAIL, None)], state=state)
    assert actions(events) == [TRIGGER] and state.triggered and not state.held


def test_one_that_recovered_in_the_window_sends_nothing_at_all():
    state, events = run([(FAIL, WINDOW)] * 4 + [(OK, WINDOW)] + [(OK, None)] * 3)
    assert events == [] and not state.held and not state.triggered


def test_a_resolve_is_never_held():
    state, events = run([(FAIL, None)] * 3 + [(OK, WINDOW)] * 2)
    assert actions(events) == [TRIGGER, RESOLVE] and not state.triggered


def test_a_severity_change_in_a_window_is_sent_when_it_ends():
    warn = ProbeResult(ok=False, summary="slow", severity="warning")
    state, events = run([(warn, None)] * 3 + [(FAIL, WINDOW)] * 2)
    assert [(e.action, e.severity) for e in events] == [(TRIGGER, "warning")]
    assert state.held and state.severity == "warning"
    state, events = run([(FAIL, None)], state=state)
    assert [(e.action, e.severity) for e in events] == [(TRIGGER, "critical")]


def test_a_parents_page_lists_the_dependents_failing_behind_it():
    state = CheckState(failures=2)
    _, events = step(state, FAIL, POLICY, Inputs(dependents=("web", "api")))
    assert events[0].details["dependents_failing"] == ["web", "api"]


# --- re-notification ------------------------------------------------------------------


def test_a_triggered_check_is_re_sent_every_repeat_interval_and_not_while_held():
    policy = Policy(name="db", incident_key="k/db", source="h", fail_after=1,
                    repeat_interval=100.0)
    state, events = run([(FAIL, None)] * 25, policy=policy, every=10.0)
    # t=0 first trigger, then t=100 and t=200: the same key each time.
    assert actions(events) == [TRIGGER] * 3 and {e.incident_key for e in events} == {"k/db"}
    state, events = run([(FAIL, WINDOW)] * 20, policy=policy, state=state, start=250.0)
    assert events == []
    state, events = run([(FAIL, None)], policy=policy, state=state, start=460.0)
    assert actions(events) == [TRIGGER] and state.notified_at == 460.0


def test_repeat_interval_0_never_re_sends_and_an_old_state_starts_the_clock_quietly():
    state, events = run([(FAIL, None)] * 50)
    assert actions(events) == [TRIGGER]
    policy = Policy(name="db", incident_key="k/db", source="h", repeat_interval=100.0)
    old = CheckState(failures=9, triggered=True, severity="critical")  # stored before 13
    state, events = step(old, FAIL, policy, Inputs(now=5000.0))
    assert events == [] and state.notified_at == 5000.0


# --- flap detection -------------------------------------------------------------------


def test_percent_state_change_is_weighted_toward_recent_results_as_nagios_does():
    assert percent_state_change("1" * 21, 21) == 0
    assert percent_state_change("10" * 10 + "1", 21) == 100
    assert percent_state_change("1" * 20 + "0", 21) == 1.25 * 100 / 20  # newest change
    assert percent_state_change("0" + "1" * 20, 21) == 0.75 * 100 / 20  # oldest change
    assert percent_state_change("10", 21) == 1.25 * 100 / 20  # short history: padded old end
    assert state_changes("1001") == 2


def test_a_flapping_check_opens_one_incident_and_resolves_once_when_it_settles():
    flaps = [(FAIL, None), (OK, None)] * 40
    state, events = run(flaps, policy=FLAPPY)
    assert actions(events) == [TRIGGER] and state.flapping
    assert "flapping:" in events[0].summary and "state changes in the last" in events[0].summary
    state, more = run([(OK, None)] * 30, policy=FLAPPY, state=state)
    assert actions(more) == [RESOLVE] and not state.flapping and not state.triggered


def test_a_flapping_check_that_settles_on_failing_stays_open_and_resolves_when_it_recovers():
    state, events = run([(FAIL, None), (OK, None)] * 20 + [(FAIL, None)] * 30, policy=FLAPPY)
    assert actions(events) == [TRIGGER] and state.triggered and not state.flapping
    state, more = run([(OK, None)] * 2, policy=FLAPPY, state=state)
    assert actions(more) == [RESOLVE]


def test_a_flapping_trigger_held_by_a_window_goes_out_when_the_window_ends():
    state, events = run([(FAIL, WINDOW), (OK, WINDOW)] * 20, policy=FLAPPY)
    assert events == [] and state.flapping and state.held
    state, events = run([(FAIL, None)], policy=FLAPPY, state=state)
    assert actions(events) == [TRIGGER] and "flapping" in events[0].summary


# --- invariants -----------------------------------------------------------------------

results = st.sampled_from([OK, FAIL, ProbeResult(ok=False, summary="w", severity="warning")])
holds = st.sampled_from([None, None, WINDOW, Hold("parent uplink failing")])
steps = st.lists(st.tuples(results, holds), max_size=120)
policies = st.builds(
    lambda f, r, repeat, flap: Policy(name="c", incident_key="k", source="h", fail_after=f,
                                      recover_after=r, repeat_interval=repeat, flapping=flap),
    st.integers(1, 4), st.integers(1, 4), st.sampled_from([0.0, 30.0, 95.0]),
    st.one_of(st.none(), st.builds(Flapping, st.integers(3, 25), st.sampled_from([40.0, 50.0]),
                                   st.sampled_from([10.0, 25.0]))),
)


def walk(seq, policy):
    """Every step's (before, inputs, result, after, events)."""
    state, out = CheckState(), []
    for index, (result, hold) in enumerate(seq):
        inputs = Inputs(now=index * 10.0, hold=hold)
        after, events = step(state, result, policy, inputs)
        out.append((state, inputs, result, after, events))
        state = after
    return out


@settings(max_examples=300, deadline=None)
@given(steps, policies)
def test_no_trigger_is_ever_sent_while_held_and_no_resolve_is_ever_held(seq, policy):
    for before, inputs, result, _, events in walk(seq, policy):
        if inputs.hold is not None:
            assert TRIGGER not in actions(events)
        # Whatever the hold, the same step resolves the same way.
        unheld = step(before, result, policy, Inputs(now=inputs.now))[1]
        held = step(before, result, policy, Inputs(now=inputs.now, hold=WINDOW))[1]
        assert [e for e in unheld if e.action == RESOLVE] == [
            e for e in held if e.action == RESOLVE]


@settings(max_examples=300, deadline=None)
@given(steps, policies)
def test_without_a_hold_an_incident_is_open_exactly_while_the_check_is_hard_failing(seq, policy):
    """Within one result of a hold ending, open incidents match hard-failing checks."""
    for _, inputs, result, after, _ in walk(seq, policy):
        if inputs.hold is not None or after.flapping:
            continue
        if not result.ok and after.failures >= policy.fail_after:
            assert after.triggered and not after.held
        if result.ok and after.passes >= policy.recover_after:
            assert not after.triggered
        assert not (after.held and not result.ok and after.failures >= policy.fail_after)


@settings(max_examples=300, deadline=None)
@given(steps, policies.filter(lambda p: p.flapping is not None))
def test_a_flapping_episode_has_at_most_one_trigger_and_one_resolve(seq, policy):
    triggers = resolves = 0
    for before, _, _, after, events in walk(seq, policy):
        if after.flapping and not before.flapping:
            triggers = resolves = 0
        if before.flapping or after.flapping:
            triggers += actions(events).count(TRIGGER)
            resolves += actions(events).count(RESOLVE)
            assert triggers <= 1 and resolves <= 1


@settings(max_examples=300, deadline=None)
@given(steps, policies)
def test_repeats_come_no_sooner_than_repeat_interval_and_no_later_than_one_result_after(
        seq, policy):
    for before, inputs, result, after, events in walk(seq, policy):
        sent = TRIGGER in actions(events)
        if not (before.triggered and after.triggered and policy.repeat_interval):
            continue
        same_severity = after.severity == before.severity
        if sent and same_severity and not after.flapping:
            assert inputs.now - before.notified_at >= policy.repeat_interval
        if (not result.ok and inputs.hold is None and not after.flapping
                and not before.flapping and before.notified_at is not None
                and inputs.now - before.notified_at >= policy.repeat_interval):
            assert sent


@settings(max_examples=300, deadline=None)
@given(steps, policies, st.data())
def test_a_restart_anywhere_changes_nothing(seq, policy, data):
    """Storing the state (as JSON, as the store does) and loading it back between any two
    results gives the same events and the same final state."""
    cut = data.draw(st.integers(0, len(seq)))
    straight = walk(seq, policy)
    state = CheckState()
    events = []
    for index, (result, hold) in enumerate(seq):
        if index == cut:
            state = CheckState.from_dict(json.loads(json.dumps(state.to_dict())))
        state, new = step(state, result, policy, Inputs(now=index * 10.0, hold=hold))
        events.extend(new)
    assert events == [e for *_, evs in straight for e in evs]
    assert state == (straight[-1][3] if straight else CheckState())
