"""The sender keeps the promise over real HTTP: in order, at least once, through any outage."""

from __future__ import annotations

import logging
import os
import random
import re
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakepd import TEST_KEY, FakePagerDuty
from pagerduty_api._transport import backoff_delay
from pagerduty_api.alert import Alert
from pagerduty_api.exceptions import PagerDutyAPIServerException
from pagerduty_api.retry import is_throttle
from stores import Place, open_spec
from watchdog.model import CheckState, Event
from watchdog.pacer import Pace
from watchdog.retry import (
    RESOLVE_BACKOFF_MAX,
    RETRY_AFTER_MAX,
    TRIGGER_BACKOFF_MAX,
    retry_after_of,
    send_order,
)
from watchdog.sender import LoggingAlert, Sender
from watchdog.store import OutboxItem, Store

DOWN = CheckState(failures=3, triggered=True, severity="critical")
UP = CheckState(passes=2)
FAST = {"backoff_base": 0.05, "trigger_backoff_max": 0.2, "resolve_backoff_max": 0.2}
CAPS_30 = {"trigger_backoff_max": 30, "resolve_backoff_max": 30}


def trigger(key: str, summary: str = "down") -> Event:
    return Event("trigger", key, key, summary, "warning", "host1", {"why": summary})


def resolve(key: str) -> Event:
    return Event("resolve", key, key, "up", "warning", "host1")


@pytest.fixture
def either_store(place: Place) -> Iterator[Store]:
    """The store on each backend in turn, for the tests of the outbox's promises."""
    s = place.open()
    yield s
    s.close()


def make_alert(pd: FakePagerDuty, api: str = "v2", timeout: float = 5) -> Alert:
    """As the runner builds it: one attempt per call, the Sender owns every retry."""
    return Alert(TEST_KEY, api=api, url=pd.url, retry_deadline=0, timeout=timeout)


class Running:
    """A started Sender that is always stopped, so no test leaks lane threads."""

    def __init__(self, store: Store, alert: Any, **kwargs: Any) -> None:
        self.outcomes: list[tuple[str, str, str]] = []
        kwargs.setdefault("on_result", self._note)
        self.sender = Sender(store, alert, **{**FAST, **kwargs})

    def _note(self, event: Event, outcome: str) -> None:
        self.outcomes.append((event.action, event.incident_key, outcome))

    def __enter__(self) -> Sender:
        self.sender.start()
        self.sender.wake()
        return self.sender

    def __exit__(self, *exc_info: object) -> None:
        self.sender.stop(flush_timeout=1)


def queue(store: Store, *events: Event) -> list[int]:
    key = events[0].incident_key
    state = DOWN if events[-1].action == "trigger" else UP
    return store.record(key, "fp", key, state, None, time.time(), list(events))


def drained(store: Store) -> bool:
    return store.outbox_stats(time.time())["pending"] == 0


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_trigger_and_resolve_both_queued_are_both_sent_in_order(
    pd: FakePagerDuty, either_store: Store, api: str
) -> None:
    """A quick flap must still page and then resolve: never merged away, never reordered."""
    store = either_store
    queue(store, trigger("db/disk", "disk 95% full"), resolve("db/disk"))
    with Running(store, make_alert(pd, api)) as sender:
        pd.wait_for(lambda: drained(store))
        assert sender.pending_count() == 0
    assert pd.actions_for("db/disk") == ["trigger", "resolve"]
    (incident,) = pd.incidents
    assert incident["resolved_at"] is not None
    body = pd.events[0]["body"]
    if api == "v2":
        assert body["payload"] == {
            "summary": "disk 95% full",
            "source": "host1",
            "severity": "warning",
            "custom_details": {"why": "disk 95% full"},
        }
    else:
        assert body["description"] == "disk 95% full"
        assert body["details"] == {"why": "disk 95% full"}
    assert body["client"] == "pd-watchdog"
    assert store.outbox_stats(time.time())["sent"] == {"trigger": 1, "resolve": 1}


