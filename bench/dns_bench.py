"""Issue 14's bar for the dns kind: 1,000 dns checks every 10 s on this 2-core machine with
p99 schedule lag under 250 ms, and CPU per 1,000 probes beside http's, in one run.

    .venv/bin/python bench/dns_bench.py [--checks 1000] [--interval 10] [--window 60]
                                        [--rounds 1]

Each round runs the real `pd-watchdog run` twice, one after the other (the order flips each
round, so drift on a shared VM falls on both): on N dns checks (each its own name, type A)
against bench/dnstarget.py (dnslib, its own process), and on run.py's CPU A/B config of N
healthy HTTP checks against bench/targets.py. For each: one interval of warm-up, then a
window; CPU = the runner's utime+stime over the window, probes = the runner's
pd_watchdog_check_runs_total over the window, schedule lag from its histogram (the bucket
p99 falls in) and its max since start. Prints a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gen  # noqa: E402
import measure  # noqa: E402
import run as bench  # noqa: E402


class DnsTarget:
    def __init__(self, procs: bench.Procs, folder: Path) -> None:
        self.proc = procs.start([bench.PYTHON, str(bench.ROOT / "bench" / "dnstarget.py")],
                                stdout=subprocess.PIPE, text=True,
                                stderr=open(folder / "dnstarget.err", "w"))  # noqa: SIM115
        self.address = self.proc.stdout.readline().strip()
        if not self.address.startswith("127.0.0.1:"):
            raise RuntimeError(f"dnstarget did not start: {self.address!r}")

    def cpu(self) -> float:
        return measure.cpu(self.proc.pid).own


def dns_config(folder: Path, n: int, server: str, pd_url: str, interval: float,
               metrics_port: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        "pagerduty:", f"  routing_key: {gen.ROUTING_KEY}", f"  url: {pd_url!r}",
        f"  source: {gen.SOURCE}-dns", "state_dir: ./state",
        f'metrics: {{listen: "127.0.0.1:{metrics_port}"}}',
        "defaults:", f"  interval: {interval:g}s", "  timeout: 5s", "checks:",
    ]
    lines += [f"  - name: dns-{i}\n    dns: {{name: c{i}.bench.test, type: A, "
              f"server: '{server}'}}" for i in range(n)]
    path = folder / "watchdog.yaml"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def run_dns(ctx: dict, n: int, interval: float, window: float, name: str) -> dict:
    port = bench.free_port()
    config = dns_config(ctx["work"] / name, n, ctx["dns"].address, ctx["stub"].url, interval,
                        port)
    runner = bench.Runner(ctx["procs"], config, port)
    started = runner.wait_started()
    bench.sleep_until(started + interval)
    ws = time.time()
    cpu0, tcpu0, m0 = measure.cpu(runner.pid), ctx["dns"].cpu(), runner.scrape()
    bench.sleep_until(ws + window)
    we = time.time()
    cpu1, tcpu1, m1 = measure.cpu(runner.pid), ctx["dns"].cpu(), runner.scrape()
    mem = measure.memory(runner.pid)
    runner.stop()
    metrics = bench._metrics(m0, m1)
    used = (cpu1 - cpu0).own
    probes = metrics["runs"]
    return {"n": n, "interval": interval, "window": we - ws, "probes": probes, "cpu_s": used,
            "cpu_per_1000": 1000 * used / probes if probes else math.nan,
            "cpu_util": used / (we - ws), "target_cpu_s": tcpu1 - tcpu0,
            "threads": mem["Threads"], "hwm_kb": mem["VmHWM"], "metrics": metrics,
            "log": runner.log_counts(), "startup_s": started - runner.launched}


def row(kind: str, r: dict) -> str:
    m = r["metrics"]
    lo, hi = m["lag_p99"]
    planned = r["n"] * r["window"] / r["interval"]
    return (f"| {kind} | {r['n']} | {r['probes']:.0f} / {planned:.0f} | "
            f"{1000 * r['cpu_per_1000']:.0f} ms | {100 * r['cpu_util']:.1f} % | "
            f"{1000 * lo:.0f}-{1000 * hi:.0f} ms | {1000 * m['lag_mean']:.1f} ms | "
            f"{1000 * m['lag_max_since_start']:.0f} ms | {m['missed']:.0f} / "
            f"{m['skipped']:.0f} | {r.get('threads', '')} | {r['hwm_kb'] / 1024:.0f} MB |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="pdw-dns-bench-"))
    procs = bench.Procs()
    try:
        ctx = {"procs": procs, "work": work,
               "args": argparse.Namespace(timeout=5.0, scrape_every=0, hang_pct=0,
                                          slow_pct=0),
               "targets": bench.TargetServer(procs, work),
               "stub": bench.Stub(procs, work, "stub"), "dns": DnsTarget(procs, work)}
        results = []
        for round_ in range(args.rounds):
            order = ["dns", "http"] if round_ % 2 == 0 else ["http", "dns"]
            for kind in order:
                bench.log(f"round {round_ + 1}: {args.checks} {kind} checks every "
                          f"{args.interval:g}s, window {args.window:g}s")
                if kind == "dns":
                    r = run_dns(ctx, args.checks, args.interval, args.window, f"dns{round_}")
                else:
                    r = bench.run_watchdog(ctx, args.checks, args.interval, args.window,
                                           run=f"http{round_}", http_only=True)
                r["hwm_kb"] = r.get("hwm_kb", math.nan)
                results.append((kind, r))
                bench.log(f"{kind}: {row(kind, r)} log {r['log']}")
    finally:
        procs.stop_all()
    print("\n| kind | checks | probes / planned | CPU / 1,000 probes | core used | "
          "p99 lag (bucket) | mean lag | max lag (since start) | missed / skipped | "
          "threads | peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for kind, r in results:
        print(row(kind, r))
    print(f"\nwork folder: {work}")


if __name__ == "__main__":
    main()
