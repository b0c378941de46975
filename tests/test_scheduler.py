"""The scheduler with real threads: hung probes never delay others, checks never overlap."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import threading
import time
import types

import pytest

from watchdog import pauses as pauses_module
from watchdog import scheduler as scheduler_module
from watchdog import timing as timing_module
from watchdog.model import Check, ProbeResult
from watchdog.scheduler import Scheduler
from watchdog.timing import GRID, spread


class FakeProbe:
    def __init__(self, block: threading.Event | None = None):
        self.block = block
        self.calls = 0
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()

    def run(self, timeout: float) -> ProbeResult:
        with self.lock:
            self.calls += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            if self.block is not None:
                self.block.wait(10)
            return ProbeResult(ok=True, summary="ok")
        finally:
            with self.lock:
                self.active -= 1


def make(name, probe, interval=0.1, fingerprint="f"):
    return Check(
        name=name, kind="fake", probe=probe, interval=interval, timeout=1, fingerprint=fingerprint
    )


class Driver:
    """Starts the scheduler's loop thread, as the runner does; the test shuts it down."""

    def __init__(self, scheduler: Scheduler):
        self.scheduler = scheduler

    def __enter__(self):
        self.scheduler.start()
        return self

    def __exit__(self, *exc):
        self.scheduler.shutdown(5)


class AsyncProbe:
    """A probe whose run is a coroutine: it runs on the scheduler's event loop."""

    def __init__(self, hang: bool = False):
        self.hang = hang
        self.calls = 0
        self.threads: set[str] = set()
        self.cancelled = 0

    async def run(self, timeout: float) -> ProbeResult:
        self.calls += 1
        self.threads.add(threading.current_thread().name)
        try:
            if self.hang:
                await asyncio.sleep(3600)
            await asyncio.sleep(0)
            return ProbeResult(ok=True, summary="ok")
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def test_a_hung_check_neither_overlaps_itself_nor_delays_others():
    release = threading.Event()
    hung, quick = FakeProbe(block=release), FakeProbe()
    results = []
    sched = Scheduler(lambda c, r, p, s: results.append(c.name), workers=4)
    sched.set_checks([make("hung", hung), make("quick", quick)], spread=False)
    try:
        with Driver(sched):
            wait_until(lambda: quick.calls >= 10 and sched.stats["hung"].skipped >= 5)
            assert hung.calls == 1 and hung.max_active == 1
            release.set()
            wait_until(lambda: "hung" in results)
    finally:
        release.set()
        assert sched.shutdown(5)


def test_results_carry_planned_and_actual_start():
    seen = []
    sched = Scheduler(lambda c, r, planned, started: seen.append((planned, started)), workers=2)
    sched.set_checks([make("a", FakeProbe())], spread=False)
    with Driver(sched):
        wait_until(lambda: len(seen) >= 3)
    sched.shutdown(2)
    plans = [planned for planned, _ in seen[:3]]
    # Fixed rate: planned starts are exactly one interval apart (no drift).
    assert plans[1] - plans[0] == pytest.approx(0.1, abs=1e-6)
    assert plans[2] - plans[1] == pytest.approx(0.1, abs=1e-6)
    assert all(started >= planned for planned, started in seen)


def test_set_checks_keeps_unchanged_jobs_and_drops_removed_ones():
    sched = Scheduler(lambda *a: None, workers=2)
    a, b = make("a", FakeProbe(), interval=60), make("b", FakeProbe(), interval=60)
    sched.set_checks([a, b])
    job_a = sched._jobs["a"]
    sched.set_checks([a, make("c", FakeProbe(), interval=60)])
    assert sched._jobs["a"] is job_a
    assert set(sched._jobs) == {"a", "c"} and set(sched.stats) == {"a", "c"}
    sched.set_checks([make("a", FakeProbe(), interval=60, fingerprint="changed")])
    assert sched._jobs["a"] is not job_a
    sched.shutdown(1)


def test_first_runs_are_spread_over_the_interval():
    offsets = [spread(f"check-{i}", 10.0) for i in range(1000)]
    assert all(0 <= o < 10 for o in offsets)
    assert sum(o < 5 for o in offsets) == pytest.approx(500, abs=80)
    assert spread("x", 10.0) == spread("x", 10.0)