def test_per_key_order_across_lanes_despite_failures(pd: FakePagerDuty,
                                                     either_store: Store) -> None:
    """Lanes run in parallel, but each key's events arrive exactly in outbox order."""
    store = either_store
    keys = [f"check-{i}" for i in range(24)]
    for key in keys:  # interleaved, so every lane has many keys in flight
        queue(store, trigger(key))
    for key in keys:
        queue(store, resolve(key))
    for key in keys:
        queue(store, trigger(key, "again"))
    assert len({zlib.crc32(k.encode()) % 4 for k in keys}) == 4
    pd.fail_next(6, status=500)
    pd.fail_next(2, status=429)
    with Running(store, make_alert(pd), lanes=4):
        pd.wait_for(lambda: drained(store), timeout=15)
    for key in keys:
        assert pd.actions_for(key) == ["trigger", "resolve", "trigger"], key
    assert len(pd.incidents) == 48 and len(pd.open_incidents()) == 24


def test_500_outage_then_recovery(pd: FakePagerDuty, store: Store, caplog: Any) -> None:
    """An outage of any length: the same event is retried until PagerDuty is back."""
    caplog.set_level(logging.INFO, logger="watchdog.sender")
    pd.set_mode("500")
    queue(store, trigger("k"), resolve("k"))
    with Running(store, make_alert(pd)) as running:
        pd.wait_for(lambda: len(pd.requests) >= 4)
        assert pd.events == []
        (head, _) = store.pending()
        assert head.attempts >= 1 and "500" in (head.last_error or "")
        pd.set_mode("ok")
        pd.wait_for(lambda: drained(store))
        assert running.pending_count() == 0
    assert pd.actions_for("k") == ["trigger", "resolve"]
    assert {r["body"]["event_action"] for r in pd.requests[:4]} == {"trigger"}  # no overtaking
    # one concise line per failed attempt: what PagerDuty said, when we try again
    assert re.search(r"retry trigger k \(id 1\): PagerDuty answered 500: .*; retrying in "
                     r"[\d.]+s \(attempt 1\)", caplog.text), caplog.text
    assert "retry_deadline" not in caplog.text and "Exception" not in caplog.text
    assert "sent trigger k (id 1)" in caplog.text and "sent resolve k (id 2)" in caplog.text
    assert TEST_KEY not in caplog.text


def test_429_retry_after_is_honoured(pd: FakePagerDuty, store: Store) -> None:
    """PagerDuty's Retry-After wins over a shorter backoff, or we would hammer a throttle."""
    pd.fail_next(1, status=429, retry_after=0.6)
    queue(store, trigger("k"), resolve("k"))
    runner = Running(
        store, make_alert(pd), backoff_base=0.01, trigger_backoff_max=0.01, resolve_backoff_max=0.01
    )
    with runner:
        pd.wait_for(lambda: drained(store))
    first, second = pd.requests[:2]
    assert first["status"] == 429 and second["status"] == 202
    assert second["received_at"] - first["received_at"] >= 0.55
    assert pd.actions_for("k") == ["trigger", "resolve"]
    assert ("trigger", "k", "retry") in runner.outcomes


def test_hang_outage_then_recovery_never_blocks_record(pd: FakePagerDuty, store: Store) -> None:
    """A black-holed PagerDuty: requests time out, probes keep recording, nothing is lost."""
    pd.set_mode("hang")
    queue(store, trigger("k"), resolve("k"))
    with Running(store, make_alert(pd, timeout=0.3)):
        pd.wait_for(lambda: len(pd.requests) >= 2)  # the first one timed out and was retried
        started = time.monotonic()
        for i in range(20):
            store.record(f"other-{i}", "fp", f"other-{i}", UP, None, time.time(), [])
        assert time.monotonic() - started < 0.5
        pd.set_mode("ok")
        pd.wait_for(lambda: drained(store), timeout=10)
    assert pd.actions_for("k") == ["trigger", "resolve"]
    assert pd.incidents[0]["resolved_at"] is not None


def test_400_dead_letters_and_the_next_event_proceeds(
    pd: FakePagerDuty, store: Store, caplog: Any
) -> None:
    """A refused event can never succeed; it must not block the events behind it."""
    caplog.set_level(logging.INFO, logger="watchdog.sender")
    pd.fail_next(1, status=400)
    queue(store, trigger("bad"))
    queue(store, trigger("good"))
    runner = Running(store, make_alert(pd), lanes=1)
    with runner:
        pd.wait_for(lambda: drained(store))
    assert pd.actions_for("good") == ["trigger"] and pd.actions_for("bad") == []
    (dead,) = store.dead_letters()
    assert dead["event"]["incident_key"] == "bad" and "Injected failure" in dead["reason"]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert any("dead letter trigger bad (id 1)" in r.getMessage() for r in errors)
    assert ("trigger", "bad", "dead_letter") in runner.outcomes
    assert ("trigger", "good", "sent") in runner.outcomes
    assert store.outbox_stats(time.time())["dead_letters"] == 1
    assert TEST_KEY not in caplog.text


