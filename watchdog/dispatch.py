"""Where a probe runs: on the event loop when its run is a coroutine, else on the pool.

Probes whose run is a coroutine (HTTP) run as tasks on the scheduler's event loop: thousands
cost one thread and no hand-offs. Probes that block (commands) run on a bounded pool of
worker threads, awaited from the loop. Either way the result comes back on the loop thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from watchdog.model import Check, ProbeResult
from watchdog.probes.base import is_async

log = logging.getLogger("watchdog.scheduler")


class Dispatch:
    """Runs one probe where it belongs and counts the pool's busy workers (for health)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, workers: int) -> None:
        self.workers = workers
        self._loop = loop
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe")
        self._async_probes: dict[int, tuple[Any, bool]] = {}
        self.busy_workers = 0  # blocking probes handed to the pool and not back yet
        self.last_finished = time.monotonic()  # when a worker last handed back a result

    async def run(self, check: Check) -> ProbeResult | None:
        """The probe's result (None: nothing to judge yet); a probe that raises is a failure
        (a probe must never raise)."""
        try:
            if self.is_async(check.probe):
                return await check.probe.run(check.timeout)
            return await self._in_worker(check)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("check %s: probe raised", check.name)
            return ProbeResult(ok=False, summary=f"probe error: {exc}", severity="error")

    def is_async(self, probe: Any) -> bool:
        """is_async(probe), remembered per probe object (inspect's answer costs ~3 %)."""
        known = self._async_probes.get(id(probe))
        if known is None or known[0] is not probe:
            known = self._async_probes[id(probe)] = (probe, is_async(probe))
        return known[1]

    def keep_only(self, probes: Iterable[Any]) -> None:
        """Forget what is remembered about probes no check uses any more."""
        live = {id(probe) for probe in probes}
        for key in [key for key in self._async_probes if key not in live]:
            del self._async_probes[key]

    def shutdown(self) -> None:
        """Take no more blocking probes; those still queued are dropped."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def follow_up(self, check: Check, result: ProbeResult,
                        work: Callable[[], ProbeResult]) -> ProbeResult:
        """Run a result's blocking follow-up (a check's diagnose or remediation) on the pool;
        its result, or the probe's own if the follow-up raised."""
        self.busy_workers += 1
        try:
            return await self._loop.run_in_executor(self._pool, work)
        except Exception:
            log.exception("check %s: its diagnose or remediation raised", check.name)
            return result
        finally:
            self.busy_workers -= 1
            self.last_finished = time.monotonic()

    async def _in_worker(self, check: Check) -> ProbeResult | None:
        self.busy_workers += 1
        try:
            return await self._loop.run_in_executor(self._pool, check.probe.run, check.timeout)
        finally:
            self.busy_workers -= 1
            self.last_finished = time.monotonic()