def test_first_runs_and_retries_are_planned_on_the_grid_to_share_wake_ups():
    def on_grid(when: datetime.datetime) -> bool:
        slots = when.timestamp() / GRID
        return abs(slots - round(slots)) < 1e-3

    sched = Scheduler(lambda *a: None, workers=1)
    sched.set_checks([make(f"c{i}", FakeProbe(), interval=10) for i in range(300)])
    firsts = [job.next_run for job in sched._jobs.values()]
    assert all(on_grid(first) for first in firsts)
    assert len(set(firsts)) <= 10 / GRID  # 300 checks, at most 100 wake-ups per interval
    sched._sooner("c0", 0.123)
    assert on_grid(sched._jobs["c0"].next_run)
    sched.shutdown(1)


def test_a_delay_the_result_handler_returns_brings_the_next_run_forward():
    """The handler says how soon to run again (a failing check's retry_interval); the
    scheduler applies it, so nothing has to call back into the scheduler."""
    probe = FakeProbe()
    answers = iter([0.05])  # after the first result: again within 50 ms; then the interval
    sched = Scheduler(lambda *a: next(answers, None), workers=2)
    sched.set_checks([make("slow", probe, interval=3600)], spread=False)
    with Driver(sched):
        wait_until(lambda: probe.calls == 2)
        next_run = on_loop(sched, lambda: sched._jobs["slow"].next_run)
    assert next_run > datetime.datetime.now() + datetime.timedelta(seconds=3000)  # None: kept


def test_a_returned_delay_never_postpones_a_run():
    probe = FakeProbe()
    sched = Scheduler(lambda *a: 7200.0, workers=1)  # later than the interval: ignored
    sched.set_checks([make("c", probe, interval=3600)], spread=False)
    with Driver(sched):
        wait_until(lambda: probe.calls == 1)
        planned = on_loop(sched, lambda: sched._jobs["c"].next_run)
    assert planned < datetime.datetime.now() + datetime.timedelta(seconds=3601)


def on_loop(sched, fn):
    """fn() run on the loop thread, after what the loop is doing now (a result's handling)."""
    out = []
    sched._call(lambda: out.append(fn()))
    return out[0]


def test_a_raising_probe_becomes_a_failure_result():
    class Broken:
        def run(self, timeout):
            raise RuntimeError("boom")

    seen = []
    sched = Scheduler(lambda c, r, p, s: seen.append(r), workers=1)
    sched.set_checks([make("b", Broken())], spread=False)
    with Driver(sched):
        wait_until(lambda: seen)
    sched.shutdown(1)
    assert not seen[0].ok and "boom" in seen[0].summary


def test_shutdown_waits_for_running_probes_up_to_a_deadline():
    release = threading.Event()
    seen = []
    sched = Scheduler(lambda c, r, p, s: seen.append(c.name), workers=1)
    sched.set_checks(
        [make("hung", FakeProbe(block=release)), make("queued", FakeProbe())], spread=False
    )
    sched.start()
    wait_until(lambda: sched.running() >= 1)
    started = time.monotonic()
    assert sched.shutdown(0.2) is False
    assert time.monotonic() - started < 2
    assert sched.running() == 0 and "hung" not in seen  # dropped, as shutdown says
    release.set()


def test_shutdown_lets_a_probe_that_finishes_in_time_deliver_its_result():
    release = threading.Event()
    seen = []
    sched = Scheduler(lambda c, r, p, s: seen.append(c.name), workers=1)
    sched.set_checks([make("slow", FakeProbe(block=release))], spread=False)
    sched.start()
    wait_until(lambda: sched.running() == 1)
    threading.Timer(0.1, release.set).start()
    assert sched.shutdown(5) is True
    assert seen == ["slow"]


def test_coroutine_probes_run_on_the_loop_thread_with_their_results():
    probe = AsyncProbe()
    threads = set()
    sched = Scheduler(
        lambda c, r, p, s: threads.add(threading.current_thread().name), workers=1
    )
    sched.set_checks([make("a", probe)], spread=False)
    with Driver(sched):
        wait_until(lambda: probe.calls >= 3 and threads)
    assert probe.threads == {"scheduler"} and threads == {"scheduler"}
    assert sched.health().busy_workers == 0


def test_a_hung_coroutine_probe_is_skipped_not_stacked_and_cancelled_at_shutdown():
    hung, quick = AsyncProbe(hang=True), AsyncProbe()
    sched = Scheduler(lambda *a: None, workers=1)
    sched.set_checks([make("hung", hung), make("quick", quick)], spread=False)
    sched.start()
    wait_until(lambda: quick.calls >= 10 and sched.stats["hung"].skipped >= 5)
    assert hung.calls == 1
    assert sched.shutdown(0.1) is False
    assert hung.cancelled == 1 and sched.running() == 0