def test_an_event_the_client_refuses_before_sending_is_dead_lettered(
    pd: FakePagerDuty, store: Store
) -> None:
    """A value PagerDuty would reject (here a bad severity) must not retry forever."""
    queue(store, Event("trigger", "odd", "odd", "down", "catastrophic", "host1"))
    queue(store, trigger("fine"))
    with Running(store, make_alert(pd), lanes=1) as sender:
        pd.wait_for(lambda: drained(store))
        assert sender.pending_count() == 0
    (dead,) = store.dead_letters()
    assert dead["event"]["incident_key"] == "odd" and "severity" in dead["reason"]
    assert pd.actions_for("fine") == ["trigger"] and pd.actions_for("odd") == []


CRASH_AFTER_SEND = textwrap.dedent(
    """
    import os, signal, sys, time
    sys.path.insert(0, "tests")
    from pagerduty_api.alert import Alert
    from stores import open_spec
    from watchdog.sender import Sender
    from watchdog.store import Store

    class CrashBeforeMark(Store):
        def settle(self, outcomes):
            os.kill(os.getpid(), signal.SIGKILL)  # PagerDuty has it; we never recorded that

    store = open_spec(sys.argv[1])
    store.__class__ = CrashBeforeMark
    store.lock()
    alert = Alert(sys.argv[3], api="v2", url=sys.argv[2], retry_deadline=0, timeout=5)
    sender = Sender(store, alert, lanes=1)
    sender.start()
    sender.wake()
    time.sleep(30)
    """
)


