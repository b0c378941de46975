"""The sender keeps the promise over real HTTP: in order, at least once, through any outage."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fakepd import TEST_KEY, FakePagerDuty
from pagerduty_api.alert import Alert
from watchdog.model import CheckState, Event
from watchdog.sender import LoggingAlert, Sender
from watchdog.store import Store

DOWN = CheckState(failures=3, triggered=True, severity="critical")
UP = CheckState(passes=2)
FAST = {"backoff_base": 0.05, "backoff_max": 0.2}


def trigger(key: str, summary: str = "down") -> Event:
    return Event("trigger", key, key, summary, "warning", "host1", {"why": summary})


def resolve(key: str) -> Event:
    return Event("resolve", key, key, "up", "warning", "host1")


@pytest.fixture
def pd() -> Iterator[FakePagerDuty]:
    with FakePagerDuty() as fake:
        yield fake


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(str(tmp_path / "state"))
    s.lock()
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
    pd: FakePagerDuty, store: Store, api: str
) -> None:
    """A quick flap must still page and then resolve: never merged away, never reordered."""
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


def test_per_key_order_across_lanes_despite_failures(pd: FakePagerDuty, store: Store) -> None:
    """Lanes run in parallel, but each key's events arrive exactly in outbox order."""
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
    assert "retry trigger k (id 1): attempt 1 failed" in caplog.text
    assert "sent trigger k (id 1)" in caplog.text and "sent resolve k (id 2)" in caplog.text
    assert TEST_KEY not in caplog.text


def test_429_retry_after_is_honoured(pd: FakePagerDuty, store: Store) -> None:
    """PagerDuty's Retry-After wins over a shorter backoff, or we would hammer a throttle."""
    pd.fail_next(1, status=429, retry_after=0.6)
    queue(store, trigger("k"), resolve("k"))
    runner = Running(store, make_alert(pd), backoff_base=0.01, backoff_max=0.01)
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
    from pagerduty_api.alert import Alert
    from watchdog.sender import Sender
    from watchdog.store import Store

    class CrashBeforeMark(Store):
        def settle(self, outcomes):
            os.kill(os.getpid(), signal.SIGKILL)  # PagerDuty has it; we never recorded that

    store = CrashBeforeMark(sys.argv[1])
    store.lock()
    alert = Alert(sys.argv[3], api="v2", url=sys.argv[2], retry_deadline=0, timeout=5)
    sender = Sender(store, alert, lanes=1)
    sender.start()
    sender.wake()
    time.sleep(30)
    """
)


def test_crash_between_sent_and_marked_sent_resends(pd: FakePagerDuty, tmp_path: Path) -> None:
    """At least once: a kill -9 after PagerDuty accepted resends, and PagerDuty dedups it."""
    state_dir = str(tmp_path / "state")
    with Store(state_dir) as writer:
        queue(writer, trigger("k"), resolve("k"))
    proc = subprocess.run(
        [sys.executable, "-c", CRASH_AFTER_SEND, state_dir, pd.url, TEST_KEY],
        timeout=30,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.returncode == -9
    assert pd.actions_for("k") == ["trigger"]
    store = Store(state_dir)
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
    sender = Sender(store, make_alert(pd), backoff_base=600, backoff_max=600)
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