def test_blocking_probes_count_as_busy_workers_until_they_return():
    release = threading.Event()
    sched = Scheduler(lambda *a: None, workers=2)
    sched.set_checks(
        [make("x", FakeProbe(block=release)), make("y", FakeProbe(block=release))],
        spread=False,
    )
    with Driver(sched):
        wait_until(lambda: sched.health().busy_workers == 2)
        before = time.monotonic()
        release.set()
        wait_until(lambda: sched.health().busy_workers == 0)
        after = time.monotonic()
        assert sched.health(after).last_finished_age <= after - before


def test_health_is_one_frozen_snapshot_of_loop_and_pool():
    release = threading.Event()
    sched = Scheduler(lambda *a: None, workers=3)
    sched.set_checks(
        [make("x", FakeProbe(block=release)), make("a", AsyncProbe(hang=True))], spread=False
    )
    sched.start()
    try:
        # running counts a task when it is made; busy_workers once the probe is in the pool
        wait_until(lambda: sched.health().running == 2 and sched.health().busy_workers == 1)
        now = time.monotonic()
        vitals = sched.health(now)
        assert (vitals.busy_workers, vitals.workers, vitals.running) == (1, 3, 2)
        assert 0 <= vitals.last_tick_age <= scheduler_module.MAX_SLEEP + 1.0
        assert 59 < sched.health(now + 60).last_tick_age <= 60 + vitals.last_tick_age  # ages
        with pytest.raises(dataclasses.FrozenInstanceError):
            vitals.busy_workers = 0  # type: ignore[misc]
    finally:
        release.set()
        sched.shutdown(0.2)  # the hung coroutine is cancelled


def test_set_checks_from_another_thread_is_applied_by_the_loop():
    probe = FakeProbe()
    sched = Scheduler(lambda *a: None, workers=1)
    with Driver(sched):
        sched.set_checks([make("late", probe)], spread=False)
        assert set(sched._jobs) == {"late"}
        wait_until(lambda: probe.calls >= 1)


class _Shifted(datetime.datetime):
    """datetime whose now() is the real one moved by `shift` (a stepped wall clock)."""

    shift = datetime.timedelta(0)

    @classmethod
    def now(cls, tz=None):
        return datetime.datetime.now(tz) + cls.shift


@pytest.mark.parametrize("step_hours", [-1, 1])
def test_a_wall_clock_step_neither_stops_nor_bursts_the_checks(monkeypatch, caplog, step_hours):
    shifted = types.SimpleNamespace(datetime=_Shifted, timedelta=datetime.timedelta)
    monkeypatch.setattr(scheduler_module, "datetime", shifted)
    monkeypatch.setattr(timing_module, "datetime", shifted)
    probe = FakeProbe()
    sched = Scheduler(lambda *a: None, workers=2)
    sched.set_checks([make("a", probe)], spread=False)
    with Driver(sched):
        wait_until(lambda: probe.calls >= 3)
        _Shifted.shift = datetime.timedelta(hours=step_hours)
        calls = probe.calls
        wait_until(lambda: probe.calls >= calls + 5)
    sched.shutdown(2)
    _Shifted.shift = datetime.timedelta(0)
    assert "wall clock stepped by" in caplog.text
    assert sched.stats["a"].missed == 0  # a forward step is not an hour of missed runs


def test_set_checks_neither_hangs_nor_raises_while_the_loop_is_wedged(monkeypatch, caplog):
    monkeypatch.setattr(scheduler_module, "CALL_TIMEOUT", 0.2)
    probe = FakeProbe()
    sched = Scheduler(lambda *a: None, workers=1)
    release = threading.Event()
    with Driver(sched):
        sched._loop.call_soon_threadsafe(release.wait, 10)  # wedge the loop thread
        started = time.monotonic()
        sched.set_checks([make("late", probe)], spread=False)
        assert time.monotonic() - started < 5
        assert "did not answer" in caplog.text
        release.set()
        wait_until(lambda: probe.calls >= 1)  # applied once the loop is back


def test_a_reload_that_changes_a_check_cancels_its_hung_coroutine_probe():
    hung, fixed = AsyncProbe(hang=True), AsyncProbe()
    sched = Scheduler(lambda *a: None, workers=1)
    sched.set_checks([make("web", hung, fingerprint="old")], spread=False)
    with Driver(sched):
        wait_until(lambda: sched.running() == 1)
        sched.set_checks([make("web", fixed, fingerprint="new")], spread=False)
        wait_until(lambda: hung.cancelled == 1 and fixed.calls >= 1)
        assert sched.stats["web"].skipped == 0  # the new definition did not wait for the old


