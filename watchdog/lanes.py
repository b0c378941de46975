"""What the sender's lanes share and remember: one lane's backoff, and the signals every lane
waits on (new events, PagerDuty taking events again, stop and its deadline), the attempt
budget of each routing key, and what sends each event (Targets).

Every wait of every lane is on one condition variable, notified on any news, so a lane
backing off wakes the moment another lane gets through or stop() is called.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from watchdog.model import CHANGE, Event
from watchdog.pacer import Pace, Pacer


@dataclass
class Lane:
    """What one lane remembers between outbox reads."""

    index: int
    streak: int = 0  # attempts failed in a row; 0 again after an accept or a shared recovery
    retry_id: int | None = None  # the outbox item whose backoff is running
    retry_at: float = 0.0  # monotonic instant its next attempt is due
    recoveries: int = 0  # LaneSignals.recoveries when that backoff began


class LaneSignals:
    """Wake-ups, recoveries and stopping, for `lanes` lanes; safe from any thread."""

    def __init__(self, lanes: int) -> None:
        self._cv = threading.Condition()
        self._woken = [False] * lanes  # set by wake(), cleared by the lane before it reads
        self.recoveries = 0  # bumped when an event is accepted after failures
        self._stopping = threading.Event()
        self._deadline: float | None = None  # monotonic; set by stop()

    def wake(self) -> None:
        """News for every lane: new events were recorded, or stop() was called."""
        with self._cv:
            self._woken[:] = [True] * len(self._woken)
            self._cv.notify_all()

    def woken(self, index: int) -> bool:
        return self._woken[index]

    def clear(self, index: int) -> None:
        """The lane is about to read the outbox: a wake() after this still wakes it."""
        with self._cv:
            self._woken[index] = False

    def recovered(self) -> None:
        """An event got through after failures: lanes backing off retry now."""
        with self._cv:
            self.recoveries += 1
            self._cv.notify_all()

    def stop(self, flush_timeout: float) -> None:
        """Lanes may keep going for flush_timeout s more; every wait ends by then."""
        self._deadline = time.monotonic() + max(0.0, flush_timeout)
        self._stopping.set()
        self.wake()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def time_left(self) -> float:
        """Seconds until stop()'s deadline (infinite before stop())."""
        deadline = self._deadline
        return float("inf") if deadline is None else max(0.0, deadline - time.monotonic())

    def out_of_time(self) -> bool:
        deadline = self._deadline
        return deadline is not None and time.monotonic() >= deadline

    def wait(self, seconds: float, until: Callable[[], bool]) -> None:
        """Wait up to seconds (never past stop()'s deadline) or until until() holds."""
        seconds = min(seconds, self.time_left())
        with self._cv:
            self._cv.wait_for(until, timeout=seconds)

    def pause(self, delay: float) -> bool:
        """Wait delay seconds unless stop() comes first; False means stop."""
        if self._stopping.is_set():
            return False
        return not self._stopping.wait(delay)


class Pacers:
    """The attempt budget of each routing key, shared by all lanes; created on first use
    (a reload may change the key)."""

    def __init__(self, pace: Pace | None) -> None:
        self.pace = pace
        self._by_key: dict[str, Pacer] = {}
        self._lock = threading.Lock()

    def of(self, alert: Any) -> Pacer | None:
        """The budget of the alert's routing key (a ChangeEvent's: the same key's), or None
        when unpaced (no pace, or an alert without a key, such as the dry run's)."""
        key = getattr(alert, "service_key", None) or getattr(alert, "routing_key", None)
        if self.pace is None or not isinstance(key, str) or not key:
            return None
        with self._lock:
            pacer = self._by_key.get(key)
            if pacer is None:
                pacer = self._by_key[key] = Pacer(self.pace)
            return pacer


class Targets:
    """What sends events: the Alert, and for change events the ChangeEvent (None: the
    Alert is asked, which only the dry run's can answer); a reload swaps both at once."""

    def __init__(self, alert: Any, changes: Any = None) -> None:
        self._lock = threading.Lock()
        self.set(alert, changes)

    def set(self, alert: Any, changes: Any = None) -> None:
        with self._lock:
            self._alert, self._changes = alert, changes

    @property
    def alert(self) -> Any:
        with self._lock:
            return self._alert

    def of(self, event: Event) -> Any:
        """What sends this event."""
        with self._lock:
            if event.action == CHANGE and self._changes is not None:
                return self._changes
            return self._alert
