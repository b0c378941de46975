"""Issue 14's bench for the tcp kind: N tcp checks every 10 s on this machine, their p99
schedule lag, and CPU per 1,000 probes beside http's, measured the same way in one run.

    .venv/bin/python bench/tcp_load.py [--checks 1000] [--interval 10] [--window 60]

Per kind, one `pd-watchdog run` on a generated config of N healthy checks (no PagerDuty
events: nothing fails), warmed up for one interval, then measured over the window:

  tcp-connect  tcp: {host: 127.0.0.1, port: P}: connect, abort
  tcp-pong     tcp: {..., send: "PING\\r\\n", expect: "+PONG"} against a tiny asyncio server
  http         http: {url: ...} against bench/targets.py (run.py's A/B checks)

probes = pd_watchdog_check_runs_total's increase over the window (from /metrics, the same
count for every kind); CPU = the runner's utime+stime over the window; schedule lag from
pd_watchdog_schedule_lag_seconds (the window's histogram delta, the quantile as the bucket
it falls in) and pd_watchdog_schedule_lag_max_seconds (since start). Prints a Markdown table
for bench/RESULTS.md. Loopback only; every process is stopped at the end.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import measure  # noqa: E402
import run as bench  # noqa: E402

PONG_SERVER = r"""
import asyncio, sys

class Pong(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
    def data_received(self, data):
        self.transport.write(b"+PONG\r\n")
        self.transport.close()

async def main():
    server = await asyncio.get_running_loop().create_server(Pong, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"""


def config(kind: str, n: int, folder: Path, args: argparse.Namespace, port: int,
           base_url: str, metrics_port: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["state_dir: ./state", f'metrics: {{listen: "127.0.0.1:{metrics_port}"}}',
             "defaults:", f"  interval: {args.interval:g}s", f"  timeout: {args.timeout:g}s",
             "checks:"]
    for i in range(n):
        if kind == "http":
            spec = f"http: {{url: {base_url}/{folder.name}/{i}/0/0}}"
        elif kind == "tcp-pong":
            spec = f'tcp: {{host: 127.0.0.1, port: {port}, send: "PING\\r\\n", expect: "+PONG"}}'
        else:
            spec = f"tcp: {{host: 127.0.0.1, port: {port}}}"
        lines.append(f"  - name: c{i:05d}\n    {spec}")
    path = folder / "watchdog.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def measure_kind(kind: str, ctx: dict, round_: int) -> dict:
    args, procs = ctx["args"], ctx["procs"]
    metrics_port = bench.free_port()
    port = ctx["pong_port"] if kind == "tcp-pong" else ctx["targets"].port
    path = config(kind, args.checks, ctx["work"] / f"{kind}-{round_}", args, port,
                  ctx["targets"].url, metrics_port)
    runner = bench.Runner(procs, path, metrics_port)
    started = runner.wait_started()
    bench.sleep_until(started + args.interval)  # every check has run once
    cpu0, m0 = measure.cpu(runner.pid), runner.scrape()
    ws = time.time()
    bench.sleep_until(ws + args.window)
    cpu1, m1 = measure.cpu(runner.pid), runner.scrape()
    we = time.time()
    runner.stop()
    lag = measure.histogram_delta(m0, m1, "pd_watchdog_schedule_lag_seconds")
    runs = measure.delta_total(m0, m1, "pd_watchdog_check_runs_total")
    used = (cpu1 - cpu0).own
    out = {
        "kind": kind, "probes": runs, "planned": args.checks * (we - ws) / args.interval,
        "cpu_per_1000": 1000 * used / runs if runs else float("nan"),
        "core": used / (we - ws),
        "p50": measure.bucket_quantile(lag, 0.50), "p99": measure.bucket_quantile(lag, 0.99),
        "lag_max": measure.total(m1, "pd_watchdog_schedule_lag_max_seconds"),
        "missed": measure.delta_total(m0, m1, "pd_watchdog_check_missed_total"),
        "skipped": measure.delta_total(m0, m1, "pd_watchdog_check_skipped_total"),
        "log": runner.log_counts(),
    }
    bench.log(f"{kind} round {round_ + 1}: {out['probes']:.0f} probes "
              f"(planned {out['planned']:.0f}), {out['cpu_per_1000']:.3f} s CPU / 1,000, "
              f"p99 lag {fmt_bucket(out['p99'])}, max {out['lag_max'] * 1000:.0f} ms, "
              f"log {out['log']}")
    return out


def fmt_bucket(bucket: tuple[float, float]) -> str:
    low, high = bucket
    return f"{low * 1000:g}-{high * 1000:g} ms"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="tcp checks: schedule lag and CPU beside http")
    p.add_argument("--checks", type=int, default=1000)
    p.add_argument("--interval", type=float, default=10.0)
    p.add_argument("--window", type=float, default=60.0)
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--kinds", default="tcp-connect,tcp-pong,http")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="pdw-tcp-load-"))
    procs = bench.Procs()
    results: dict[str, list[dict]] = {}
    try:
        targets = bench.TargetServer(procs, work)
        pong = procs.start([bench.PYTHON, "-c", PONG_SERVER], stdout=subprocess.PIPE, text=True)
        ctx = {"args": args, "procs": procs, "work": work, "targets": targets,
               "pong_port": int(pong.stdout.readline())}
        kinds = args.kinds.split(",")
        for round_ in range(args.rounds):
            order = kinds if round_ % 2 == 0 else list(reversed(kinds))
            for kind in order:
                results.setdefault(kind, []).append(measure_kind(kind, ctx, round_))
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    machine = bench.machine()
    print(f"\nmachine: {machine['cores']} cores ({machine['cpu']}), Python {machine['python']}, "
          f"commit {machine['commit']}, {machine['date']}; {args.checks} checks every "
          f"{args.interval:g}s, window {args.window:g}s, {args.rounds} round(s)\n")
    print("| kind | probes / planned | CPU / 1,000 probes, s | core used | schedule lag p50 | "
          "p99 | max since start | missed / skipped |\n|---|---|---|---|---|---|---|---|")
    for kind, rows in results.items():
        for row in rows:
            print(f"| {kind} | {row['probes']:.0f} / {row['planned']:.0f} | "
                  f"{row['cpu_per_1000']:.3f} | {row['core'] * 100:.1f} % | "
                  f"{fmt_bucket(row['p50'])} | {fmt_bucket(row['p99'])} | "
                  f"{row['lag_max'] * 1000:.0f} ms | {row['missed']:.0f} / {row['skipped']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
