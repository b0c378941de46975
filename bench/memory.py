"""Where the runner's memory goes with N checks: RSS after each stage, and tracemalloc's top
allocation sites once every check has run.

    .venv/bin/python bench/memory.py [--checks 5000] [--interval 30] [--mixed]

Runs the runner in this process (same code as `pd-watchdog run`) against bench/targets.py
and the stand-in, so its numbers are the runner's own plus this script's few MB.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import threading
import time
import tracemalloc
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gen  # noqa: E402
import measure  # noqa: E402
import run as bench  # noqa: E402


def rss() -> str:
    m = measure.memory(os.getpid())
    return (f"RSS {m['VmRSS'] / 1024:6.1f} MB (peak {m['VmHWM'] / 1024:6.1f} MB, "
            f"{m['Threads']} threads)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="memory of the runner, stage by stage")
    p.add_argument("--checks", type=int, default=5000)
    p.add_argument("--interval", type=float, default=30.0)
    p.add_argument("--mixed", action="store_true", help="the run.py mix (default HTTP only)")
    p.add_argument("--trace", action="store_true", help="also tracemalloc (slower)")
    args = p.parse_args(argv)
    import logging

    logging.getLogger("watchdog").setLevel(logging.ERROR)
    print(f"start:            {rss()}")
    from watchdog.config import load  # noqa: F401  (the imports `run` pays for)
    from watchdog.runner import Runner

    print(f"after imports:    {rss()}")
    work = Path(tempfile.mkdtemp(prefix="pdw-memory-"))
    procs = bench.Procs()
    try:
        targets = bench.TargetServer(procs, work)
        stub = bench.Stub(procs, work, "main")
        mix = (gen.mix(args.checks, hang_pct=5, slow_pct=5) if args.mixed else
               gen.mix(args.checks, hang_pct=0, slow_pct=0, flaky_pct=0, http_only=True))
        path = gen.watchdog_yaml(
            mix, base_url=targets.url, run="mem", folder=work / "mem", interval=args.interval,
            timeout=5, workers=64, pd_url=stub.url, metrics_port=bench.free_port(),
            count_log=work / "plugin.log",
        )
        if args.trace:
            tracemalloc.start(8)
        config = load(str(path))
        print(f"after load:       {rss()}")
        gc.collect()
        print(f"after gc:         {rss()}")
        runner = Runner(config)
        runner.start()
        print(f"after start:      {rss()}")
        threading.Timer(args.interval + 2, runner.stop_requested.set).start()
        runner.loop()
        print(f"after 1 interval: {rss()}")
        if runner.metrics_server is not None:
            host, port = runner.metrics_server.address
            for _ in range(2):
                t0 = time.perf_counter()
                size = len(urllib.request.urlopen(f"http://{host}:{port}/metrics").read())
                print(f"one /metrics scrape: {size / 2**20:.1f} MB of text in "
                      f"{time.perf_counter() - t0:.2f} s; {rss()}")
        if args.trace:
            snap = tracemalloc.take_snapshot()
            print("\ntop allocation sites (tracemalloc, traceback's innermost frame in watchdog "
                  "or a library):")
            for stat in snap.statistics("lineno")[:25]:
                frame = stat.traceback[0]
                print(f"  {stat.size / 2**20:6.1f} MB  {stat.count:8d} blocks  "
                      f"{frame.filename.split('site-packages/')[-1]}:{frame.lineno}")
            by_file = snap.statistics("filename")[:12]
            print("\nby file:")
            for stat in by_file:
                print(f"  {stat.size / 2**20:6.1f} MB  {stat.traceback[0].filename}")
        runner.shutdown()
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
