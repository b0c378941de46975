"""Keeps the sender under PagerDuty's Events API rate limit, one Pacer per routing key.

PagerDuty takes about 120 calls a minute per integration (routing) key, counted "over a 60
second window looking back from the current time", and answers 429 (v1: 403) beyond that;
refused calls are calls too. A Pacer keeps the same kind of window on our side: every
attempt takes a slot, and no more than `events` slots are taken in any `window` seconds. So
a backlog drains as fast as PagerDuty allows and earns no 429s of its own making, and a lone
page after a quiet spell goes out at once. All lanes sending to one key share its Pacer.

If PagerDuty throttles anyway (another sender on the same key, a lower limit than
documented), the budget is cut, like TCP's window on a loss, and climbs back over the next
windows; a Retry-After holds every attempt on the key until it has passed.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

PAGERDUTY_EVENTS_PER_MINUTE = 120  # documented as "approximately", per integration key
# Our budget stays under that: ~8 % spare for PagerDuty's "approximately" and for a call
# that reaches PagerDuty later than it left us (its window then ends later than ours).
PACE_EVENTS = 110
PACE_WINDOW = 61.0  # seconds: PagerDuty's 60, plus one so a slot frees after PagerDuty's does
FLOOR_SHARE = 0.2  # a 429 never cuts the budget below this share of `events`
RECOVERY_WINDOWS = 2.0  # after a cut the budget climbs back to `events` over this many windows


@dataclass(frozen=True)
class Pace:
    """A budget of `events` attempts in any `window` seconds, per routing key."""

    events: int = PACE_EVENTS
    window: float = PACE_WINDOW

    def __post_init__(self) -> None:
        if not isinstance(self.events, int) or isinstance(self.events, bool) or self.events < 1:
            raise ValueError(f"pace events must be a whole number >= 1, got {self.events!r}")
        if not isinstance(self.window, int | float) or not self.window > 0:
            raise ValueError(f"pace window must be a number of seconds > 0, got {self.window!r}")

    @property
    def floor(self) -> float:
        """The least budget a cut leaves: delivery slows down, it never stops."""
        return max(1.0, self.events * FLOOR_SHARE)


class Pacer:
    """The attempts on one routing key in the last window, shared (thread-safe) by all lanes."""

    def __init__(self, pace: Pace | None = None, clock: Callable[[], float] = time.monotonic):
        self.pace = pace or Pace()
        self._clock = clock
        self._lock = threading.Lock()
        self._slots: deque[float] = deque()  # when each attempt in the window was made
        self._budget = float(self.pace.events)
        self._budget_at = clock()  # when _budget was last brought up to date
        self._hold_until = -math.inf
        self._accepted_at = -math.inf

    @property
    def budget(self) -> int:
        """Attempts allowed per window right now (lower than pace.events after a cut)."""
        with self._lock:
            self._refresh(self._clock())
            return int(self._budget)

    def reserve(self) -> float:
        """Take a slot for one attempt now and return 0.0, or return seconds until one frees.

        Nothing is taken when the answer is a wait: the caller waits (or does something
        else) and asks again.
        """
        with self._lock:
            now = self._clock()
            self._refresh(now)
            if now < self._hold_until:
                return self._hold_until - now
            budget = int(self._budget)
            if len(self._slots) < budget:
                self._slots.append(now)
                return 0.0
            # Ours is free once all but budget-1 of the slots have left the window.
            frees_at = self._slots[len(self._slots) - budget] + self.pace.window
            wait = frees_at - now
            if self._budget < self.pace.events:  # or sooner, when the budget climbs by one
                wait = min(wait, (budget + 1 - self._budget) / self._climb_rate())
            return max(wait, 1e-3)

    def accepted(self) -> None:
        """PagerDuty took an attempt on this key."""
        with self._lock:
            self._accepted_at = self._clock()

    def throttled(self) -> bool:
        """PagerDuty answered 429 (v1: 403); True if that cut the budget.

        Only a throttle that says our own rate is too high cuts it: PagerDuty took some of our
        attempts within the window, and we had used at least half the budget. A throttle
        with nothing accepted lately is an outage (the backoff deals with it), and one while
        we send little is someone else's doing; cutting then would only slow the drain once
        PagerDuty is back.
        """
        with self._lock:
            now = self._clock()
            self._refresh(now)
            used = len(self._slots)
            if now - self._accepted_at > self.pace.window or used < self._budget / 2:
                return False
            cut = max(self.pace.floor, min(self._budget, used / 2))
            if cut >= self._budget:
                return False
            self._budget = cut
            return True

    def hold(self, seconds: float) -> None:
        """PagerDuty asked for a pause (Retry-After): no attempt on this key before it ends."""
        with self._lock:
            self._hold_until = max(self._hold_until, self._clock() + seconds)

    def _refresh(self, now: float) -> None:
        """Drop slots that left the window; let a cut budget climb back (lock held)."""
        horizon = now - self.pace.window
        while self._slots and self._slots[0] <= horizon:
            self._slots.popleft()
        if self._budget < self.pace.events:
            elapsed = max(0.0, now - self._budget_at)
            self._budget = min(float(self.pace.events), self._budget + elapsed * self._climb_rate())
        self._budget_at = now

    def _climb_rate(self) -> float:
        """Budget regained per second after a cut."""
        return self.pace.events / (RECOVERY_WINDOWS * self.pace.window)
