"""Trouble that lasts: said at once, then once a minute, and once more when it ends.

A full disk fails every write, one per probe and per event: a log line each would bury the
journal in the very moment someone reads it. One line when it starts, one a minute while it
lasts (with how long), one when it is over.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

REPORT_EVERY = 60.0  # seconds between two log lines while the trouble lasts


class Trouble:
    """One kind of store trouble: since when, why, and when it was last logged."""

    def __init__(self, what: str, clock: Callable[[], float] = time.monotonic,
                 log: logging.Logger | None = None) -> None:
        self.what = what
        self._log = log or logging.getLogger("watchdog.runner")
        self._clock = clock
        self.reason: str | None = None
        self.since: float | None = None  # monotonic
        self._logged: float | None = None

    def fail(self, reason: str, detail: str = "") -> None:
        """Note the trouble; log it at once, then at most once per REPORT_EVERY seconds."""
        now = self._clock()
        if self.since is None:
            self.since = now
        self.reason = reason
        if self._logged is not None and now - self._logged < REPORT_EVERY:
            return
        self._logged = now
        self._log.error("%s failing for %.0fs%s: %s", self.what, now - self.since, detail, reason)

    def clear(self, detail: str) -> None:
        if self.since is not None:
            self._log.warning("%s works again after %.0fs%s", self.what, self._clock() - self.since,
                        detail)
        self.reason = self.since = self._logged = None

    def seconds(self) -> float | None:
        return None if self.since is None else self._clock() - self.since
