"""When probes run: `schedule` jobs feeding a bounded worker pool.

Each check is one `schedule` job whose only work is to hand the probe to the pool, so the
scheduling thread never waits on a probe. Two changes to schedule's defaults matter at scale:
due jobs are found through a heap (run_pending costs O(due log n), not O(n) per tick), and a
job's next run is planned from its previous *planned* start (fixed rate: no drift), skipping
slots that are already past rather than running them late in a burst.
"""

from __future__ import annotations

import datetime
import heapq
import itertools
import logging
import queue
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import schedule

from watchdog.model import Check, ProbeResult

log = logging.getLogger("watchdog.scheduler")

CLOCK_STEP = datetime.timedelta(seconds=2)  # wall-clock moves beyond this are steps, not drift

# on_result(check, result, planned_start, started) — wall-clock seconds since the epoch.
ResultHandler = Callable[[Check, ProbeResult, float, float], None]


@dataclass
class CheckStats:
    runs: int = 0
    skipped: int = 0
    missed: int = 0


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
            self._run_job(job)
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

    Not thread-safe by design: set_checks/tick are called from one thread (the runner's
    main loop); workers talk back only through a queue.
    """

    def __init__(self, on_result: ResultHandler, *, workers: int = 64) -> None:
        self._on_result = on_result
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe")
        self._sched = _HeapScheduler()
        self._sched.on_missed = self._missed
        self._jobs: dict[str, schedule.Job] = {}
        self._checks: dict[str, Check] = {}
        self._running: set[str] = set()
        self._running_lock = threading.Lock()
        self._sooner: queue.SimpleQueue[tuple[str, float]] = queue.SimpleQueue()
        self._idle = threading.Condition()
        self.stats: dict[str, CheckStats] = {}
        self.last_tick = time.monotonic()
        self.last_finished = time.monotonic()

    # --- the scheduling thread -------------------------------------------------------

    def set_checks(self, checks: Iterable[Check], *, spread: bool = True) -> None:
        """Install a new set of checks; unchanged ones keep their job and timing."""
        wanted = {check.name: check for check in checks}
        for name in list(self._jobs):
            old = self._checks[name]
            new = wanted.get(name)
            if new is None or new.fingerprint != old.fingerprint or new.interval != old.interval:
                self._sched.cancel_job(self._jobs.pop(name))
                del self._checks[name]
        now = datetime.datetime.now()
        for name, check in wanted.items():
            if name in self._jobs:
                continue
            offset = _spread(name, check.interval) if spread else 0.0
            first = now + datetime.timedelta(seconds=offset)
            job = self._sched.add(check.interval, self._submitter(name), first)
            job.check_name = name
            self._jobs[name] = job
            self._checks[name] = check
            self.stats.setdefault(name, CheckStats())
        for name in list(self.stats):
            if name not in wanted:
                del self.stats[name]

    def _submitter(self, name: str) -> Callable[[], None]:
        def submit() -> None:
            check = self._checks[name]
            job = self._jobs[name]
            planned = job.next_run.timestamp()
            with self._running_lock:
                if name in self._running:
                    self.stats[name].skipped += 1
                    log.debug("check %s: still running at its next tick, skipped", name)
                    return
                self._running.add(name)
            future = self._pool.submit(self._probe, check, planned)
            future.add_done_callback(lambda f: f.cancelled() and self._finished(name))

        return submit

    def _missed(self, job: schedule.Job, count: int) -> None:
        stats = self.stats.get(getattr(job, "check_name", ""))
        if stats is not None:
            stats.missed += count

    def tick(self) -> float:
        """Start what is due; return seconds until the next job is due (None: nothing)."""
        self.last_tick = time.monotonic()
        while True:
            try:
                name, delay = self._sooner.get_nowait()
            except queue.Empty:
                break
            job = self._jobs.get(name)
            if job is not None:
                when = datetime.datetime.now() + datetime.timedelta(seconds=delay)
                if when < job.next_run:
                    self._sched.reschedule(job, when)
        self._sched.run_pending()
        idle = self._sched.idle_seconds
        return 3600.0 if idle is None else max(0.0, idle)

    # --- worker threads ---------------------------------------------------------------

    def check_sooner(self, name: str, delay: float) -> None:
        """Ask for the check's next run within `delay` seconds (retry_interval while failing)."""
        self._sooner.put((name, delay))

    def _probe(self, check: Check, planned: float) -> None:
        started = time.time()
        try:
            try:
                result = check.probe.run(check.timeout)
            except Exception as exc:  # a probe must never raise; if one does, it is a failure
                log.exception("check %s: probe raised", check.name)
                result = ProbeResult(ok=False, summary=f"probe error: {exc}", severity="error")
            stats = self.stats.get(check.name)
            if stats is not None:
                stats.runs += 1
            self._on_result(check, result, planned, started)
        except Exception:
            log.exception("check %s: handling its result failed", check.name)
        finally:
            self._finished(check.name)

    def _finished(self, name: str) -> None:
        self.last_finished = time.monotonic()
        with self._running_lock:
            self._running.discard(name)
            idle = not self._running
        if idle:
            with self._idle:
                self._idle.notify_all()

    def running(self) -> int:
        with self._running_lock:
            return len(self._running)

    def shutdown(self, timeout: float) -> bool:
        """Stop scheduling; wait up to `timeout` for running probes. True if all finished."""
        for job in list(self._jobs.values()):
            self._sched.cancel_job(job)
        self._jobs.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + timeout
        with self._idle:
            while self.running():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True


def _spread(name: str, interval: float) -> float:
    """A stable offset in [0, interval) so first runs don't all start at once."""
    return (zlib.crc32(name.encode()) % 10_000) / 10_000 * interval
