"""The event loop probes run on: uvloop where it is installed, the standard one otherwise.

uvloop (libuv) costs about half the CPU of asyncio's own loop per loopback HTTP probe
(bench/RESULTS.md), and the runner's HTTP probes are its hot path. Setting
PD_WATCHDOG_EVENT_LOOP=asyncio in the environment picks the standard loop, should uvloop
ever be the suspect in an incident.

PauseWatch notices when the loop did not run for a while: the process was stopped (SIGSTOP,
a VM paused or live-migrated) or the loop thread was blocked. Probe deadlines are loop time,
which kept going meanwhile, so a probe in flight then times out whatever its target did.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

# Seconds between two beats that make a pause. The scheduler beats at every tick, at least
# every 0.5 s (scheduler.MAX_SLEEP): 2 s is four beats missed, far beyond timer jitter or a
# busy tick, and well inside the usual probe timeouts (10 s by default) a pause would spend.
PAUSE = 2.0
KEPT_PAUSES = 64  # the latest pauses remembered, for probes that were in flight across them


def loop_name() -> str:
    """Which loop new_event_loop() makes: "uvloop" or "asyncio"."""
    if os.environ.get("PD_WATCHDOG_EVENT_LOOP", "").strip().lower() == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def new_event_loop() -> asyncio.AbstractEventLoop:
    if loop_name() == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on the loop new_event_loop() picks (for one-off work: `check`, tests)."""
    loop = new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


@dataclass(frozen=True)
class Pause:
    """A stretch of time.monotonic() in which the loop did not run."""

    start: float  # the last beat before it
    end: float  # the first beat after it

    @property
    def seconds(self) -> float:
        return self.end - self.start


class PauseWatch:
    """Remembers when the loop was not running, from the gaps between beats.

    Call beat() from the loop thread, often (every tick) and also whenever a result is about
    to be judged: after a resume a probe's timeout may fire before the next tick does."""

    def __init__(self, now: float) -> None:
        self._last = now
        self._pauses: deque[Pause] = deque(maxlen=KEPT_PAUSES)

    def restart(self, now: float) -> None:
        """Forget the time since the last beat (the loop starts, or starts again)."""
        self._last = now

    def beat(self, now: float) -> Pause | None:
        """The loop runs at `now`; return the pause that just ended, if this ends one."""
        last, self._last = self._last, now
        if now - last <= PAUSE:
            return None
        pause = Pause(last, now)
        self._pauses.append(pause)
        return pause

    def spanned(self, started: float, finished: float) -> Pause | None:
        """The latest pause that overlaps the run from `started` to `finished`, if any."""
        for pause in reversed(self._pauses):
            if pause.start < finished and pause.end > started:
                return pause
        return None
