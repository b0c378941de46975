"""When probes run: `schedule` jobs on one event loop thread.

Each check is one `schedule` job whose only work is to start the probe, so the scheduling
never waits on a probe. The parts: watchdog.timing plans when each job is due (a heap, on a
grid of wall-clock instants), watchdog.dispatch runs the probe (on the loop, or on the worker
pool for blocking ones), watchdog.pauses judges failures against the loop's pauses. Results
are handled on the loop thread, one at a time.

When the loop did not run for a while (the process stopped, a VM paused: aio.PauseWatch),
the rounds it missed are counted and skipped, and a probe that failed across the pause is
not believed: its deadline ran out while nothing ran, so the check is probed again at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import schedule

from watchdog import aio, timing
from watchdog.dispatch import Dispatch
from watchdog.model import Check, ProbeResult
from watchdog.pauses import PauseJudge

log = logging.getLogger("watchdog.scheduler")

MAX_SLEEP = 0.5  # seconds the loop sleeps at most, so health() shows it is alive
CALL_TIMEOUT = 30.0  # seconds another thread waits for the loop to apply set_checks

# on_result(check, result, planned_start, started), times in wall-clock seconds since the
# epoch, returns the seconds within which the check should run again (its retry_interval while
# failing), or None to keep its interval. The scheduler applies it: no call back into it.
ResultHandler = Callable[[Check, ProbeResult, float, float], float | None]
# prepare(check, result), on the loop thread before on_result: None (nearly always), or the
# blocking work the result needs first (watchdog.remediation), run on the pool; what it
# returns is the result on_result gets.
Preparer = Callable[[Check, ProbeResult], Callable[[], ProbeResult] | None]


@dataclass(frozen=True)
class SchedulerHealth:
    """The loop's and the pool's vital signs at one instant (Scheduler.health())."""

    last_tick_age: float  # seconds since the loop last ticked (it ticks every MAX_SLEEP at most)
    busy_workers: int  # blocking probes handed to the pool and not back yet
    workers: int  # the pool's size
    last_finished_age: float  # seconds since a worker last handed back a result
    running: int  # probes started and not finished, on the pool or on the loop


@dataclass
class CheckStats:
    runs: int = 0
    skipped: int = 0
    missed: int = 0
    discarded: int = 0  # failures dropped because the run spanned a pause of the loop


class Scheduler:
    """Runs every check on its interval; a slow or hung check never delays another.

    start() runs the event loop in its own thread; set_checks, health and shutdown may be
    called from any thread. on_result is always called on the loop thread, and what it returns
    (a sooner next run, or None) is applied there.
    """

    def __init__(self, on_result: ResultHandler, *, workers: int = 64,
                 prepare: Preparer | None = None) -> None:
        self._on_result = on_result
        self._prepare = prepare
        self.workers = workers
        self._loop = aio.new_event_loop()
        self._dispatch = Dispatch(self._loop, workers)
        self._thread: threading.Thread | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._sched = timing.HeapScheduler()
        self._sched.on_missed = self._missed
        self._jobs: dict[str, schedule.Job] = {}
        self._checks: dict[str, Check] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._pauses = PauseJudge(time.monotonic())
        self._stopped = False
        self._idle = threading.Condition()
        self.stats: dict[str, CheckStats] = {}
        self._last_tick = time.monotonic()

    # --- any thread -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the loop thread; checks run from now on."""
        self._thread = threading.Thread(target=self._serve, name="scheduler", daemon=True)
        self._thread.start()

    def set_checks(self, checks: Iterable[Check], *, spread: bool = True) -> None:
        """Install a new set of checks; unchanged ones keep their job and timing."""
        self._call(self._set_checks, list(checks), spread)

    def running(self) -> int:
        """Probes started and not finished."""
        return len(self._running)

    def health(self, now: float | None = None) -> SchedulerHealth:
        """A snapshot for the runner's health check (`now`: time.monotonic(), by default)."""
        now = time.monotonic() if now is None else now
        return SchedulerHealth(
            last_tick_age=now - self._last_tick,
            busy_workers=self._dispatch.busy_workers,
            workers=self.workers,
            last_finished_age=now - self._dispatch.last_finished,
            running=len(self._running),
        )

    def shutdown(self, timeout: float) -> bool:
        """Stop scheduling; wait up to `timeout` for running probes. True if all finished.

        Probes still running at the deadline are cancelled; their results are dropped."""
        deadline = time.monotonic() + timeout
        self._call(self._cancel_all, wait=False)  # one deadline for all of it, wedged or not
        finished = True
        with self._idle:
            while self._running and self._is_serving():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    finished = False
                    break
                self._idle.wait(min(remaining, 0.1))
        self._dispatch.shutdown()
        if self._is_serving():
            self._loop.call_soon_threadsafe(self._loop.stop)
            assert self._thread is not None
            self._thread.join(5)
        elif self._thread is None and not self._loop.is_closed():
            self._loop.close()
        return finished

    def _is_serving(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _call(self, fn: Callable[..., Any], *args: Any, wait: bool = True) -> None:
        """Run fn on the loop thread (directly when there is none yet, or we are on it)."""
        if not self._is_serving() or threading.current_thread() is self._thread:
            fn(*args)
            return
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def call() -> None:
            try:
                fn(*args)
            except BaseException as exc:  # handed to the waiting thread
                done.set_exception(exc)
            else:
                done.set_result(None)

        self._loop.call_soon_threadsafe(call)
        if not wait:
            return
        try:
            done.result(CALL_TIMEOUT)
        except concurrent.futures.TimeoutError:
            # A wedged loop already stops the WATCHDOG=1 pings (systemd restarts us);
            # the caller must not hang or crash meanwhile. The call stays queued.
            log.error("the scheduler loop did not answer within %.0fs; %s is applied when it "
                      "does", CALL_TIMEOUT, getattr(fn, "__name__", "the change"))

    # --- the loop thread --------------------------------------------------------------

    def _serve(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        self._pauses.restart(time.monotonic())  # the time before start() was no pause
        loop.call_soon(self._on_timer)
        try:
            loop.run_forever()
        finally:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()

    def _on_timer(self) -> None:
        self._timer = None
        if self._stopped:
            return
        idle = MAX_SLEEP
        try:
            self._pauses.beat(time.monotonic(), len(self._running))
            idle = self.tick()
        except Exception:  # a bug must not stop every check: log it, tick again soon
            log.exception("scheduler: a tick failed")
        finally:
            if not self._stopped:
                self._timer = self._loop.call_later(min(idle, MAX_SLEEP), self._on_timer)

    def _wake(self) -> None:
        """Tick now: a job may have become due sooner than the timer expects."""
        if self._is_serving() and not self._stopped:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_soon(self._on_timer)

    def tick(self) -> float:
        """Start what is due; return seconds until the next job is due."""
        self._last_tick = time.monotonic()
        self._sched.run_pending()
        idle = self._sched.idle_seconds
        return 3600.0 if idle is None else max(0.0, idle)

    def _set_checks(self, wanted_list: list[Check], spread: bool) -> None:
        if self._stopped:
            return
        wanted = {check.name: check for check in wanted_list}
        for name in list(self._jobs):
            old = self._checks[name]
            new = wanted.get(name)
            if new is None or new.fingerprint != old.fingerprint or new.interval != old.interval:
                self._sched.cancel_job(self._jobs.pop(name))
                del self._checks[name]
                task = self._running.get(name)
                if task is not None and self._dispatch.is_async(old.probe):
                    # its result would be dropped; free its socket and let the new one run
                    del self._running[name]
                    task.cancel()
        now = datetime.datetime.now()
        base = timing.on_grid(now) if spread else now
        for name, check in wanted.items():
            if name in self._jobs:
                continue
            offset = timing.spread(name, check.interval) if spread else 0.0
            first = base + datetime.timedelta(seconds=offset)
            job = self._sched.add(check.interval, self._starter(name), first)
            job.check_name = name
            self._jobs[name] = job
            self._checks[name] = check
            self.stats.setdefault(name, CheckStats())
        for name in list(self.stats):
            if name not in wanted:
                del self.stats[name]
                self._pauses.reset(name)
        self._dispatch.keep_only(check.probe for check in self._checks.values())
        self._wake()

    def _sooner(self, name: str, delay: float) -> None:
        """Bring the check's next run forward to within `delay` seconds (never later)."""
        job = self._jobs.get(name)
        if job is not None:
            when = timing.on_grid(datetime.datetime.now() + datetime.timedelta(seconds=delay))
            if when < job.next_run:
                self._sched.reschedule(job, when)
                self._wake()

    def _cancel_all(self) -> None:
        self._stopped = True
        for job in list(self._jobs.values()):
            self._sched.cancel_job(job)
        self._jobs.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _starter(self, name: str) -> Callable[[], None]:
        def start() -> None:
            check = self._checks[name]
            planned = self._jobs[name].next_run.timestamp()
            if name in self._running:
                self.stats[name].skipped += 1
                log.debug("check %s: still running at its next tick, skipped", name)
                return
            self._running[name] = self._loop.create_task(self._probe(check, planned))

        return start

    def run_now(self, names: Iterable[str]) -> None:
        """Probe these checks as soon as the loop is free (after the result being handled,
        if called from a result handler), outside their schedule; from any thread. A check
        already running is not started twice: its result is on its way."""
        wanted = list(names)
        self._call(lambda: self._loop.call_soon(self._run_all_now, wanted), wait=False)

    def _run_all_now(self, names: list[str]) -> None:
        for name in names:
            self._run_now(name)

    def _run_now(self, name: str) -> None:
        """Run the check now, outside its schedule (unless it is running or gone); its result
        goes to on_result like any other. Loop thread only (from another: _call)."""
        check = self._checks.get(name)
        if check is not None and name not in self._running and not self._stopped:
            self._running[name] = self._loop.create_task(self._probe(check, time.time()))

    def _missed(self, job: schedule.Job, count: int) -> None:
        stats = self.stats.get(getattr(job, "check_name", ""))
        if stats is not None:
            stats.missed += count

    async def _probe(self, check: Check, planned: float) -> None:
        started, began = time.time(), time.monotonic()
        try:
            result = await self._dispatch.run(check)
            stats = self.stats.get(check.name)
            if stats is not None:
                stats.runs += 1
            if result is None:
                return  # nothing to judge yet (a passive check before its first report)
            if self._discard(check, result, began):
                return
            self._pauses.reset(check.name)
            work = self._prepare(check, result) if self._prepare is not None else None
            if work is not None:
                result = await self._dispatch.follow_up(check, result, work)
            sooner = self._on_result(check, result, planned, started)
            if sooner is not None:
                self._sooner(check.name, sooner)
        except asyncio.CancelledError:
            pass  # shutdown, or a reload replaced the check: the result is not wanted
        except Exception:
            log.exception("check %s: handling its result failed", check.name)
        finally:
            self._finished(check.name, asyncio.current_task())

    def _discard(self, check: Check, result: ProbeResult, began: float) -> bool:
        """True for a failure to drop: its run spanned a pause, so its deadline may have run
        out while nothing ran. The check is probed again at once (once _probe has finished:
        no overlap); that run starts after the pause, so a check is re-probed once per pause.
        """
        if result.ok or self._stopped:
            return False  # a pass is a pass; at shutdown no re-probe could run
        now = time.monotonic()
        if not self._pauses.disbelieve(check.name, result, began, now, len(self._running)):
            return False
        stats = self.stats.get(check.name)
        if stats is not None:
            stats.discarded += 1
        self._loop.call_soon(self._run_now, check.name)
        return True

    def _finished(self, name: str, task: asyncio.Task | None) -> None:
        if self._running.get(name) is task:
            del self._running[name]
        if not self._running:
            with self._idle:
                self._idle.notify_all()
