"""Which failures not to believe: those whose run spanned a pause of the event loop.

When the loop did not run for a while (the process stopped, a VM paused: aio.PauseWatch),
a probe in flight then had its deadline run out while nothing ran, so its failure says
nothing about its target. The scheduler probes such a check again at once instead.
"""

from __future__ import annotations

import logging

from watchdog import aio
from watchdog.model import ProbeResult

log = logging.getLogger("watchdog.scheduler")

# Failures in a row one check may have dropped for loop pauses: a loop that keeps pausing
# must still let a real failure through.
MAX_REPROBES = 3


class PauseJudge:
    """Notices the loop's pauses and judges each failure against them (loop thread only)."""

    def __init__(self, now: float) -> None:
        self._pauses = aio.PauseWatch(now)
        self._dropped: dict[str, int] = {}  # check -> failures dropped in a row for pauses

    def restart(self, now: float) -> None:
        """The loop starts: the time before it is no pause."""
        self._pauses.restart(now)

    def beat(self, now: float, in_flight: int) -> None:
        """The loop runs at `now`; say so once if it had not run for a while."""
        pause = self._pauses.beat(now)
        if pause is not None:
            log.warning(
                "event loop was not running for %.1fs (process stopped, VM paused or loop "
                "blocked); a failure of the %d probe(s) then in flight is not counted: its "
                "check is probed again at once", pause.seconds, in_flight)

    def disbelieve(self, name: str, result: ProbeResult, began: float, now: float,
                   in_flight: int) -> bool:
        """True for a failure (begun at `began`, monotonic) whose run spanned a pause, up to
        MAX_REPROBES in a row per check; the caller then probes the check again."""
        self.beat(now, in_flight)  # a timeout may fire before the first tick after a resume
        pause = self._pauses.spanned(began, now)
        if pause is None:
            return False
        dropped = self._dropped.get(name, 0)
        if dropped >= MAX_REPROBES:
            log.warning("check %s: failed across %d loop pauses in a row; counting this failure",
                        name, dropped + 1)
            return False
        self._dropped[name] = dropped + 1
        log.debug("check %s: failure not counted, its run spanned a %.1fs pause: %s",
                  name, pause.seconds, result.summary)
        return True

    def reset(self, name: str) -> None:
        """Count the check's dropped failures from zero again (a result of it was taken, or
        the check is gone)."""
        self._dropped.pop(name, None)
