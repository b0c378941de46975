"""A /metrics storm against the real `pd-watchdog run`: many scrapes at once plus slow clients.

    .venv/bin/python bench/metrics_load.py --old 229de1a              # A/B: old vs this tree
    .venv/bin/python bench/metrics_load.py --checks 1000 --clients 1000 --slow 200 --rounds 2

Per variant (the old code, then this checkout; `--rounds 2` adds a round in the other
order): start `pd-watchdog run` with `--checks` healthy loopback HTTP checks every
`--interval` s and the metrics listener (bench/targets.py, bench/pdstub.py, bench/gen.py's
config, as bench/run.py does), let two intervals warm up and one pass quietly (the
baseline), then open `--slow` connections that send half a request line and stall, and
0.5 s later fire `--clients` simultaneous GET /metrics, each with a 30 s deadline.
Measured: scrapes answered (200) within 5 s and 30 s, answer time p50 / p99 / max (connect
to the last byte), when the server closed the slow clients, /healthz answer time during the
storm (one request every 0.25 s, from a process of its own), the runner's threads and RSS
(sampled every 20 ms), its CPU and the clients' over the storm, and the probes' schedule
lag during the storm (from the targets' arrival log, as bench/run.py computes it, and the
runner's own pd_watchdog_schedule_lag_seconds histogram) against the quiet interval before.

The old code runs from a copy of its tree (`git archive REV`, or `--old DIR`) put first on
PYTHONPATH of the same venv's `pd-watchdog`; this checkout likewise. Loopback only; every
process started here is stopped at the end (bench/run.py's Procs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gen  # noqa: E402
import measure  # noqa: E402
import run as bench  # noqa: E402

from watchdog import aio  # noqa: E402

REQUEST = b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
HEALTH = b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
DEADLINE = 30.0  # seconds a scrape may take before it counts as timed out
SLOW_HOLD = 60.0  # seconds a slow client waits for the server to close it


# ---------------------------------------------------------------------- the clients


async def _exchange(port: int, request: bytes, deadline: float) -> tuple[int, float, int]:
    """(status, seconds from connect to the server's EOF, bytes); status -1 = timed out,
    0 = connection failed or closed without an answer."""
    start = time.monotonic()
    size, first = 0, b""
    try:
        async with _deadline(deadline):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(request)
                while chunk := await reader.read(1 << 16):
                    first = first or chunk[:32]
                    size += len(chunk)
            finally:
                writer.close()
    except TimeoutError:
        return -1, time.monotonic() - start, size
    except OSError:
        pass
    status = int(first.split(b" ", 2)[1]) if first.startswith(b"HTTP/1.") else 0
    return status, time.monotonic() - start, size


@contextlib.asynccontextmanager
async def _deadline(seconds: float):
    """asyncio.timeout for Python 3.10 too: cancel the block after `seconds`."""
    task = asyncio.current_task()
    handle = asyncio.get_running_loop().call_later(seconds, task.cancel)
    try:
        yield
    except asyncio.CancelledError as exc:
        raise TimeoutError from exc
    finally:
        handle.cancel()


async def _slow_client(port: int, opened: list[bool]) -> tuple[str, float]:
    """Half a request line, then silence: ('408'/'closed'/'held'/'failed', seconds)."""
    start = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return "failed", 0.0
    opened.append(True)
    writer.write(b"GET /metr")
    try:
        async with _deadline(SLOW_HOLD):
            data = await reader.read()
        return ("408" if b" 408 " in data[:16] else "closed"), time.monotonic() - start
    except TimeoutError:
        return "held", time.monotonic() - start
    except OSError:
        return "closed", time.monotonic() - start
    finally:
        writer.close()


def poll_health(port: int) -> int:
    """--poll-health: GET /healthz every 0.25 s until stdin closes, one "at status seconds"
    line each. A process of its own, so the storm's clients do not delay it."""
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    while not stop.is_set():
        at, start, data = time.time(), time.monotonic(), b""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
                sock.sendall(HEALTH)
                while chunk := sock.recv(4096):
                    data += chunk
            status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.") else 0
        except TimeoutError:
            status = -1
        except OSError:
            status = 0
        print(f"{at:.6f} {status} {time.monotonic() - start:.6f}", flush=True)
        stop.wait(0.25)
    return 0


class HealthPoller:
    def __init__(self, procs: bench.Procs, port: int) -> None:
        self.procs = procs
        self.proc = procs.start([bench.PYTHON, __file__, "--poll-health", str(port)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def stop(self, start: float, end: float) -> list[tuple[int, float]]:
        """The polls that started in [start, end]: (status, seconds)."""
        out, _ = self.proc.communicate("", timeout=DEADLINE + 5)
        self.procs.stop(self.proc)
        polls = [line.split() for line in out.splitlines()]
        return [(int(s), float(t)) for at, s, t in polls if start <= float(at) <= end]


async def _storm(port: int, clients: int, slow: int) -> dict:
    opened: list[bool] = []
    slow_tasks = [asyncio.ensure_future(_slow_client(port, opened)) for _ in range(slow)]
    await asyncio.sleep(0.5)  # the slow ones connect and stall first
    started = time.time()
    scrapes = await asyncio.gather(*(_exchange(port, REQUEST, DEADLINE) for _ in range(clients)))
    ended = time.time()
    return {"started": started, "ended": ended, "scrapes": scrapes, "slow_opened": len(opened),
            "slow": await asyncio.gather(*slow_tasks)}


def storm(port: int, clients: int, slow: int) -> dict:
    loop = aio.new_event_loop()
    try:
        return loop.run_until_complete(_storm(port, clients, slow))
    finally:
        loop.close()


class Sampler:
    """The runner's Threads and VmRSS from /proc every 20 ms, in a thread of the bench."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[dict[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            with contextlib.suppress(OSError):
                self.samples.append(measure.memory(self.pid))

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join(5)
        return {"threads_max": max(s["Threads"] for s in self.samples),
                "rss_max_kb": max(s["VmRSS"] for s in self.samples)}


# ---------------------------------------------------------------------- one variant


def _code_tree(spec: str, work: Path) -> Path:
    """A directory holding the watchdog package: spec itself, or `git archive spec` of it."""
    if Path(spec).is_dir():
        return Path(spec).resolve()
    out = work / f"tree-{spec}"
    out.mkdir()
    archive = subprocess.run(["git", "-C", str(bench.ROOT), "archive", spec],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def _start_runner(ctx: dict, tree: Path, run: str, n: int, interval: float):
    mix = gen.mix(n, hang_pct=0, slow_pct=0, flaky_pct=0, http_only=True)
    port = bench.free_port()
    config = gen.watchdog_yaml(
        mix, base_url=ctx["targets"].url, run=run, folder=ctx["work"] / run, interval=interval,
        timeout=min(5.0, 0.8 * interval), workers=64, pd_url=ctx["stub"].url,
        metrics_port=port, count_log=None,
    )
    env = {**os.environ, "PYTHONPATH": str(tree)}
    where = subprocess.run(  # which watchdog the runner will import, from its own folder
        [bench.PYTHON, "-c", "import watchdog; print(watchdog.__file__)"], env=env,
        cwd=str(config.parent), check=True, capture_output=True, text=True).stdout.strip()
    if not where.startswith(str(tree)):
        raise RuntimeError(f"{run}: the runner would import {where}, not {tree}")
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(tree)  # bench.Runner's Popen inherits the environment
    try:
        runner = bench.Runner(ctx["procs"], config, port)
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    return mix, port, runner


def variant(ctx: dict, name: str, tree: Path, run: str) -> dict:
    args = ctx["args"]
    interval = args.interval
    mix, port, runner = _start_runner(ctx, tree, run, args.checks, interval)
    started = runner.wait_started()
    bench.log(f"{run} ({name}): {args.checks} checks every {interval:g}s, metrics on {port}")
    # two intervals of warm-up: a check's second pass (recover_after) writes its state once
    quiet_start = started + 2 * interval
    bench.sleep_until(quiet_start + interval)
    m0 = runner.scrape()
    before = measure.memory(runner.pid)
    sampler = Sampler(runner.pid)
    poller = HealthPoller(ctx["procs"], port)
    cpu0, client0 = measure.cpu(runner.pid), _own_cpu()
    result = storm(port, args.clients, args.slow)
    cpu1, client1 = measure.cpu(runner.pid), _own_cpu()
    result["health"] = poller.stop(result["started"], result["ended"])
    load = sampler.stop()
    window_end = max(result["started"] + interval, result["ended"])
    bench.sleep_until(window_end + 1.0)
    m1 = runner.scrape()
    runner_log = runner.log_counts()
    runner.stop()
    ctx["targets"].ctl("flush")
    requests = measure.read_requests(str(ctx["targets"].log_path), run)
    arrivals = {c.path(run): [r.arrival for r in requests.get(c.path(run), [])]
                for c in mix.http}
    offsets = {c.path(run): bench._spread(c.name, interval) for c in mix.http}

    def lag(start: float, end: float) -> dict:
        planned, empty, _ = measure.lag_from_arrivals(arrivals, offsets, interval, start, end)
        return {**measure.summary([x for _, x in planned]), "empty": empty}

    hist = measure.histogram_delta(m0, m1, "pd_watchdog_schedule_lag_seconds") if m1 else []
    return {
        "name": name, "run": run, "tree": str(tree), "checks": args.checks,
        "storm_s": result["ended"] - result["started"],
        "scrapes": _scrape_summary(result["scrapes"]),
        "slow": _slow_summary(result["slow"], result["slow_opened"]),
        "health": _health_summary(result["health"]),
        "threads_before": before["Threads"], **load, "rss_before_kb": before["VmRSS"],
        "cpu_storm_s": (cpu1 - cpu0).own, "client_cpu_s": client1 - client0,
        "lag_quiet": lag(quiet_start, quiet_start + interval),
        "lag_storm": lag(result["started"], window_end),
        "lag_hist_p99": measure.bucket_quantile(hist, 0.99) if hist else None,
        "log": runner_log,
    }


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def _scrape_summary(scrapes: list[tuple[int, float, int]]) -> dict:
    ok = [took for status, took, _ in scrapes if status == 200]
    statuses: dict[str, int] = {}
    for status, _, _ in scrapes:
        key = "timeout" if status == -1 else str(status)
        statuses[key] = statuses.get(key, 0) + 1
    return {"n": len(scrapes), "ok_5s": sum(1 for t in ok if t <= 5.0),
            "ok_30s": sum(1 for t in ok if t <= 30.0), "statuses": statuses,
            "time": measure.summary([took for _, took, _ in scrapes]),
            "bytes": max((size for status, _, size in scrapes if status == 200), default=0)}


def _slow_summary(slow: list[tuple[str, float]], opened: int) -> dict:
    closed = [took for how, took in slow if how in ("408", "closed")]
    return {"n": len(slow), "opened": opened,
            "outcomes": {how: sum(1 for h, _ in slow if h == how) for how, _ in slow},
            "closed_after": measure.summary(closed)}


def _health_summary(health: list[tuple[int, float]]) -> dict:
    return {"n": len(health), "ok": sum(1 for s, _ in health if s == 200),
            "time": measure.summary([took for _, took in health])}


# ---------------------------------------------------------------------- report


def _ms(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{1000 * x:.1f} ms"


def _s(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.2f} s"


def table(results: list[dict]) -> str:
    rows = [
        ("scrapes answered 200 within 5 s / 30 s", lambda r: (
            f"{r['scrapes']['ok_5s']:,} / {r['scrapes']['ok_30s']:,} of {r['scrapes']['n']:,}")),
        ("outcomes", lambda r: ", ".join(f"{k}: {v:,}" for k, v in
                                         sorted(r["scrapes"]["statuses"].items()))),
        ("answer time p50 / p99 / max", lambda r: " / ".join(
            _s(r["scrapes"]["time"][q]) for q in ("p50", "p99", "max"))),
        ("storm duration (first request to last answer)", lambda r: _s(r["storm_s"])),
        ("page size", lambda r: f"{r['scrapes']['bytes'] / 1e6:.2f} MB"),
        ("slow clients: closed by the server after p50 / max", lambda r: (
            f"{_s(r['slow']['closed_after']['p50'])} / {_s(r['slow']['closed_after']['max'])}"
            f" ({', '.join(f'{k}: {v}' for k, v in sorted(r['slow']['outcomes'].items()))})")),
        ("/healthz during the storm: answered / asked, p50 / max", lambda r: (
            f"{r['health']['ok']} / {r['health']['n']}, {_s(r['health']['time']['p50'])} / "
            f"{_s(r['health']['time']['max'])}")),
        ("probe lag p50 / p99 / max, quiet interval before", lambda r: " / ".join(
            _ms(r["lag_quiet"][q]) for q in ("p50", "p99", "max"))),
        ("probe lag p50 / p99 / max, during the storm", lambda r: " / ".join(
            _ms(r["lag_storm"][q]) for q in ("p50", "p99", "max"))
            + f" ({r['lag_storm']['n']:,} probes, {r['lag_storm']['empty']} empty slots)"),
        ("runner's lag histogram p99, quiet + storm", lambda r: (
            "n/a" if not r["lag_hist_p99"] else
            f"{_ms(r['lag_hist_p99'][0])}–{_ms(r['lag_hist_p99'][1])}")),
        ("runner threads: before / max during", lambda r: (
            f"{r['threads_before']} / {r['threads_max']}")),
        ("runner RSS: before / max during", lambda r: (
            f"{r['rss_before_kb'] / 1024:.0f} MB / {r['rss_max_kb'] / 1024:.0f} MB")),
        ("CPU during the storm: runner / clients (this script)", lambda r: (
            f"{_s(r['cpu_storm_s'])} / {_s(r['client_cpu_s'])}")),
        ("runner log: warnings / errors / tracebacks", lambda r: (
            f"{r['log']['warning']} / {r['log']['error']} / {r['log']['traceback']}")),
    ]
    head = "| measure | " + " | ".join(f"{r['name']} ({r['run']})" for r in results) + " |"
    out = [head, "|" + " --- |" * (len(results) + 1)]
    for label, cell in rows:
        out.append(f"| {label} | " + " | ".join(cell(r) for r in results) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="a /metrics storm against pd-watchdog run")
    p.add_argument("--old", help="the old code: a git revision or a directory (omit: new only)")
    p.add_argument("--new", default=str(bench.ROOT), help="the new code (default: this tree)")
    p.add_argument("--checks", type=int, default=1000)
    p.add_argument("--interval", type=float, default=10.0)
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--slow", type=int, default=200)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--json", help="also write the raw results here")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--poll-health", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.poll_health:
        return poll_health(args.poll_health)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.clients + args.slow + 256
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, 8192)), hard))
    work = Path(tempfile.mkdtemp(prefix="pdw-metrics-load-"))
    procs = bench.Procs()
    results = []
    try:
        ctx = {"args": args, "work": work, "procs": procs,
               "targets": bench.TargetServer(procs, work), "stub": bench.Stub(procs, work, "ml")}
        trees = [("new", _code_tree(args.new, work))]
        if args.old:
            trees.insert(0, (f"old {args.old}", _code_tree(args.old, work)))
        for round_ in range(args.rounds):  # A B, then B A: neither always goes first
            order = list(enumerate(trees))
            for i, (name, tree) in order if round_ % 2 == 0 else order[::-1]:
                results.append(variant(ctx, name, tree, f"r{round_}v{i}"))
    finally:
        procs.stop_all()
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
