"""Profile the runner under a benchmark load (profilers are not project dependencies:
`.venv/bin/pip install py-spy yappi`).

    .venv/bin/python bench/profile.py --checks 1000 --interval 10 --seconds 40 [--mixed]
    .venv/bin/python bench/profile.py --yappi --checks 1000 --seconds 40

--yappi runs the runner in this process under yappi's CPU clock, all threads: the most
precise "which function costs what" (yappi roughly doubles the cost, the shares hold).
Without it: py-spy samples the real `pd-watchdog run` process from outside (on this VM its
idle detection counts threads blocked in C as busy: prefer --yappi, or --gil).

Starts the same loopback targets and PagerDuty stand-in as bench/run.py, runs
`pd-watchdog run` on an HTTP-only (or --mixed) config, samples it with
`py-spy record --format raw` (non-idle samples only, so the counts are CPU, not waiting),
and prints the functions that cost most: inclusive (the function and what it calls) and
self. The raw collapsed stacks are kept in bench/profiles/ for flame graphs.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gen  # noqa: E402
import measure  # noqa: E402
import run as bench  # noqa: E402

PYSPY = bench.BIN / "py-spy"


def _loaded_config(args: argparse.Namespace, procs, work: Path, run: str) -> Path:
    """Start the loopback targets and the PagerDuty stand-in; write the config to profile."""
    targets = bench.TargetServer(procs, work)
    stub = bench.Stub(procs, work, "main")
    mix = (gen.mix(args.checks) if args.mixed else
           gen.mix(args.checks, hang_pct=0, slow_pct=0, flaky_pct=0, http_only=True))
    return gen.watchdog_yaml(
        mix, base_url=targets.url, run=run, folder=work / run, interval=args.interval,
        timeout=5, workers=64, pd_url=stub.url, metrics_port=bench.free_port(),
        count_log=work / "plugin.log",
    )


def summarize(raw: Path, top: int = 25) -> str:
    """Inclusive and self sample counts per function from py-spy's collapsed stacks."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [f.rsplit(" (", 1)[0] + " (" + _short(f) + ")" for f in stack.split(";")[1:]]
        for frame in set(frames):
            inclusive[frame] += n
        if frames:
            own[frames[-1]] += n
    out = [f"{total} samples (non-idle)", "", "inclusive % | function"]
    out += [f"{100 * c / total:6.1f} % | {f}" for f, c in inclusive.most_common(top)]
    out += ["", "self % | function"]
    out += [f"{100 * c / total:6.1f} % | {f}" for f, c in own.most_common(top)]
    return "\n".join(out)


def _short(frame: str) -> str:
    where = frame.rsplit(" (", 1)[-1].rstrip(")")
    for marker in ("site-packages/", "lib/python3", "/work/main/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return where


def yappi_profile(args: argparse.Namespace) -> int:
    import threading

    import yappi

    from watchdog.config import load
    from watchdog.runner import Runner

    out_dir = bench.ROOT / "bench" / "profiles"
    out_dir.mkdir(exist_ok=True)
    name = args.name or f"yappi-{'mixed' if args.mixed else 'http'}{args.checks}"
    work = Path(tempfile.mkdtemp(prefix="pdw-profile-"))
    procs = bench.Procs()
    try:
        path = _loaded_config(args, procs, work, "y")
        runner = Runner(load(str(path)))
        runner.start()
        threading.Timer(args.interval + args.seconds, runner.stop_requested.set).start()
        threading.Timer(args.interval, lambda: (yappi.set_clock_type("cpu"),
                                                yappi.start(builtins=True))).start()
        t0 = time.process_time()
        runner.loop()
        yappi.stop()
        used = time.process_time() - t0
        runner.shutdown()
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    stats = yappi.get_func_stats()
    total = sum(t.ttot for t in yappi.get_thread_stats())
    lines = [f"process CPU {used:.2f} s (whole run, yappi on for {args.seconds:g} s); "
             f"threads' CPU under yappi {total:.2f} s", "", "inclusive % | self % | calls | "
             "function"]
    for entry in sorted(stats, key=lambda e: e.ttot, reverse=True)[:60]:
        where = _short(f"x ({entry.module}:{entry.lineno})")
        lines.append(f"{100 * entry.ttot / total:6.1f} % | {100 * entry.tsub / total:5.1f} % | "
                     f"{entry.ncall:7d} | {entry.name} ({where})")
    lines += ["", "self % | calls | function"]
    for entry in sorted(stats, key=lambda e: e.tsub, reverse=True)[:40]:
        where = _short(f"x ({entry.module}:{entry.lineno})")
        lines.append(f"{100 * entry.tsub / total:5.1f} % | {entry.ncall:7d} | {entry.name} "
                     f"({where})")
    text = "\n".join(lines)
    (out_dir / f"{name}.top.txt").write_text(text + "\n")
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="py-spy profile of pd-watchdog under bench load")
    p.add_argument("--checks", type=int, default=1000)
    p.add_argument("--interval", type=float, default=10.0)
    p.add_argument("--seconds", type=float, default=40.0)
    p.add_argument("--mixed", action="store_true", help="the run.py mix instead of HTTP only")
    p.add_argument("--rate", type=int, default=250)
    p.add_argument("--name", help="output name in bench/profiles/")
    p.add_argument("--yappi", action="store_true", help="in-process, yappi CPU clock")
    p.add_argument("--gil", action="store_true",
                   help="sample only the thread holding the GIL (Python CPU time)")
    args = p.parse_args(argv)
    args.spy = ["--gil"] if args.gil else []
    if args.yappi:
        return yappi_profile(args)
    if not PYSPY.exists():
        sys.exit(f"{PYSPY} not found: .venv/bin/pip install py-spy")
    out_dir = bench.ROOT / "bench" / "profiles"
    out_dir.mkdir(exist_ok=True)
    name = args.name or f"{'mixed' if args.mixed else 'http'}{args.checks}"
    raw = out_dir / f"{name}.collapsed.txt"
    work = Path(tempfile.mkdtemp(prefix="pdw-profile-"))
    procs = bench.Procs()
    try:
        config = _loaded_config(args, procs, work, "p")
        runner = bench.Runner(procs, config, None)
        runner.wait_started()
        time.sleep(args.interval)
        cpu0 = measure.cpu(runner.pid)
        subprocess.run([str(PYSPY), "record", "-p", str(runner.pid), "-r", str(args.rate),
                        "-f", "raw", "-o", str(raw), "-d", str(int(args.seconds)), *args.spy],
                       check=True, capture_output=True)
        used = measure.cpu(runner.pid) - cpu0
        print(f"runner CPU while sampled: {used.own:.2f} s over {args.seconds:g} s "
              f"(~{args.checks * args.seconds / args.interval:.0f} probes; py-spy's own "
              "pauses add to it)")
        runner.stop()
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    text = summarize(raw)
    (out_dir / f"{name}.top.txt").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