def test_crash_between_sent_and_marked_sent_resends(pd: FakePagerDuty, place: Place) -> None:
    """At least once: a kill -9 after PagerDuty accepted resends, and PagerDuty dedups it."""
    with place.open() as writer:
        queue(writer, trigger("k"), resolve("k"))
    proc = subprocess.run(
        [sys.executable, "-c", CRASH_AFTER_SEND, place.spec, pd.url, TEST_KEY],
        timeout=30, cwd=Path(__file__).parent.parent,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.returncode == -9
    assert pd.actions_for("k") == ["trigger"]
    store = open_spec(place.spec)
    store.lock()  # the dead process's lock is gone
    assert [i.event.action for i in store.pending()] == ["trigger", "resolve"]
    with Running(store, make_alert(pd)):
        pd.wait_for(lambda: drained(store))
    store.close()
    assert pd.actions_for("k") == ["trigger", "trigger", "resolve"]
    (incident,) = pd.incidents  # the resend joined the same incident: no second page
    assert incident["trigger_count"] == 2 and incident["resolved_at"] is not None


def test_stop_is_bounded_while_a_request_hangs(pd: FakePagerDuty, store: Store) -> None:
    """Shutdown must not wait on PagerDuty; the unsent event stays for the next start."""
    pd.set_mode("hang")
    queue(store, trigger("k"))
    sender = Sender(store, make_alert(pd, timeout=30), **FAST)
    sender.start()
    sender.wake()
    pd.wait_for(lambda: pd.hanging == 1)
    started = time.monotonic()
    assert sender.stop(flush_timeout=0.5) == 1
    assert time.monotonic() - started < 1.5
    assert [i.event.incident_key for i in store.pending()] == ["k"]
    pd.set_mode("ok")  # the hung request is dropped unanswered
    with Running(store, make_alert(pd)):
        pd.wait_for(lambda: drained(store))
    assert pd.actions_for("k") == ["trigger"]


def test_stop_interrupts_a_long_backoff(pd: FakePagerDuty, store: Store) -> None:
    pd.set_mode("500")
    queue(store, trigger("k"))
    sender = Sender(
        store, make_alert(pd), backoff_base=600, trigger_backoff_max=600, resolve_backoff_max=600
    )
    sender.start()
    sender.wake()
    pd.wait_for(lambda: store.pending() and store.pending()[0].attempts >= 1)
    started = time.monotonic()
    assert sender.stop(flush_timeout=5) == 1
    assert time.monotonic() - started < 1


def test_stop_flushes_what_is_queued(pd: FakePagerDuty, store: Store) -> None:
    for i in range(30):
        queue(store, trigger(f"k{i}"))
    sender = Sender(store, make_alert(pd), **FAST)
    sender.start()
    assert sender.stop(flush_timeout=10) == 0
    assert len(pd.events) == 30


def test_wake_delivers_new_events_promptly(pd: FakePagerDuty, store: Store) -> None:
    """An idle lane must not sit out its safety poll when told there is work."""
    with Running(store, make_alert(pd)) as sender:
        time.sleep(0.05)  # let the lanes go idle
        queue(store, trigger("k"))
        started = time.monotonic()
        sender.wake()
        pd.wait_for(lambda: pd.actions_for("k"), timeout=2)
        assert time.monotonic() - started < 1


class FlakyAlert:
    """Raises a bug-like exception once, then delegates to the real client."""

    def __init__(self, alert: Alert) -> None:
        self.alert = alert
        self.calls = 0

    def trigger(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        if self.calls == 1:
            raise KeyError("bug in a client")
        return self.alert.trigger(*args, **kwargs)

    def resolve(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self.alert.resolve(*args, **kwargs)


def test_unexpected_exception_does_not_kill_the_lane(
    pd: FakePagerDuty, store: Store, caplog: Any
) -> None:
    queue(store, trigger("k"), resolve("k"))
    with Running(store, FlakyAlert(make_alert(pd)), lanes=1):
        pd.wait_for(lambda: drained(store))
    assert pd.actions_for("k") == ["trigger", "resolve"]
    assert "sender bug sending trigger k (id 1)" in caplog.text


def test_dry_run_logs_instead_of_sending(store: Store, caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="watchdog.sender")
    queue(store, trigger("db/disk", "disk full"), resolve("db/disk"))
    with Running(store, LoggingAlert()):
        deadline = time.monotonic() + 5
        while not drained(store):
            assert time.monotonic() < deadline, "dry run did not drain the outbox"
            time.sleep(0.01)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "dry-run: would trigger db/disk: disk full (warning, host1)" in warnings
    assert "dry-run: would resolve db/disk: up" in warnings
    assert LoggingAlert().trigger("x", "k") == {"status": "dry-run"}


# ------------------------------------------------ after an outage: recovery, caps, pace, order


class MaxJitter(random.Random):
    """Backoff jitter that always draws its ceiling, so the waits are known in advance."""

    def uniform(self, a: float, b: float) -> float:
        return b


class OneShortJitter(random.Random):
    """The first `long` backoffs draw their ceiling, every later one 0.05 s."""

    def __init__(self, long: int) -> None:
        super().__init__()
        self.long = long
        self.lock = threading.Lock()

    def uniform(self, a: float, b: float) -> float:
        with self.lock:
            self.long -= 1
            return b if self.long >= 0 else min(b, 0.05)


def key_on(lane: int, lanes: int, prefix: str = "k") -> str:
    """An incident key that hashes to `lane` (the sender's and the store's crc32)."""
    return next(
        f"{prefix}{i}" for i in range(1000) if zlib.crc32(f"{prefix}{i}".encode()) % lanes == lane
    )


def accepted(pd: FakePagerDuty) -> list[tuple[str, str]]:
    return [(e["action"], e["key"]) for e in pd.events]


def test_send_order_puts_pages_first_and_never_reorders_a_key() -> None:
    def items(*spec: str) -> list[OutboxItem]:
        events = [trigger(s[1:]) if s[0] == "t" else resolve(s[1:]) for s in spec]
        return [OutboxItem(i, e, 0.0, 0, None) for i, e in enumerate(events)]

    def order(*spec: str) -> list[str]:
        return [f"{i.event.action[0]}{i.event.incident_key}" for i in send_order(items(*spec))]

    assert order("rA", "tB", "rC", "tD") == ["tB", "tD", "rA", "rC"]
    assert order("tA", "rA", "tB") == ["tA", "tB", "rA"]
    assert order("rA", "tA", "tB") == ["tB", "rA", "tA"]  # trigger A waits for resolve A
    assert order() == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("tr"), st.sampled_from("ABCD")), max_size=30))
