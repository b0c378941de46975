"""CPU cost of each step one probe takes through the runner, measured in-process.

    .venv/bin/python bench/micro.py [--checks 1000] [--calls 3000]

py-spy shows where the runner's threads are, but on this machine most of the runner's CPU
is spent in system calls and thread hand-offs that a sampler attributes poorly. This costs
the steps one at a time with time.thread_time() (user + system CPU of the calling thread):

  probe      HttpProbe.run against bench/targets.py (connect, send, parse, close), one
             after another on the event loop the runner uses (uvloop unless
             PD_WATCHDOG_EVENT_LOOP=asyncio)
  on_result  Runner._on_result: mask secrets, state step, Store.record, metrics, log
    record   Store.record alone (JSON + one SQLite transaction)
    metrics  Metrics.observe_result alone
    mask     logs.mask / mask_data of summary and details (the routing key is a secret)
  dispatch   Scheduler with a coroutine probe that does nothing: schedule's job
             bookkeeping, task start and loop wake-ups, as process CPU per run
  floor      for comparison: the same GETs as a bare Protocol (no parsing, no checks) on the
             same loop (64 at a time, ~200/s), process CPU per request
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gen  # noqa: E402
import run as bench  # noqa: E402


def per_call(fn, calls: int) -> float:
    """Mean thread CPU seconds per call."""
    start = time.thread_time()
    for _ in range(calls):
        fn()
    return (time.thread_time() - start) / calls


async def _asyncio_gets(urls: list[str], calls: int) -> float:
    """Process CPU per GET for `calls` GETs, 64 at a time, about 200 started per second."""
    loop = asyncio.get_running_loop()
    limit = asyncio.Semaphore(64)

    class Get(asyncio.Protocol):
        def __init__(self, request: bytes, done: asyncio.Future) -> None:
            self.request, self.done, self.data = request, done, b""

        def connection_made(self, transport) -> None:  # type: ignore[override]
            transport.write(self.request)

        def data_received(self, data: bytes) -> None:
            self.data += data

        def connection_lost(self, exc) -> None:
            if not self.done.done():
                self.done.set_result(self.data)

    async def get(url: str) -> int:
        host_port, _, path = url.split("//", 1)[1].partition("/")
        host, port = host_port.split(":")
        request = (f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nAccept: */*\r\n"
                   "Connection: close\r\n\r\n").encode()
        async with limit:
            done = loop.create_future()
            await loop.create_connection(lambda: Get(request, done), host, int(port))
            data = await asyncio.wait_for(done, 5)
            return int(data[9:12])

    start = time.process_time()
    tasks = []
    for n in range(calls):
        tasks.append(asyncio.create_task(get(urls[n % len(urls)])))
        if n % 20 == 19:
            await asyncio.sleep(0.1)
    await asyncio.gather(*tasks)
    return (time.process_time() - start) / calls


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="per-step CPU cost of one probe in the runner")
    p.add_argument("--checks", type=int, default=1000)
    p.add_argument("--calls", type=int, default=3000)
    p.add_argument("--seconds", type=float, default=10.0, help="for the dispatch measurement")
    p.add_argument("--only", choices=["probe"], help="measure this step alone (bench/http_ab.py)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from watchdog import aio, logs
    from watchdog.config import load
    from watchdog.model import ProbeResult
    from watchdog.probes.base import run_once
    from watchdog.runner import Runner
    from watchdog.scheduler import Scheduler
    from watchdog.state import step

    work = Path(tempfile.mkdtemp(prefix="pdw-micro-"))
    procs = bench.Procs()
    rows: list[tuple[str, float]] = []
    try:
        targets = bench.TargetServer(procs, work)
        stub = bench.Stub(procs, work, "main")
        mix = gen.mix(args.checks, hang_pct=0, slow_pct=0, flaky_pct=0, http_only=True)
        path = gen.watchdog_yaml(
            mix, base_url=targets.url, run="u", folder=work / "u", interval=10, timeout=5,
            workers=64, pd_url=stub.url, metrics_port=bench.free_port(), count_log=None,
        )
        config = load(str(path))
        logs.add_secrets(config.secrets)
        checks = list(config.checks)
        i = iter(range(10**9))

        async def probes(calls: int) -> float:
            start = time.thread_time()
            for _ in range(calls):
                await checks[next(i) % len(checks)].probe.run(5.0)
            return (time.thread_time() - start) / calls

        rows.append((f"probe: HttpProbe.run (loopback, fast target, {aio.loop_name()})",
                     aio.run(probes(args.calls))))
        if args.only == "probe":
            print(f"{rows[0][1] * 1e6:.1f}")  # µs per probe, for bench/http_ab.py to read
            return 0
        result = run_once(checks[0].probe, 5.0)

        runner = Runner(config)
        runner.start()  # store, sender, metrics server; the loop (scheduling) is not started
        now = time.time()

        def on_result():
            c = checks[next(i) % len(checks)]
            runner._on_result(c, result, now, now)

        rows.append(("on_result: Runner._on_result, all of it", per_call(on_result, args.calls)))
        state = runner.states[checks[0].name]
        policy = runner.policies[checks[0].name]

        def record():
            c = checks[next(i) % len(checks)]
            runner.store.record(c.name, c.fingerprint, c.incident_key, state, result, now, [])

        rows.append(("  Store.record (JSON + SQLite transaction)", per_call(record, args.calls)))
        if runner.metrics is not None:
            rows.append(("  Metrics.observe_result", per_call(
                lambda: runner.metrics.observe_result(
                    checks[next(i) % len(checks)].name, result, state, lag=0.001),
                args.calls)))
        secrets = config.secrets
        rows.append(("  mask summary + details (nothing to mask: no copy)", per_call(
            lambda: (logs.mask(result.summary, secrets), logs.mask_data(result.details, secrets)),
            args.calls)))
        rows.append(("  state.step", per_call(lambda: step(state, result, policy), args.calls)))
        runner.shutdown()

        # dispatch: the scheduler and pool around a probe that costs nothing
        class Nothing:
            async def run(self, timeout):
                return ProbeResult(True, "ok")

        done = [0]
        sched = Scheduler(lambda *a: done.__setitem__(0, done[0] + 1), workers=64)
        quick = [dataclasses.replace(c, probe=Nothing(), interval=1.0) for c in checks]
        sched.set_checks(quick)
        t0 = time.process_time()
        sched.start()
        time.sleep(args.seconds)
        sched.shutdown(5)
        used = time.process_time() - t0
        rows.append((f"dispatch: Scheduler per run ({done[0]} runs, process CPU)",
                     used / max(1, done[0])))
        urls = [c.probe.url for c in checks]
        rows.append(("floor: one GET as a bare Protocol on the same loop",
                     aio.run(_asyncio_gets(urls, args.calls))))
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'step':60} CPU per call")
    for label, seconds in rows:
        print(f"{label:60} {seconds * 1e6:8.0f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
