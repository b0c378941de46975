"""The pacer keeps a routing key's attempts under PagerDuty's rolling-window limit."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.pacer import PACE_EVENTS, PACE_WINDOW, PAGERDUTY_EVENTS_PER_MINUTE, Pace, Pacer


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_defaults_stay_under_pagerduty_documented_limit() -> None:
    """~120 calls per 60 s per key: ours is fewer calls over a longer window."""
    assert PACE_EVENTS < PAGERDUTY_EVENTS_PER_MINUTE and PACE_WINDOW >= 60
    assert Pace() == Pace(PACE_EVENTS, PACE_WINDOW)


def test_budget_then_wait_until_the_oldest_slot_leaves_the_window() -> None:
    clock = Clock()
    pacer = Pacer(Pace(events=3, window=10.0), clock=clock)
    assert pacer.reserve() == 0.0
    clock.now += 2
    assert [pacer.reserve(), pacer.reserve()] == [0.0, 0.0]
    assert pacer.reserve() == pytest.approx(8.0)  # nothing taken by asking
    clock.now += 4
    assert pacer.reserve() == pytest.approx(4.0)
    clock.now += 4
    assert pacer.reserve() == 0.0  # the first slot left; the other two are still in
    assert pacer.reserve() == pytest.approx(2.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=1, max_size=200))
def test_no_window_ever_holds_more_than_the_budget(gaps: list[float]) -> None:
    """Whatever the timing of the asks, any `window` seconds hold at most `events` attempts."""
    clock = Clock()
    pace = Pace(events=5, window=10.0)
    pacer = Pacer(pace, clock=clock)
    taken = []
    for gap in gaps:
        clock.now += gap
        if pacer.reserve() == 0.0:
            taken.append(clock.now)
    for i, start in enumerate(taken):
        assert sum(1 for t in taken[i:] if t < start + pace.window) <= pace.events


def test_hold_stops_every_attempt_until_it_ends() -> None:
    clock = Clock()
    pacer = Pacer(Pace(events=5, window=10.0), clock=clock)
    pacer.hold(2.5)
    assert pacer.reserve() == pytest.approx(2.5)
    clock.now += 2.5
    assert pacer.reserve() == 0.0


def test_throttle_at_our_own_rate_halves_the_budget_then_it_climbs_back() -> None:
    """Like TCP on a loss: PagerDuty took some and refused more, so we were too fast."""
    clock = Clock()
    pace = Pace(events=10, window=10.0)
    pacer = Pacer(pace, clock=clock)
    for _ in range(8):
        assert pacer.reserve() == 0.0
    pacer.accepted()
    assert pacer.throttled() is True
    assert pacer.budget == 4  # half of the 8 we had in the window
    assert pacer.throttled() is False  # the same news twice does not cut twice
    assert pacer.budget == 4
    clock.now += 10.0  # the 8 left the window; one window later the budget is halfway back
    assert pacer.budget == 9
    assert pacer.reserve() == 0.0
    clock.now += 10.0
    assert pacer.budget == 10


def test_throttle_never_cuts_below_the_floor() -> None:
    clock = Clock()
    pacer = Pacer(Pace(events=10, window=10.0), clock=clock)
    for _ in range(10):
        pacer.reserve()
    pacer.accepted()
    for _ in range(5):
        pacer.throttled()
        clock.now += 0.01
    assert pacer.budget == 5
    clock.now += 10.0
    for _ in range(5):
        assert pacer.reserve() == 0.0
    pacer.accepted()
    pacer.throttled()
    assert pacer.budget == 2 == Pace(events=10, window=10.0).floor


def test_a_waiting_ask_is_told_when_the_climbing_budget_frees_a_slot() -> None:
    clock = Clock()
    pacer = Pacer(Pace(events=10, window=10.0), clock=clock)
    for _ in range(10):
        pacer.reserve()
    pacer.accepted()
    pacer.throttled()  # budget 5, 10 slots in the window: the next one frees in 10 s...
    clock.now += 9.5
    # ...but by then the budget climbed by 0.5 * 9.5 / 1 to 9.75; one more (10) in 0.5 s
    assert pacer.reserve() == pytest.approx(0.5)


@pytest.mark.parametrize("accepted", [False, True])
def test_throttle_that_is_not_our_rate_leaves_the_budget(accepted: bool) -> None:
    """An outage (nothing accepted lately) or a throttle while we send little: no cut, so
    the drain after PagerDuty comes back is not slowed by it."""
    clock = Clock()
    pacer = Pacer(Pace(events=10, window=10.0), clock=clock)
    if accepted:
        pacer.accepted()
        pacer.reserve()  # 1 of 10: far below our budget
    else:
        for _ in range(10):
            pacer.reserve()
        clock.now += 5
        pacer.accepted()
        clock.now += 11  # that accept is out of the window
        for _ in range(10):
            pacer.reserve()
    assert pacer.throttled() is False
    assert pacer.budget == 10


def test_lanes_share_one_budget_safely() -> None:
    """Many threads asking at once: exactly `events` slots are handed out."""
    clock = Clock()
    pacer = Pacer(Pace(events=25, window=10.0), clock=clock)
    results: list[float] = []
    lock = threading.Lock()

    def ask() -> None:
        for _ in range(20):
            wait = pacer.reserve()
            with lock:
                results.append(wait)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results.count(0.0) == 25 and len(results) == 160


@pytest.mark.parametrize(
    ("events", "window", "match"),
    [(0, 60.0, "events"), (1.5, 60.0, "events"), (True, 60.0, "events"), (10, 0, "window")],
)
def test_bad_pace_is_refused_clearly(events: object, window: object, match: str) -> None:
    with pytest.raises(ValueError, match=f"pace {match}"):
        Pace(events=events, window=window)  # type: ignore[arg-type]