def test_send_order_properties(spec: list[tuple[str, str]]) -> None:
    """Each key keeps its outbox order; every page with nothing older of its key goes first."""
    events = [trigger(k) if a == "t" else resolve(k) for a, k in spec]
    items = [OutboxItem(i, e, 0.0, 0, None) for i, e in enumerate(events)]
    ordered = send_order(items)
    assert sorted(i.id for i in ordered) == list(range(len(items)))
    for key in "ABCD":
        ids = [i.id for i in ordered if i.event.incident_key == key]
        assert ids == sorted(ids)
    firsts = {
        i.id
        for i in items
        if i.event.action == "trigger"
        and i.id == min(j.id for j in items if j.event.incident_key == i.event.incident_key)
    }
    assert {i.id for i in ordered[: len(firsts)]} == firsts


@settings(max_examples=200, deadline=None)
@given(
    attempts=st.integers(min_value=0, max_value=10_000),
    base=st.floats(min_value=0.0, max_value=100.0),
    retry_after=st.one_of(st.none(), st.floats(min_value=-10, max_value=1e9)),
)
def test_backoff_never_exceeds_its_cap(attempts: int, base: float, retry_after: Any) -> None:
    """However long the outage, a trigger is retried within TRIGGER_BACKOFF_MAX (or the
    bounded Retry-After PagerDuty asked for)."""
    exc = PagerDutyAPIServerException("429", status_code=429, retry_after=retry_after)
    bounded = retry_after_of(exc)
    delay = backoff_delay(
        attempts - 1, MaxJitter().uniform, base=base, cap=TRIGGER_BACKOFF_MAX, retry_after=bounded
    )
    assert 0.0 <= delay <= max(TRIGGER_BACKOFF_MAX, bounded or 0.0) <= RETRY_AFTER_MAX
    if retry_after is not None and retry_after > 0:
        assert bounded == min(retry_after, RETRY_AFTER_MAX)
    else:
        assert bounded is None


def test_default_caps_keep_a_page_from_waiting_minutes() -> None:
    assert TRIGGER_BACKOFF_MAX <= 30 and TRIGGER_BACKOFF_MAX < RESOLVE_BACKOFF_MAX
    sender = Sender(None, LoggingAlert())  # type: ignore[arg-type]
    assert sender.trigger_backoff_max == TRIGGER_BACKOFF_MAX
    assert sender.resolve_backoff_max == RESOLVE_BACKOFF_MAX
    assert sender.pace == Pace()  # paced unless told otherwise: the runner uses the defaults
    assert is_throttle(PagerDutyAPIServerException(status_code=403), "v1")
    assert not is_throttle(PagerDutyAPIServerException(status_code=403), "v2")


def test_trigger_backoff_stops_growing_at_its_cap(
    pd: FakePagerDuty, store: Store, caplog: Any
) -> None:
    """The waits of a long outage: a trigger's stop at its cap, a resolve's at its own."""
    caplog.set_level(logging.WARNING, logger="watchdog.sender")
    pd.set_mode("500")
    queue(store, trigger("t"))
    queue(store, resolve("r"))
    caps = {"trigger_backoff_max": 0.08, "resolve_backoff_max": 0.16}
    with Running(store, make_alert(pd), lanes=1, backoff_base=0.01, rng=MaxJitter(), **caps):
        pd.wait_for(lambda: len(pd.requests) >= 8)
        store.dead_letter(1, "test: let the resolve be retried too")
        pd.wait_for(lambda: len([r for r in pd.requests if r["body"]["dedup_key"] == "r"]) >= 3)
    delays: dict[str, list[float]] = {"t": [], "r": []}
    for line in caplog.messages:
        match = re.match(r"retry \w+ (\w) \(id \d+\): .*retrying in ([\d.]+)s", line)
        if match:
            delays[match[1]].append(float(match[2]))
    assert delays["t"][:5] == [0.01, 0.02, 0.04, 0.08, 0.08]
    assert max(delays["t"]) == 0.08
    assert set(delays["r"]) == {0.16}  # the resolve's own cap, above the trigger's


