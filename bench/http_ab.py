"""A/B: CPU per 1,000 healthy loopback HTTP probes, an older commit's code against this
checkout's, in one run on this machine.

    .venv/bin/python bench/http_ab.py --old f685e10 [--rounds 2] [--window 60]

The old code is `git archive <old> watchdog` unpacked in a temporary folder; both sides run
on this venv's packages. Each round measures both sides, one after the other (A B B A ...:
drift on a shared VM falls on both), in these ways:

  runner  `python -m watchdog run` on 1,000 healthy HTTP checks every 10 s: run.py's A/B
          (same generated config, the same bench/targets.py and PagerDuty stand-in);
          the runner's utime+stime over the window / probes x 1,000
  side by side  the same, old and new runners at once over one window (each its own
          1,000 targets): what other people's load does to one, it does to the other
  probe   bench/micro.py --only probe: HttpProbe.run one after another on the event loop,
          thread CPU per probe (the probe alone: no scheduler, store or metrics)
  parse   the response parser alone, in-process: a new _Response fed one response, the
          targets' own answer and a chunked one with the headers a real server sends
          (the least noisy of the three: no sockets, no loop wake-ups)

Rounds alternate which side goes first. Prints a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gen  # noqa: E402
import measure  # noqa: E402
import run as bench  # noqa: E402


def unpack(rev: str, folder: Path) -> Path:
    """The `watchdog` package as it was at `rev`, in `folder`."""
    archive = subprocess.run(["git", "-C", str(bench.ROOT), "archive", rev, "watchdog"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def probe_cpu(tree: Path, calls: int) -> float:
    """bench/micro.py's probe step on the code in `tree`: µs of CPU per probe."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [bench.PYTHON, str(bench.ROOT / "bench" / "micro.py"), "--only", "probe",
         "--calls", str(calls)],
        env=env, cwd=str(tree), check=True, capture_output=True, text=True,
    ).stdout
    return float(out.split()[-1])


CHUNKED = (b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Tue, 01 Dec 2026 17:00:00 GMT\r\n"
           b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
           b"Connection: close\r\nCache-Control: no-store\r\nX-Request-Id: 5f2b9c\r\n\r\n"
           b"9\r\n{\"status\"\r\n6\r\n:\"ok\"}\r\n0\r\n\r\n")