def test_a_failing_tick_is_logged_and_scheduling_goes_on(monkeypatch, caplog):
    probe = FakeProbe()
    sched = Scheduler(lambda *a: None, workers=1)
    sched.set_checks([make("a", probe)], spread=False)
    real_tick, failed = sched.tick, []

    def tick():
        if not failed:
            failed.append(True)
            raise RuntimeError("bug")
        return real_tick()

    monkeypatch.setattr(sched, "tick", tick)
    with Driver(sched):
        wait_until(lambda: probe.calls >= 2)
    assert "a tick failed" in caplog.text


# --- the loop did not run (process stopped, VM paused, loop blocked) ----------------------

FREEZE = 1.0  # seconds the loop is blocked: past the probes' 0.6 s timeout


@pytest.fixture
def quick_beats(monkeypatch):
    """The loop beats every 50 ms, so a stop of 0.4 s is a pause (in production: 0.5 s, 2 s)."""
    monkeypatch.setattr(scheduler_module, "MAX_SLEEP", 0.05)
    monkeypatch.setattr(scheduler_module.aio, "PAUSE", 0.4)


class AsyncAnswering:
    """Answers when `answer` is set, or at once after its first run, and judges the answer
    against its deadline in loop time, as the HTTP probe does: an answer that arrived while
    the loop was stopped is still a timeout if the deadline passed meanwhile."""

    def __init__(self, *, late: float = 0.0):
        self.late = late  # > timeout: every run genuinely times out
        self.calls = 0
        self.answer: asyncio.Future | None = None

    async def run(self, timeout: float) -> ProbeResult:
        self.calls += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self.calls == 1 and not self.late:
            self.answer = loop.create_future()
            await self.answer  # the result is judged before the loop's next tick
        else:
            await asyncio.sleep(self.late)
        if loop.time() > deadline:
            return ProbeResult(ok=False, summary=f"timed out after {timeout}s")
        return ProbeResult(ok=True, summary="ok")

    def freeze(self, sched: Scheduler) -> None:
        """Stop the loop thread for FREEZE seconds; the answer arrives as it resumes."""

        def frozen() -> None:
            time.sleep(FREEZE)
            self.answer.set_result(None)

        sched._loop.call_soon_threadsafe(frozen)


class BlockingAnswering:
    """The worker-pool twin of AsyncAnswering: deadline in time.monotonic(), as a command's."""

    def __init__(self, *, late: float = 0.0):
        self.late = late
        self.calls = 0
        self.in_flight = threading.Event()
        self.answer = threading.Event()

    def run(self, timeout: float) -> ProbeResult:
        self.calls += 1
        deadline = time.monotonic() + timeout
        if self.calls == 1 and not self.late:
            self.in_flight.set()
            self.answer.wait(10)
        else:
            time.sleep(self.late)
        if time.monotonic() > deadline:
            return ProbeResult(ok=False, summary=f"timed out after {timeout}s")
        return ProbeResult(ok=True, summary="ok")

    def freeze(self, sched: Scheduler) -> None:
        """The whole process stops: the loop, and this worker, which answers as it resumes."""

        def frozen() -> None:
            time.sleep(FREEZE)
            self.answer.set()

        sched._loop.call_soon_threadsafe(frozen)


def in_flight(probe) -> bool:
    if isinstance(probe, AsyncAnswering):
        return probe.answer is not None
    return probe.in_flight.is_set()


def timed(name, probe):
    return Check(name=name, kind="fake", probe=probe, interval=60, timeout=0.6, fingerprint="f")


@pytest.mark.parametrize("kind", [AsyncAnswering, BlockingAnswering])
def test_a_failure_across_a_pause_is_dropped_and_the_check_probed_again_at_once(
    quick_beats, caplog, kind
):
    probe = kind()
    seen = []
    sched = Scheduler(lambda c, r, p, s: seen.append(r), workers=2)
    sched.set_checks([timed("web", probe)], spread=False)
    with Driver(sched):
        wait_until(lambda: in_flight(probe))
        probe.freeze(sched)
        wait_until(lambda: seen)
    assert [r.ok for r in seen] == [True]  # the re-probe's pass; the timeout never got out
    assert probe.calls == 2  # at once: the check's next planned run is a minute away
    assert sched.stats["web"].discarded == 1 and sched.stats["web"].runs == 2
    [line] = [r.getMessage() for r in caplog.records if "was not running" in r.getMessage()]
    assert "the 1 probe(s) then in flight" in line


