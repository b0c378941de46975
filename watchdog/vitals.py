"""Whether the runner is well: for WATCHDOG=1 (health), the heartbeat and /healthz
(service_health), and the DEGRADED line of STATUS= and `status` (degraded)."""

from __future__ import annotations

import time

from watchdog.recorder import Recorder
from watchdog.scheduler import Scheduler
from watchdog.sender import Sender

STALL = 30.0  # seconds without a finished probe, all workers busy, before we call it wedged
LOOP_STALL = 10.0  # seconds without a scheduler tick (it ticks at least every 0.5 s): wedged
DELIVERY_STALL = 600.0  # seconds an event may wait for PagerDuty before we stop saying healthy


class Vitals:
    """Judges the scheduler's loop and pool, the state file and delivery, from what they
    tell; it changes nothing."""

    def __init__(self, scheduler: Scheduler, recorder: Recorder, sender: Sender) -> None:
        self.scheduler = scheduler
        self.recorder = recorder
        self.sender = sender
        self._resumed = 0.0  # monotonic: when the process last came back from a pause

    def resumed(self) -> None:
        """The process was stopped or paused until now: a quiet loop before this is no wedge."""
        self._resumed = time.monotonic()

    def health(self, longest_timeout: float) -> tuple[bool, str]:
        """Healthy while the loop ticks and probes still finish (for WATCHDOG=1, heartbeat,
        /healthz): a stuck loop or a pool whose every worker hangs is not healthy."""
        now = time.monotonic()
        vitals = self.scheduler.health(now)
        quiet = min(vitals.last_tick_age, now - self._resumed)
        if quiet > LOOP_STALL:
            return False, f"scheduler loop has not run for {quiet:.0f}s"
        if (
            vitals.busy_workers >= vitals.workers
            and vitals.last_finished_age > STALL + longest_timeout
        ):
            return False, "every probe worker is stuck; no probe finished recently"
        return True, "ok"

    def service_health(self, longest_timeout: float, oldest_pending_age: float
                       ) -> tuple[bool, str]:
        """health() plus delivery and the state file, for the heartbeat and /healthz: a
        runner that cannot get pages to PagerDuty, or cannot record them, must stop saying it
        is fine. (Not for WATCHDOG=1: a restart fixes neither PagerDuty nor a full disk.)"""
        healthy, why = self.health(longest_timeout)
        if not healthy:
            return healthy, why
        degraded = self.degraded()
        if degraded:
            return False, degraded
        if oldest_pending_age > DELIVERY_STALL:
            return False, (
                f"an event has waited {oldest_pending_age:.0f}s for PagerDuty; see `status`"
            )
        return True, "ok"

    def degraded(self) -> str | None:
        """Why the state file cannot be trusted right now (pages still go out), or None."""
        trouble = self.recorder.trouble or self.sender.settle_error
        if trouble is None:
            return None
        held = self.recorder.held
        kept = f"; {held} state changes kept in memory" if held else ""
        return f"degraded: cannot record state ({trouble}){kept}; pages still go out"