def parse_alone(calls: int) -> None:
    """Print µs of CPU per response parsed by the `watchdog` found first on sys.path (run
    by parse_cpu with PYTHONPATH set to one side's tree)."""
    import asyncio

    import targets

    try:
        from watchdog.probes.http.response import _Response  # a package (since 1742378)
    except ImportError:
        from watchdog.probes.http import _Response  # one module
    loop = asyncio.new_event_loop()
    out = []
    for response in (targets._OK, CHUNKED):
        def once(response: bytes = response) -> None:
            parser = _Response(b"", False, True, loop.create_future())
            parser.data_received(response)
            assert parser.status == 200 and parser.done.done() and parser.error is None

        for _ in range(1000):
            once()
        best = math.inf  # the least disturbed of five passes (others share this machine)
        for _ in range(5):
            start = time.thread_time()
            for _ in range(calls // 5):
                once()
            best = min(best, (time.thread_time() - start) / (calls // 5))
        out.append(f"{best * 1e6:.2f}")
    loop.close()
    print(" ".join(out))


def parse_cpu(tree: Path, calls: int) -> list[float]:
    """parse_alone on the code in `tree`: µs per response, for each response shape."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([bench.PYTHON, __file__, "--parse-alone", str(calls)], env=env,
                         cwd=str(tree), check=True, capture_output=True, text=True).stdout
    return [float(x) for x in out.split()]


def side_by_side(ctx: dict, trees: dict[str, Path], round_: int) -> dict[str, float]:
    """Both runners at once, measured over the same window: CPU per 1,000 probes each."""
    args, procs, targets = ctx["args"], ctx["procs"], ctx["targets"]
    mix = gen.mix(args.checks, hang_pct=0, slow_pct=0, flaky_pct=0, http_only=True)
    runners = {}
    for side, tree in trees.items():
        run = f"s{side}{round_}"
        config = gen.watchdog_yaml(
            mix, base_url=targets.url, run=run, folder=ctx["work"] / run,
            interval=args.interval, timeout=args.timeout, workers=64,
            pd_url=ctx["stub"].url, metrics_port=None, count_log=None)
        runners[side] = (run, bench.Runner(procs, config, None, tree))
    started = max(runner.wait_started() for _, runner in runners.values())
    bench.sleep_until(started + args.interval)  # every check has run once
    start = {side: measure.cpu(runner.pid) for side, (_, runner) in runners.items()}
    window_start = time.time()
    bench.sleep_until(window_start + args.window)
    used = {side: measure.cpu(runner.pid) - start[side] for side, (_, runner) in runners.items()}
    window_end = time.time()
    for _, runner in runners.values():
        runner.stop()
    targets.ctl("flush")
    out = {}
    for side, (run, _) in runners.items():
        requests = measure.read_requests(str(targets.log_path), run)
        probes = sum(window_start <= r.arrival < window_end
                     for reqs in requests.values() for r in reqs)
        out[side] = 1000 * used[side].own / probes
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="CPU per 1,000 HTTP probes, old code vs new")
    p.add_argument("--old", help="the commit to compare with (e.g. the branch's base)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--checks", type=int, default=1000)
    p.add_argument("--interval", type=float, default=10.0)
    p.add_argument("--window", type=float, default=60.0)
    p.add_argument("--calls", type=int, default=3000, help="probes per micro measurement")
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--parse-alone", type=int, metavar="CALLS", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.parse_alone:
        parse_alone(args.parse_alone)
        return 0
    if not args.old:
        p.error("--old COMMIT is required")
    args.scrape_every = 15.0  # as run.py: the runner is scraped, as in production
    work = Path(tempfile.mkdtemp(prefix="pdw-http-ab-"))
    procs = bench.Procs()
    trees = {"old": unpack(args.old, Path(tempfile.mkdtemp(prefix="pdw-old-"))),
             "new": bench.ROOT}
    rows: dict[str, dict[str, list[float]]] = {
        k: {"runner": [], "side": [], "probe": [], "parse": [], "parse_chunked": []}
        for k in trees}
    try:
        targets = bench.TargetServer(procs, work)
        stub = bench.Stub(procs, work, "main")
        ctx = {"procs": procs, "targets": targets, "stub": stub, "work": work, "args": args}
        for round_ in range(args.rounds):
            order = dict(reversed(trees.items())) if round_ % 2 else trees  # who goes first
            for side, tree in order.items():
                out = bench.run_watchdog(ctx, args.checks, args.interval, args.window,
                                         run=f"{side}{round_}", http_only=True, tree=tree)
                rows[side]["runner"].append(out["cpu_per_1000"])
                rows[side]["probe"].append(probe_cpu(tree, args.calls))
                plain, chunked = parse_cpu(tree, 20 * args.calls)
                rows[side]["parse"].append(plain)
                rows[side]["parse_chunked"].append(chunked)
                bench.log(f"{side} round {round_ + 1}: runner {out['cpu_per_1000']:.3f} s / "
                          f"1,000 probes ({out['probes']} probes), probe alone "
                          f"{rows[side]['probe'][-1]:.0f} µs, parse {plain:.2f} / {chunked:.2f} µs")
            for side, cpu in side_by_side(ctx, order, round_).items():
                rows[side]["side"].append(cpu)
            bench.log(f"side by side, round {round_ + 1}: old {rows['old']['side'][-1]:.3f} s, "
                      f"new {rows['new']['side'][-1]:.3f} s / 1,000 probes")
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(trees["old"], ignore_errors=True)
    machine = bench.machine()
    print(f"\nmachine: {machine['cores']} cores ({machine['cpu']}), Python {machine['python']}, "
          f"new = {machine['commit']}, old = {args.old}\n")
    print("| measure | old | new | new / old |\n| --- | --- | --- | --- |")
    for key, label, fmt in (
        ("runner", "runner: CPU / 1,000 HTTP probes, s", "{:.3f}"),
        ("side", "runner, old and new at once: CPU / 1,000 HTTP probes, s", "{:.3f}"),
        ("probe", "the probe alone: CPU per HttpProbe.run, µs", "{:.0f}"),
        ("parse", "the parser alone, the targets' answer: CPU per response, µs", "{:.2f}"),
        ("parse_chunked", "the parser alone, chunked, 8 fields: CPU per response, µs", "{:.2f}"),
    ):
        old, new = (statistics.median(rows[side][key]) for side in ("old", "new"))
        runs = {side: ", ".join(fmt.format(v) for v in rows[side][key]) for side in rows}
        print(f"| {label} (median of {args.rounds}) | {fmt.format(old)} ({runs['old']}) | "
              f"{fmt.format(new)} ({runs['new']}) | {new / old:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