def test_lanes_backed_off_in_an_outage_resume_when_one_gets_through(
    pd: FakePagerDuty, store: Store
) -> None:
    """Three lanes are 20 s into a backoff when PagerDuty comes back; the fourth lane's first
    accept wakes them, so every page goes out at once instead of 20 s later."""
    keys = [key_on(lane, 4) for lane in range(4)]
    for key in keys:
        queue(store, trigger(key))
    pd.set_mode("500")
    jitter = OneShortJitter(long=3)
    with Running(store, make_alert(pd), lanes=4, backoff_base=20, rng=jitter, **CAPS_30):
        pd.wait_for(lambda: {r["body"]["dedup_key"] for r in pd.requests} == set(keys))
        pd.wait_for(lambda: len(pd.requests) >= 6)  # one lane retries quickly, the rest wait
        pd.set_mode("ok")
        pd.wait_for(lambda: drained(store), timeout=15)
    times = [e["received_at"] for e in pd.events]
    assert sorted(e["key"] for e in pd.events) == sorted(keys)
    assert max(times) - min(times) < 2.0  # not 20 s: they did not sit out their backoff


def test_drain_at_pagerduty_rate_limit_earns_no_429(pd: FakePagerDuty, store: Store) -> None:
    """A backlog five times the budget, PagerDuty limiting the key: every event arrives, and
    not one call is throttled (PagerDuty counts throttled calls against the key too)."""
    # Room for timing noise: even two of our budget windows squeezed into one of PagerDuty's
    # by a stalled machine stay within its limit.
    pd.set_rate_limit(12, window=0.3)
    keys = [f"backlog-{i}" for i in range(30)]
    for key in keys:
        queue(store, trigger(key))
    with Running(store, make_alert(pd), lanes=4, pace=Pace(events=6, window=0.4)):
        pd.wait_for(lambda: drained(store), timeout=20)
    assert pd.rate_limited == 0
    assert [r["status"] for r in pd.requests] == [202] * 30
    assert sorted(e["key"] for e in pd.events) == sorted(keys)


def test_a_new_trigger_goes_before_resolves_the_lane_is_retrying(
    pd: FakePagerDuty, store: Store
) -> None:
    """PagerDuty is down, a lane is 30 s into backing off a resolve; a page recorded now is
    tried at once, and once PagerDuty is back it is the first to arrive."""
    pd.set_mode("500")
    queue(store, resolve("A"))
    queue(store, resolve("C"))
    caps = {"trigger_backoff_max": 0.2, "resolve_backoff_max": 30}
    with Running(store, make_alert(pd), lanes=1, backoff_base=30, rng=MaxJitter(), **caps) as s:
        pd.wait_for(lambda: pd.requests)
        queue(store, trigger("B"))
        s.wake()
        pd.wait_for(lambda: any(r["body"]["dedup_key"] == "B" for r in pd.requests))
        pd.set_mode("ok")
        pd.wait_for(lambda: drained(store), timeout=10)
    assert accepted(pd) == [("trigger", "B"), ("resolve", "A"), ("resolve", "C")]


def test_a_new_trigger_takes_the_next_slot_ahead_of_queued_resolves(
    pd: FakePagerDuty, store: Store
) -> None:
    """The budget is spent and resolves wait for a slot; a page recorded now gets it."""
    for key in ("r1", "r2", "r3", "r4"):
        queue(store, resolve(key))
    with Running(store, make_alert(pd), lanes=1, pace=Pace(events=2, window=0.8)) as sender:
        pd.wait_for(lambda: len(pd.events) == 2)
        queue(store, trigger("page"))
        sender.wake()
        pd.wait_for(lambda: drained(store), timeout=10)
    assert [key for _, key in accepted(pd)] == ["r1", "r2", "page", "r3", "r4"]


def test_retry_after_holds_every_lane_on_the_key(
    pd: FakePagerDuty, store: Store, caplog: Any
) -> None:
    """PagerDuty's Retry-After is about the routing key, not one event: other lanes wait too."""
    first, second = key_on(0, 2), key_on(1, 2)
    pd.fail_next(1, status=429, retry_after=0.6)
    queue(store, trigger(first))
    with Running(store, make_alert(pd), lanes=2) as sender:
        pd.wait_for(lambda: "retry trigger" in caplog.text)  # logged once the key is held
        queue(store, trigger(second))
        sender.wake()
        pd.wait_for(lambda: drained(store))
    throttled, *rest = pd.requests
    assert throttled["status"] == 429 and [r["status"] for r in rest] == [202, 202]
    assert min(r["received_at"] for r in rest) - throttled["received_at"] >= 0.55


