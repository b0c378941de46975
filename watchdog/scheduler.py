"""When probes run: `schedule` jobs on one event loop thread.

Each check is one `schedule` job whose only work is to start the probe, so the scheduling
never waits on a probe. Probes whose run is a coroutine (HTTP) run as tasks on the same event
loop: thousands cost one thread and no hand-offs. Probes that block (commands) run on a
bounded pool of worker threads, awaited from the loop. Either way results are handled on the
loop thread, one at a time.

Three changes to schedule's defaults matter at scale: due jobs are found through a heap
(run_pending costs O(due log n), not O(n) per tick); a job's next run is planned from its
previous *planned* start (fixed rate: no drift), skipping slots that are already past rather
than running them late in a burst; and first runs (and retries) are planned on a GRID of
wall-clock instants, so the loop wakes once per grid slot for all the checks due in it
instead of once per check. Each wake-up costs system calls, which dominate a loopback probe:
measured here, probes started 20 at a time cost a third of the CPU of probes started one by
one, with no lag (checks start when planned; the plan groups them).

When the loop did not run for a while (the process stopped, a VM paused: aio.PauseWatch),
the rounds it missed are counted and skipped, and a probe that failed across the pause is
not believed: its deadline ran out while nothing ran, so the check is probed again at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import heapq
import itertools
import logging
import math
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import schedule

from watchdog import aio
from watchdog.model import Check, ProbeResult
from watchdog.probes.base import is_async

log = logging.getLogger("watchdog.scheduler")

CLOCK_STEP = datetime.timedelta(seconds=2)  # wall-clock moves beyond this are steps, not drift
MAX_SLEEP = 0.5  # seconds the loop sleeps at most, so health() shows it is alive
GRID = 0.25  # seconds: spread first runs and retries over instants this far apart
CALL_TIMEOUT = 30.0  # seconds another thread waits for the loop to apply set_checks
# Failures in a row one check may have dropped for loop pauses: a loop that keeps pausing
# must still let a real failure through.
MAX_REPROBES = 3

# on_result(check, result, planned_start, started), times in wall-clock seconds since the
# epoch, returns the seconds within which the check should run again (its retry_interval while
# failing), or None to keep its interval. The scheduler applies it: no call back into it.
ResultHandler = Callable[[Check, ProbeResult, float, float], float | None]


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


class _HeapScheduler(schedule.Scheduler):
    """schedule.Scheduler whose run_pending pops due jobs from a heap instead of scanning."""

    def __init__(self) -> None:
        super().__init__()
        self._heap: list[tuple[datetime.datetime, int, schedule.Job]] = []
        self._seq = itertools.count()
        self._live: set[int] = set()
        self.on_missed: Callable[[schedule.Job, int], None] = lambda job, count: None
        self._wall = datetime.datetime.now()
        self._mono = time.monotonic()

    def add(self, interval: float, func: Callable[[], object], first_run: datetime.datetime):
        job = self.every(interval).seconds.do(func)
        job.next_run = first_run
        self._live.add(id(job))
        self._push(job)
        return job

    def _push(self, job: schedule.Job) -> None:
        heapq.heappush(self._heap, (job.next_run, next(self._seq), job))

    def cancel_job(self, job: schedule.Job) -> None:
        self._live.discard(id(job))
        super().cancel_job(job)

    def reschedule(self, job: schedule.Job, when: datetime.datetime) -> None:
        """Move a job's next run (stale heap entries are skipped when popped)."""
        if id(job) in self._live and when != job.next_run:
            job.next_run = when
            self._push(job)

    def _follow_clock(self) -> datetime.datetime:
        """schedule plans in wall-clock time; when that clock steps (NTP, DST in local time,
        a suspend), move every job by the step so no check stops for an hour or bursts."""
        now, mono = datetime.datetime.now(), time.monotonic()
        expected = self._wall + datetime.timedelta(seconds=mono - self._mono)
        step = now - expected
        self._wall, self._mono = now, mono
        if abs(step) > CLOCK_STEP:
            log.warning("wall clock stepped by %+.1fs; moving every check's schedule with it",
                        step.total_seconds())
            jobs = {id(job): job for _, _, job in self._heap if id(job) in self._live}
            for job in jobs.values():
                job.next_run = job.next_run + step
            self._heap = [(job.next_run, next(self._seq), job) for job in jobs.values()]
            heapq.heapify(self._heap)
        return now

    def run_pending(self) -> None:
        now = self._follow_clock()
        while self._heap and self._heap[0][0] <= now:
            when, _, job = heapq.heappop(self._heap)
            if id(job) not in self._live or when != job.next_run:
                continue
            planned = job.next_run
            # job.job_func, not Job.run: Job.run plans a next run (datetime arithmetic and a
            # debug log) that is replaced below anyway; that was 5 % of the runner's CPU.
            job.last_run = now
            if job.job_func() is schedule.CancelJob:
                self.cancel_job(job)
            if id(job) not in self._live:
                continue
            period = datetime.timedelta(seconds=job.interval)
            following = planned + period
            missed = 0
            while following <= now:
                following += period
                missed += 1
            if missed:
                self.on_missed(job, missed)
            job.next_run = following
            self._push(job)

    @property
    def idle_seconds(self) -> float | None:
        while self._heap:
            when, _, job = self._heap[0]
            if id(job) in self._live and when == job.next_run:
                return (when - datetime.datetime.now()).total_seconds()
            heapq.heappop(self._heap)
        return None


