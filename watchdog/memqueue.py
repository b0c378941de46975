"""Events the store could not take, delivered from memory until it can.

When the state file cannot be written (a full disk, a read-only file system), a page must
still go out: the runner hands the events of the changes it could not record to the sender
through this queue, and writes the changes later (Store.replay) with what became of each
event, so nothing is lost and nothing recorded is sent twice. Items live here only while the
store fails; each lane sends its own items after its stored ones, in the order they came, so
per key the order of events is kept (the runner records nothing new while older changes are
still waiting in memory).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from watchdog.model import Event

QUEUED = "queued"  # waiting for its lane
SENDING = "sending"  # a lane is sending it right now
SENT = "sent"  # PagerDuty accepted it
DRY_RUN = "dry_run"  # a dry run logged it (nothing was sent)
DEAD = "dead"  # PagerDuty refused it for good (reason says why)
CLAIMED = "claimed"  # being written to the store: lanes leave it alone


class MemoryItem:
    """One event kept in memory, with what happened to it (guarded by its queue's lock)."""

    __slots__ = ("event", "lane", "created_at", "status", "attempts", "reason")

    def __init__(self, event: Event, lane: int) -> None:
        self.event = event
        self.lane = lane
        self.created_at = time.time()
        self.status = QUEUED
        self.attempts = 0
        self.reason: str | None = None

    def __repr__(self) -> str:
        return f"MemoryItem({self.event.action} {self.event.incident_key} {self.status})"


class MemoryQueue:
    """Thread-safe: lanes take and settle items, the runner adds, claims and drops them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[MemoryItem] = []

    def add(self, events: Iterable[Event], lane_of: Callable[[Event], int]) -> list[MemoryItem]:
        items = [MemoryItem(event, lane_of(event)) for event in events]
        with self._lock:
            self._items.extend(items)
        return items

    def take(self, lane: int) -> MemoryItem | None:
        """The lane's oldest queued item, marked as being sent; None when it has none."""
        with self._lock:
            for item in self._items:
                if item.lane == lane and item.status == QUEUED:
                    item.status = SENDING
                    return item
        return None

    def settle(self, item: MemoryItem, status: str, reason: str | None = None) -> None:
        """What became of a send: SENT, DEAD (with the reason) or QUEUED again (retry)."""
        with self._lock:
            item.status = status
            item.reason = reason
            if status == QUEUED:
                item.attempts += 1

    def put_back(self, item: MemoryItem) -> None:
        """Not sent after all (no slot in the pace, or a stop): queued again, no attempt."""
        with self._lock:
            if item.status == SENDING:
                item.status = QUEUED

    def claim(self, items: Iterable[MemoryItem]) -> bool:
        """Mark the given items as being written to the store, so no lane sends them.

        False (and nothing claimed) while a lane is sending one of them: what became of it
        is not known yet, so it can be neither queued in the store nor counted as sent."""
        items = list(items)
        with self._lock:
            if any(item.status == SENDING for item in items):
                return False
            for item in items:
                if item.status == QUEUED:
                    item.status = CLAIMED
        return True

    def release(self, items: Iterable[MemoryItem]) -> None:
        """The store did not take them after all: lanes may send them again."""
        with self._lock:
            for item in items:
                if item.status == CLAIMED:
                    item.status = QUEUED

    def drop(self, items: Iterable[MemoryItem]) -> None:
        """The store has them now (queued in its outbox, or recorded as sent or dead)."""
        gone = {id(item) for item in items}
        with self._lock:
            self._items = [item for item in self._items if id(item) not in gone]

    def counts(self) -> dict[str, int]:
        """How many items are in each status, for status and metrics."""
        with self._lock:
            out = dict.fromkeys((QUEUED, SENDING, SENT, DRY_RUN, DEAD, CLAIMED), 0)
            for item in self._items:
                out[item.status] += 1
        return out

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