def test_throttled_faster_than_the_budget_cuts_it(
    pd: FakePagerDuty, store: Store, caplog: Any
) -> None:
    """PagerDuty allows fewer calls than our budget (another sender on the key): we slow down."""
    pd.set_rate_limit(3, window=5.0)
    for i in range(5):
        queue(store, trigger(f"t{i}"))
    with Running(store, make_alert(pd), lanes=1, pace=Pace(events=6, window=5.0)):
        pd.wait_for(lambda: pd.rate_limited >= 1)
        pd.wait_for(lambda: "pacing at 2 per 5 s" in caplog.text)
    assert "PagerDuty throttled events faster than our budget" in caplog.text


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spec=st.lists(st.tuples(st.sampled_from("tr"), st.sampled_from("ABCDE")), max_size=25))
def test_what_pagerduty_receives_keeps_key_order_and_puts_pages_first(
    spec: list[tuple[str, str]], tmp_path: Path
) -> None:
    """Random flaps over a few keys, two lanes: PagerDuty gets every event, each key's in
    outbox order, and no resolve of one key arrives before a page of another key that had
    nothing older pending when the lane read its outbox."""
    lanes = 2
    with FakePagerDuty() as pd, Store(tempfile.mkdtemp(dir=tmp_path)) as store:
        events = [trigger(k) if a == "t" else resolve(k) for a, k in spec]
        for event in events:
            queue(store, event)
        with Running(store, make_alert(pd), lanes=lanes):
            pd.wait_for(lambda: drained(store))
        got = accepted(pd)
    want = [(e.action, e.incident_key) for e in events]
    assert sorted(got) == sorted(want)
    for key in "ABCDE":
        assert [a for a, k in got if k == key] == [a for a, k in want if k == key]
    for lane in range(lanes):
        mine = [k for k in "ABCDE" if zlib.crc32(k.encode()) % lanes == lane]
        lane_got = [(a, k) for a, k in got if k in mine]
        # Pages: keys whose oldest event is a trigger (all was queued before the lane read).
        pages = {k for k in mine if next((a for a, x in want if x == k), None) == "trigger"}
        for i, (action, key) in enumerate(lane_got):
            if action == "resolve":
                unsent = pages - {k for a, k in lane_got[:i] if a == "trigger"} - {key}
                assert not unsent, (lane_got, pages)


def test_stop_is_bounded_while_lanes_wait_for_the_budget(pd: FakePagerDuty, store: Store) -> None:
    """A spent budget holds the lanes for up to a window; stop() must not wait for it."""
    for i in range(3):
        queue(store, trigger(f"k{i}"))
    sender = Sender(store, make_alert(pd), lanes=1, pace=Pace(events=1, window=60.0), **FAST)
    sender.start()
    sender.wake()
    pd.wait_for(lambda: len(pd.events) == 1)
    started = time.monotonic()
    assert sender.stop(flush_timeout=0.3) == 2
    assert time.monotonic() - started < 1.5
    assert [i.event.incident_key for i in store.pending()] == ["k1", "k2"]


# ------------------------------------------------ set_alert: a reload swaps the alert

OTHER_KEY = "fedcba9876543210fedcba9876543210"


def swapped_from_another_thread(swap: Any) -> None:
    """Run swap() on a thread of its own and wait for it, as a reload would meanwhile."""
    thread = threading.Thread(target=swap)
    thread.start()
    thread.join(5)
    assert not thread.is_alive()