class Scheduler:
    """Runs every check on its interval; a slow or hung check never delays another.

    start() runs the event loop in its own thread; set_checks, health and shutdown may be
    called from any thread. on_result is always called on the loop thread, and what it returns
    (a sooner next run, or None) is applied there.
    """

    def __init__(self, on_result: ResultHandler, *, workers: int = 64) -> None:
        self._on_result = on_result
        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe")
        self._loop = aio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._sched = _HeapScheduler()
        self._sched.on_missed = self._missed
        self._jobs: dict[str, schedule.Job] = {}
        self._checks: dict[str, Check] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._async_probes: dict[int, tuple[Any, bool]] = {}
        self._pauses = aio.PauseWatch(time.monotonic())
        self._reprobes: dict[str, int] = {}  # check -> failures dropped in a row for pauses
        self._stopped = False
        self._idle = threading.Condition()
        self._busy_workers = 0  # blocking probes handed to the pool and not back yet
        self.stats: dict[str, CheckStats] = {}
        self._last_tick = time.monotonic()
        self._last_finished = time.monotonic()  # when a worker last handed back a result

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
            busy_workers=self._busy_workers,
            workers=self.workers,
            last_finished_age=now - self._last_finished,
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
        self._pool.shutdown(wait=False, cancel_futures=True)
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
            self._note_pause(time.monotonic())
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
                if task is not None and self._is_async(old.probe):
                    # its result would be dropped; free its socket and let the new one run
                    del self._running[name]
                    task.cancel()
        now = datetime.datetime.now()
        base = _on_grid(now) if spread else now
        for name, check in wanted.items():
            if name in self._jobs:
                continue
            offset = _spread(name, check.interval) if spread else 0.0
            first = base + datetime.timedelta(seconds=offset)
            job = self._sched.add(check.interval, self._starter(name), first)
            job.check_name = name
            self._jobs[name] = job
            self._checks[name] = check
            self.stats.setdefault(name, CheckStats())
        for name in list(self.stats):
            if name not in wanted:
                del self.stats[name]
                self._reprobes.pop(name, None)
        live = {id(check.probe) for check in self._checks.values()}
        for key in [key for key in self._async_probes if key not in live]:
            del self._async_probes[key]
        self._wake()

    def _sooner(self, name: str, delay: float) -> None:
        """Bring the check's next run forward to within `delay` seconds (never later)."""
        job = self._jobs.get(name)
        if job is not None:
            when = _on_grid(datetime.datetime.now() + datetime.timedelta(seconds=delay))
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

    def _reprobe(self, name: str) -> None:
        """Run the check now, outside its schedule (unless it is running or gone)."""
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
            try:
                if self._is_async(check.probe):
                    result = await check.probe.run(check.timeout)
                else:
                    result = await self._in_worker(check)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a probe must never raise; if one does, it is a failure
                log.exception("check %s: probe raised", check.name)
                result = ProbeResult(ok=False, summary=f"probe error: {exc}", severity="error")
            stats = self.stats.get(check.name)
            if stats is not None:
                stats.runs += 1
            if self._discard(check, result, began):
                return
            self._reprobes.pop(check.name, None)
            sooner = self._on_result(check, result, planned, started)
            if sooner is not None:
                self._sooner(check.name, sooner)
        except asyncio.CancelledError:
            pass  # shutdown, or a reload replaced the check: the result is not wanted
        except Exception:
            log.exception("check %s: handling its result failed", check.name)
        finally:
            self._finished(check.name, asyncio.current_task())

    def _note_pause(self, now: float) -> None:
        pause = self._pauses.beat(now)
        if pause is not None:
            log.warning(
                "event loop was not running for %.1fs (process stopped, VM paused or loop "
                "blocked); a failure of the %d probe(s) then in flight is not counted: its "
                "check is probed again at once", pause.seconds, len(self._running))

    def _discard(self, check: Check, result: ProbeResult, began: float) -> bool:
        """True for a failure to drop: its run spanned a pause, so its deadline may have run
        out while nothing ran. The check is probed again at once (once _probe has finished:
        no overlap); that run starts after the pause, so a check is re-probed once per pause.
        """
        if result.ok or self._stopped:
            return False  # a pass is a pass; at shutdown no re-probe could run
        now = time.monotonic()
        self._note_pause(now)  # a timeout may fire before the first tick after a resume
        pause = self._pauses.spanned(began, now)
        if pause is None:
            return False
        dropped = self._reprobes.get(check.name, 0)
        if dropped >= MAX_REPROBES:
            log.warning("check %s: failed across %d loop pauses in a row; counting this failure",
                        check.name, dropped + 1)
            return False
        self._reprobes[check.name] = dropped + 1
        stats = self.stats.get(check.name)
        if stats is not None:
            stats.discarded += 1
        log.debug("check %s: failure not counted, its run spanned a %.1fs pause: %s",
                  check.name, pause.seconds, result.summary)
        self._loop.call_soon(self._reprobe, check.name)
        return True

    def _is_async(self, probe: Any) -> bool:
        """is_async(probe), remembered per probe object (inspect's answer costs ~3 %)."""
        known = self._async_probes.get(id(probe))
        if known is None or known[0] is not probe:
            known = self._async_probes[id(probe)] = (probe, is_async(probe))
        return known[1]

    async def _in_worker(self, check: Check) -> ProbeResult:
        self._busy_workers += 1
        try:
            return await self._loop.run_in_executor(self._pool, check.probe.run, check.timeout)
        finally:
            self._busy_workers -= 1
            self._last_finished = time.monotonic()

    def _finished(self, name: str, task: asyncio.Task | None) -> None:
        if self._running.get(name) is task:
            del self._running[name]
        if not self._running:
            with self._idle:
                self._idle.notify_all()


def _spread(name: str, interval: float) -> float:
    """A stable offset in [0, interval), a multiple of GRID, so first runs don't all start at
    once (and checks whose interval is a multiple of GRID stay on the grid)."""
    offset = (zlib.crc32(name.encode()) % 10_000) / 10_000 * interval
    return math.floor(round(offset / GRID, 6)) * GRID


def _on_grid(when: datetime.datetime) -> datetime.datetime:
    """The first GRID instant (whole multiples of GRID seconds since the epoch) at or after
    `when`, so checks added at different times still share wake-ups."""
    stamp = when.timestamp()
    return datetime.datetime.fromtimestamp(math.ceil(round(stamp / GRID, 6)) * GRID)
