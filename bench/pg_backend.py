"""The state on PostgreSQL against SQLite: schedule lag and CPU per result, one run each.

    .venv/bin/python bench/pg_backend.py                  # 5,000 checks, 30 s, 60 s windows
    .venv/bin/python bench/pg_backend.py --checks 1000 --interval 10 --rounds 2

The same generated mix as bench/run.py (run_watchdog: its targets, stand-in and windows),
once with the SQLite state and once with `state: {postgresql: ...}` on a local server this
script starts (tests/pgserver.py's initdb in a temp dir, with the server's default
durability: fsync and synchronous commits on) and stops at the end. Rounds alternate the
backends, so drift of the machine falls on both. Besides the runner's CPU, the server's
(the postmaster and all its processes) is measured over the same window: on PostgreSQL
part of the store's work moves there. Run by hand, never in CI; loopback only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import gen  # noqa: E402
import measure  # noqa: E402
import run  # noqa: E402

from pgserver import PgServer  # noqa: E402


def server_cpu(postmaster: int) -> float:
    """utime+stime of the postmaster and its children (the backends, walwriter...)."""
    used = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        if int(entry.name) == postmaster or int(fields[1]) == postmaster:
            used += (int(fields[11]) + int(fields[12])) / measure.TICK
    return used


class Windowed:
    """measure.cpu wrapped so that each call also notes the server's CPU: run_watchdog
    reads the runner's and the targets' CPU at the window's start and end, in that order."""

    def __init__(self, postmaster: int | None) -> None:
        self.postmaster = postmaster
        self.marks: list[float] = []
        self.real = measure.cpu

    def __call__(self, pid: int) -> measure.Cpu:
        if self.postmaster is not None:
            self.marks.append(server_cpu(self.postmaster))
        return self.real(pid)

    def window(self) -> float | None:
        return self.marks[2] - self.marks[0] if len(self.marks) >= 4 else None


def with_state(dsn: str | None):
    """gen.watchdog_yaml, plus `state: {postgresql: dsn}` when dsn is given."""
    original = gen.watchdog_yaml

    def make(*args, **kwargs):
        path = original(*args, **kwargs)
        if dsn:
            path.write_text(f"state:\n  postgresql: {dsn}\n" + path.read_text())
        return path

    return original, make


def one(ctx: dict, backend: str, dsn: str | None, server: PgServer, args, tag: str) -> dict:
    original, make = with_state(dsn)
    windowed = Windowed(server.postmaster_pid() if dsn else None)
    gen.watchdog_yaml, run.measure.cpu = make, windowed
    try:
        out = run.run_watchdog(ctx, args.checks, args.interval, args.window,
                               run=f"{backend}{tag}", sample=0, workers=64)
    finally:
        gen.watchdog_yaml, run.measure.cpu = original, windowed.real
    out["backend"] = backend
    out["server_cpu_s"] = windowed.window()
    probes = out["probes"]
    server = out["server_cpu_s"]
    out["server_cpu_per_1000"] = 1000 * server / probes if probes and server is not None \
        else None
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checks", type=int, default=5000)
    p.add_argument("--interval", type=float, default=30.0)
    p.add_argument("--window", type=float, default=60.0)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--out", default=None, help="write the raw results (JSON) here")
    ours = p.parse_args()
    args = run.parse_args(["--sizes", str(ours.checks), "--window", str(ours.window),
                           "--interval", str(ours.interval), "--sample-pct", "0"])
    args.checks, args.interval = ours.checks, ours.interval

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupted)
    work = Path(tempfile.mkdtemp(prefix="pdw-pgbench-"))
    procs = run.Procs()
    server = PgServer(durable=True)
    results = []
    try:
        server.start()
        targets = run.TargetServer(procs, work)
        stub = run.Stub(procs, work, "main")
        ctx = {"procs": procs, "targets": targets, "stub": stub, "work": work, "args": args}
        for number in range(ours.rounds):
            order = ("sqlite", "postgresql") if number % 2 == 0 else ("postgresql", "sqlite")
            for backend in order:
                dsn = server.dsn(server.create_database()) if backend == "postgresql" else None
                results.append(one(ctx, backend, dsn, server, args, f"-{number}"))
                print_row(results[-1])
    except KeyboardInterrupt:
        run.log("interrupted")
        return 130
    finally:
        procs.stop_all()
        server.destroy()
        shutil.rmtree(work, ignore_errors=True)
    if ours.out:
        Path(ours.out).write_text(json.dumps(results, indent=1, default=str) + "\n")
    return 0


def print_row(out: dict) -> None:
    metrics = out.get("metrics") or {}
    server = out.get("server_cpu_per_1000")
    nan = (float("nan"), float("nan"))

    def bucket(pair: tuple[float, float]) -> str:
        return f"{pair[0] * 1000:g}-{pair[1] * 1000:g} ms"

    run.log(f"{out['backend']}: {out['probes']} results in {out['window']:.0f}s; runner "
            f"histogram lag p50 {bucket(metrics.get('lag_p50', nan))}, p99 "
            f"{bucket(metrics.get('lag_p99', nan))}, mean "
            f"{metrics.get('lag_mean', float('nan')) * 1000:.1f} ms; targets' arrivals p50 "
            f"{out['target_lag']['p50'] * 1000:.1f} ms, p99 "
            f"{out['target_lag']['p99'] * 1000:.1f} ms; runner CPU "
            f"{out['cpu_per_1000']:.3f} s per 1,000 results, server "
            f"{'-' if server is None else f'{server:.3f}'} s; runner utilisation "
            f"{out['cpu_util'] * 100:.1f} %; log {out['log']}")


if __name__ == "__main__":
    sys.exit(main())