@pytest.mark.parametrize("kind", [AsyncAnswering, BlockingAnswering])
def test_a_timeout_without_a_pause_is_still_a_failure(quick_beats, caplog, kind):
    probe = kind(late=0.8)  # answers after its 0.6 s timeout, the loop running throughout
    seen = []
    sched = Scheduler(lambda c, r, p, s: seen.append(r), workers=2)
    sched.set_checks([timed("slow", probe)], spread=False)
    time.sleep(0.5)  # nor is the time between building the scheduler and starting it a pause
    with Driver(sched):
        wait_until(lambda: seen)
    assert not seen[0].ok and "timed out" in seen[0].summary
    assert probe.calls == 1 and sched.stats["slow"].discarded == 0
    assert "was not running" not in caplog.text


def test_a_failure_that_ends_during_shutdown_is_delivered_not_re_probed(quick_beats):
    """While stopping the loop no longer ticks: that quiet is not a pause."""
    release = threading.Event()

    class Failing:
        def run(self, timeout: float) -> ProbeResult:
            release.wait(10)
            return ProbeResult(ok=False, summary="down")

    seen = []
    sched = Scheduler(lambda c, r, p, s: seen.append(r.summary), workers=1)
    sched.set_checks([make("down", Failing())], spread=False)
    sched.start()
    wait_until(lambda: sched.running() == 1)
    threading.Timer(0.6, release.set).start()
    assert sched.shutdown(5) is True
    assert seen == ["down"]


def test_a_pass_across_a_pause_is_kept(quick_beats):
    class Patient(AsyncAnswering):
        async def run(self, timeout: float) -> ProbeResult:
            await super().run(timeout)
            return ProbeResult(ok=True, summary="ok")  # whatever the clock says

    probe = Patient()
    seen = []
    sched = Scheduler(lambda c, r, p, s: seen.append(r), workers=1)
    sched.set_checks([timed("web", probe)], spread=False)
    with Driver(sched):
        wait_until(lambda: in_flight(probe))
        probe.freeze(sched)
        wait_until(lambda: seen)
    assert [r.ok for r in seen] == [True] and probe.calls == 1
    assert sched.stats["web"].discarded == 0


def test_a_loop_that_keeps_pausing_still_lets_a_real_failure_through(
    quick_beats, monkeypatch, caplog
):
    """Each re-probe spans a new pause, so each is dropped too, but only MAX_REPROBES times."""
    monkeypatch.setattr(pauses_module, "MAX_REPROBES", 2)

    class Stalling:
        calls = 0

        async def run(self, timeout: float) -> ProbeResult:
            self.calls += 1
            await asyncio.sleep(0)
            time.sleep(0.5)  # the loop stops while this probe is in flight
            return ProbeResult(ok=False, summary="down")

    probe = Stalling()
    seen = []
    sched = Scheduler(lambda c, r, p, s: seen.append(r), workers=1)
    sched.set_checks([timed("down", probe)], spread=False)
    with Driver(sched):
        wait_until(lambda: seen)
    assert [r.summary for r in seen] == ["down"]
    assert probe.calls == 3 and sched.stats["down"].discarded == 2
    assert "failed across 3 loop pauses in a row" in caplog.text


def test_rounds_missed_while_the_loop_was_stopped_are_counted_not_replayed(quick_beats):
    starts: list[float] = []

    class Quick:
        def run(self, timeout: float) -> ProbeResult:
            starts.append(time.monotonic())
            return ProbeResult(ok=True, summary="ok")

    resumed: list[float] = []

    def frozen() -> None:
        time.sleep(FREEZE)  # ten 0.1 s rounds go by
        resumed.append(time.monotonic())

    sched = Scheduler(lambda *a: None, workers=2)
    sched.set_checks([make("a", Quick(), interval=0.1)], spread=False)
    with Driver(sched):
        wait_until(lambda: len(starts) >= 2)
        sched._loop.call_soon_threadsafe(frozen)
        wait_until(lambda: resumed and len([t for t in starts if t > resumed[0]]) >= 3)
    after = [t for t in starts if t > resumed[0]]
    # Fixed rate after the late run: its third run is a whole interval after the first,
    # where replaying the missed rounds would have started them all at once.
    assert after[2] - after[0] >= 0.1 - 0.005
    assert sched.stats["a"].missed >= FREEZE / 0.1 - 2
