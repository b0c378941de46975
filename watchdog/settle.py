"""Taking delivered events out of the outbox, even while the store cannot write.

An event leaves the outbox once PagerDuty accepted it (or refused it for good). When that
write fails (a full disk), the lane must not stop: it would hold every later event of its
lane back, pages included. So the outcome is kept here, the lanes skip the item, and the
next settle that works writes everything kept, in outbox order, in one transaction: a
restart then never re-sends an older event of a key whose newer one it has forgotten.
"""

from __future__ import annotations

import logging
import threading

from watchdog.store import SENT, Store
from watchdog.trouble import Trouble

log = logging.getLogger("watchdog.sender")


class Settlement:
    """Outcomes of delivered outbox items (Store.settle's SENT, DRY_RUN, DEAD), thread-safe."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[str, str | None]] = {}
        self.trouble = Trouble("sender: updating the outbox", log=log)

    @property
    def error(self) -> str | None:
        """Why the store did not take the last settle, while it does not."""
        return self.trouble.reason

    def __bool__(self) -> bool:
        """Whether outcomes are waiting for the store."""
        return bool(self._waiting)

    def unsettled(self) -> set[int]:
        """Ids delivered but still in the outbox. Take it before reading the outbox: any lane
        may settle them meanwhile, and one settled after the read must still be skipped."""
        with self._lock:
            return set(self._waiting)

    def settle(self, item_id: int | None = None, outcome: str = SENT,
               reason: str | None = None) -> bool:
        """Record an outcome (if given) and write every waiting one; True when none waits."""
        with self._lock:
            if item_id is not None:
                self._waiting[item_id] = (outcome, reason)
            if not self._waiting:
                return True
            outcomes = [(item, *how) for item, how in sorted(self._waiting.items())]
            try:
                self.store.settle(outcomes)
            except Exception as exc:
                self.trouble.fail(str(exc), f" ({len(outcomes)} delivered events kept in memory "
                                             "until it can)")
                return False
            self._waiting.clear()
            self.trouble.clear(f"; {len(outcomes)} delivered events settled")
            return True