class SwapsWhileSending(LoggingAlert):
    """A dry run whose trigger is in flight while the sender's alert is swapped."""

    def __init__(self, swap: Any) -> None:
        self.swap = swap

    def trigger(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        swapped_from_another_thread(self.swap)
        return super().trigger(*args, **kwargs)


def test_an_attempt_in_flight_is_judged_with_the_alert_it_began_with(
    pd: FakePagerDuty, store: Store
) -> None:
    """A reload from dry-run to a real key while a dry-run send is in flight: that event was
    logged, not sent, and must be recorded so; the next one goes to PagerDuty."""
    live = make_alert(pd)
    holder: dict[str, Sender] = {}
    queue(store, trigger("before"))
    running = Running(store, SwapsWhileSending(lambda: holder["sender"].set_alert(live)), lanes=1)
    holder["sender"] = running.sender
    with running as sender:
        pd.wait_for(lambda: drained(store))
        assert sender.alert is live
        queue(store, trigger("after"))
        sender.wake()
        pd.wait_for(lambda: drained(store) and pd.actions_for("after") == ["trigger"])
    assert ("trigger", "before", "dry_run") in running.outcomes
    assert ("trigger", "after", "sent") in running.outcomes
    stats = store.outbox_stats(time.time())
    assert stats["dry_run"] == {"trigger": 1, "resolve": 0}
    assert stats["sent"] == {"trigger": 1, "resolve": 0}
    assert pd.actions_for("before") == []


class QuotesItsKey:
    """An alert whose failure quotes its own key (as a transport error quoting a URL can)."""

    api = "v2"

    def __init__(self, service_key: str, swap: Any = None) -> None:
        self.service_key = service_key
        self.swap = swap

    def trigger(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if self.swap is not None:
            swapped_from_another_thread(self.swap)
        raise OSError(f"POST https://events.example/?key={self.service_key}: reset by peer")


def test_a_swap_during_a_failing_attempt_still_masks_that_attempts_key(
    store: Store, caplog: Any
) -> None:
    """The failure is described with the alert that failed, so its key is the one masked."""
    caplog.set_level(logging.INFO, logger="watchdog.sender")
    holder: dict[str, Sender] = {}
    first = QuotesItsKey(TEST_KEY, swap=lambda: holder["sender"].set_alert(QuotesItsKey(OTHER_KEY)))
    queue(store, trigger("k"))
    running = Running(store, first, lanes=1)
    holder["sender"] = running.sender
    with running:
        wait_deadline = time.monotonic() + 5
        while store.pending()[0].attempts < 2:  # the first alert's failure, then the second's
            assert time.monotonic() < wait_deadline, "no second attempt"
            time.sleep(0.01)
    for text in (caplog.text, store.pending()[0].last_error or ""):
        assert TEST_KEY not in text and OTHER_KEY not in text
    assert "key=…" + TEST_KEY[-4:] in caplog.text and "key=…" + OTHER_KEY[-4:] in caplog.text


def test_set_alert_from_another_thread_while_lanes_send(pd: FakePagerDuty, store: Store) -> None:
    """Swapping back and forth between two keys while four lanes drain: every event is sent
    once, in order per key, through one of the two; after the last swap, only the new one."""
    one, other = make_alert(pd), Alert(OTHER_KEY, api="v2", url=pd.url, retry_deadline=0)
    keys = [f"swap-{i}" for i in range(40)]
    for key in keys:
        queue(store, trigger(key), resolve(key))
    stop = threading.Event()
    swaps = 0

    def swapper(sender: Sender) -> None:
        nonlocal swaps
        while not stop.is_set():
            sender.set_alert(other if swaps % 2 == 0 else one)
            swaps += 1
            stop.wait(0.002)

    with Running(store, one, lanes=4) as sender:
        thread = threading.Thread(target=swapper, args=(sender,))
        thread.start()
        try:
            pd.wait_for(lambda: drained(store), timeout=15)
        finally:
            stop.set()
            thread.join(5)
        sender.set_alert(other)
        queue(store, trigger("last"))
        sender.wake()
        pd.wait_for(lambda: pd.actions_for("last") == ["trigger"])
    assert swaps > 1
    for key in keys:
        assert pd.actions_for(key) == ["trigger", "resolve"], key
    routing = [event["body"]["routing_key"] for event in pd.events]
    assert set(routing) <= {TEST_KEY, OTHER_KEY} and routing[-1] == OTHER_KEY
    assert len(routing) == 2 * len(keys) + 1 and store.dead_letters() == []


def test_the_alert_is_swapped_only_through_set_alert(store: Store) -> None:
    sender = Sender(store, LoggingAlert())
    with pytest.raises(AttributeError):
        sender.alert = LoggingAlert()  # type: ignore[misc]
