"""Fencing (watchdog/leadership/fence.py): once a leader's store failed, nothing more is
recorded and nothing more is sent, over a real store, the real sender and the stand-in."""

from __future__ import annotations

import threading
import time

import pytest

from fakepd import TEST_KEY
from pagerduty_api.alert import Alert
from procs import wait_for
from watchdog.leadership.fence import Fence, FencedStore
from watchdog.model import CheckState, Event
from watchdog.sender import Sender
from watchdog.store import StoreError

FAST = {"backoff_base": 0.05, "trigger_backoff_max": 0.2, "resolve_backoff_max": 0.2}


def trigger(key: str) -> Event:
    return Event("trigger", key, key, "down", "critical", "host1")


class Tripped:
    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.event = threading.Event()

    def __call__(self, reason: str) -> None:
        self.reasons.append(reason)
        self.event.set()


def test_a_failing_call_fences_and_then_every_call_is_refused(store):
    tripped = Tripped()
    fence = Fence(tripped)
    guarded = FencedStore(store, fence)
    guarded.record("a", "fp", "k", CheckState(), None, time.time(), [])  # works while unfenced
    with pytest.raises(TypeError):
        guarded.record("a")  # any failure of the real store (here a wrong call) fences
    assert tripped.reasons and "a statement failed" in tripped.reasons[0]
    with pytest.raises(StoreError, match="not leading any more: a statement failed"):
        guarded.load_checks()
    fence.trip("again")  # latched: the first reason stays, on_trip ran once
    assert len(tripped.reasons) == 1 and fence.reason().startswith("a statement failed")
    assert guarded.state_dir == store.state_dir  # attributes and close() still answer
    assert "a" in store.load_checks()  # the store itself was not touched by the refusals


def test_file_problems_fence(store, tmp_path):
    fence = Fence(Tripped())
    guarded = FencedStore(store, fence)
    assert guarded.file_problems() == [] and fence.reason() is None
    (tmp_path / "state" / "state.db").unlink()
    problems = guarded.file_problems()
    assert problems and fence.reason() == "; ".join(problems)


def lanes_running() -> bool:
    return any(thread.name.startswith("pd-sender") for thread in threading.enumerate())


def test_a_halted_sender_sends_nothing_more(pd, store):
    """What a fence does to the term's sender (member.py: on_trip halts it): the event it
    was retrying is not sent, even once PagerDuty takes events again; neither is one
    handed over from memory. It stays in the outbox, for the next leader."""
    sender = Sender(store, Alert(TEST_KEY, url=pd.url, retry_deadline=0, timeout=5),
                    lanes=1, **FAST)
    fence = Fence(lambda reason: sender.halt())
    pd.set_mode("500")
    store.record("k", "fp", "k", CheckState(failures=3, triggered=True), None, time.time(),
                 [trigger("k")])
    sender.start()
    try:
        sender.wake()
        pd.wait_for(lambda: len(pd.requests) >= 2, timeout=10)  # retried: still pending
        fence.trip("lost the connection to PostgreSQL (test)")
        pd.set_mode("ok")
        sender.send_from_memory([trigger("m")])
        wait_for(lambda: not lanes_running(), what="the lane to stop")
    finally:
        sender.stop(flush_timeout=1)
    assert pd.events == []
    assert store.outbox_stats(time.time())["pending"] == 1  # for the next leader to send
