"""Benchmark pd-watchdog with thousands of checks on this machine, side by side with Monit.

    .venv/bin/python bench/run.py                      # full run, ~20 minutes
    .venv/bin/python bench/run.py --quick              # ~3-minute smoke run
    .venv/bin/python bench/run.py --sizes 100,1000,5000 --window 60

Run by hand, never in CI. Everything is on loopback; every process started here runs in its
own process group and is stopped at the end, on Ctrl-C or on error. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gen  # noqa: E402
import measure  # noqa: E402
import report  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
PYTHON = str(BIN / "python") if (BIN / "python").exists() else sys.executable
PDW = str(BIN / "pd-watchdog")
FAIL_AFTER = 3
RECOVER_AFTER = 2


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ------------------------------------------------------------------------ processes


class Procs:
    """Every child process, each the leader of its own process group; stop_all() ends them."""

    def __init__(self) -> None:
        self.live: list[subprocess.Popen] = []

    def start(self, argv: list[str], **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(argv, start_new_session=True, **kwargs)
        self.live.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 20.0) -> float:
        """SIGTERM the group, wait, then SIGKILL; return seconds it took to exit."""
        start = time.monotonic()
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"pid {proc.pid} ignored SIGTERM for {timeout:.0f}s: SIGKILL")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything left in its group (plugins)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if proc in self.live:
            self.live.remove(proc)
        return time.monotonic() - start

    def stop_all(self) -> None:
        for proc in reversed(list(self.live)):
            self.stop(proc, timeout=15.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, timeout: float = 10.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # loopback only
        return json.loads(response.read())


class TargetServer:
    def __init__(self, procs: Procs, folder: Path) -> None:
        self.log_path = folder / "requests.tsv"
        self.proc = procs.start(
            [PYTHON, str(ROOT / "bench" / "targets.py"), "--log", str(self.log_path)],
            stdout=subprocess.PIPE,
            stderr=open(folder / "targets.err", "w"),  # noqa: SIM115
            text=True,
        )
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"targets did not start: {self.url!r}")
        self.port = int(self.url.rsplit(":", 1)[1])

    def ctl(self, command: str, ids: list[int] | None = None) -> dict:
        query = "?ids=" + ",".join(str(i) for i in ids) if ids else ""
        return get_json(f"{self.url}/_ctl/{command}{query}")

    def cpu(self) -> float:
        return measure.cpu(self.proc.pid).own


class Stub:
    """bench/pdstub.py (tests/fakepd.py's FakePagerDuty) driven over its stdin."""

    def __init__(self, procs: Procs, folder: Path, name: str, mode: str = "ok") -> None:
        self.log_path = folder / f"{name}-events.jsonl"
        self.proc = procs.start(
            [PYTHON, str(ROOT / "bench" / "pdstub.py"), "--log", str(self.log_path),
             "--mode", mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(folder / f"{name}-stub.err", "w"),  # noqa: SIM115
            text=True,
        )
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"PagerDuty stand-in did not start: {self.url!r}")

    def _ask(self, line: str) -> list[str]:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().split()
        if answer[:1] != ["ok"]:
            raise RuntimeError(f"stand-in answered {answer!r} to {line!r}")
        return answer[1:]

    def mode(self, mode: str) -> float:
        return float(self._ask(f"mode {mode}")[0])

    def count(self) -> tuple[int, int]:
        _, events, requests = self._ask("count")
        return int(events), int(requests)


class Runner:
    """One `pd-watchdog run CONFIG` process."""

    def __init__(
        self, procs: Procs, config: Path, metrics_port: int | None, tree: Path | None = None
    ) -> None:
        """tree: run the `watchdog` package found in that folder (an A/B's other code)
        instead of the installed one."""
        self.procs = procs
        self.log_path = config.parent / "runner.log"
        self.metrics_url = (
            f"http://127.0.0.1:{metrics_port}/metrics" if metrics_port is not None else None
        )
        self.launched = time.time()
        argv, env = [PDW, "run", str(config)], None
        if tree is not None:
            argv = [PYTHON, "-m", "watchdog", "run", str(config)]
            env = {**os.environ, "PYTHONPATH": str(tree)}
        self.proc = procs.start(
            argv,
            cwd=str(config.parent),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.log_path, "w"),  # noqa: SIM115
        )
        self.pid = self.proc.pid

    def wait_started(self, timeout: float = 120.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"runner exited {self.proc.returncode}: {self.tail()}")
            if " started: " in self.log_path.read_text(errors="replace"):
                return time.time()
            time.sleep(0.05)
        raise RuntimeError(f"runner not started after {timeout}s: {self.tail()}")

    def tail(self, lines: int = 5) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return " | ".join(text[-lines:])

    def scrape(self) -> dict | None:
        return measure.scrape(self.metrics_url) if self.metrics_url else None

    def stop(self) -> float:
        return self.procs.stop(self.proc, timeout=30.0)

    def log_counts(self) -> dict[str, int]:
        text = self.log_path.read_text(errors="replace")
        return {
            "warning": text.count(" WARNING "),
            "error": text.count(" ERROR "),
            "traceback": text.count("Traceback"),
        }


class Scraper:
    """Fetches /metrics every `every` seconds, as a Prometheus server would, timing each."""

    def __init__(self, url: str | None, every: float) -> None:
        self.url = url
        self.every = every
        self.samples: list[tuple[float, float, int]] = []  # (at, seconds, bytes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scraper", daemon=True)
        if url and every > 0:
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            start = time.time()
            try:
                with urllib.request.urlopen(self.url, timeout=30) as response:  # loopback
                    size = len(response.read())
            except OSError:
                continue
            self.samples.append((start, time.time() - start, size))

    def stop(self) -> list[tuple[float, float, int]]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(35)
        return self.samples


def sleep_until(when: float) -> None:
    while True:
        left = when - time.time()
        if left <= 0:
            return
        time.sleep(min(left, 0.5))


def count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


# -------------------------------------------------------------------------- phases


def detection_window(interval: float) -> float:
    """Seconds a down/up flip needs inside the window: down, page, up, resolve, margins."""
    return (0.25 + FAIL_AFTER + 0.5 + RECOVER_AFTER + 0.5) * interval + 4.0


def run_watchdog(
    ctx: dict, n: int, interval: float, window: float, *, run: str, http_only: bool = False,
    sample: int = 0, workers: int = 64, tree: Path | None = None,
) -> dict:
    """One pd-watchdog run over a generated mix (of the code in `tree`, if given); returns
    its measurements."""
    procs, targets, stub, work, args = (
        ctx["procs"], ctx["targets"], ctx["stub"], ctx["work"], ctx["args"]
    )
    if http_only:
        mix = gen.mix(n, hang_pct=0, slow_pct=0, flaky_pct=0, http_only=True)
    else:
        mix = gen.mix(n, hang_pct=args.hang_pct, slow_pct=args.slow_pct, sample=sample)
    folder = work / run
    count_log = folder / "plugin-runs.log"
    metrics_port = free_port()
    config = gen.watchdog_yaml(
        mix, base_url=targets.url, run=run, folder=folder, interval=interval,
        timeout=args.timeout, workers=workers, pd_url=stub.url, metrics_port=metrics_port,
        count_log=count_log, fail_after=FAIL_AFTER, recover_after=RECOVER_AFTER,
    )
    # give each run its own incident keys: pd-watchdog/<source>/<name>
    text = config.read_text().replace(f"source: {gen.SOURCE}", f"source: {gen.SOURCE}-{run}")
    config.write_text(text)
    source = f"{gen.SOURCE}-{run}"
    if mix.sample:
        window = max(window, detection_window(interval))
    log(f"{run}: {n} checks ({len(mix.http)} http, {n - len(mix.http)} command, "
        f"{mix.count('hang')} hang, {mix.count('slow')} slow), every {interval:g}s, "
        f"workers {workers}, window {window:.0f}s")
    runner = Runner(procs, config, metrics_port, tree)
    started = runner.wait_started()
    scraper = Scraper(runner.metrics_url, args.scrape_every)
    log(f"{run}: started in {started - runner.launched:.2f}s; warming up for one interval")
    sleep_until(started + interval)

    ws = time.time()
    cpu0, tcpu0 = measure.cpu(runner.pid), targets.cpu()
    cmd0 = count_lines(count_log)
    m0_at = time.time()
    m0 = runner.scrape()
    m0_took = time.time() - m0_at
    flips = {}
    if mix.sample:
        ids = [c.index for c in mix.sample]
        sleep_until(ws + 0.25 * interval)
        flips["down"] = targets.ctl("down", ids)["at"]
        log(f"{run}: {len(ids)} targets down")
        sleep_until(flips["down"] + (FAIL_AFTER + 0.5) * interval)
        flips["up"] = targets.ctl("up", ids)["at"]
        log(f"{run}: {len(ids)} targets up")
    mem_mid = measure.memory(runner.pid)
    sleep_until(ws + window)
    we = time.time()
    cpu1, tcpu1 = measure.cpu(runner.pid), targets.cpu()
    cmd1 = count_lines(count_log)
    mem = measure.memory(runner.pid)
    m1 = runner.scrape()
    scrapes = [x for x in scraper.stop() if ws <= x[0] < we]
    stop_seconds = runner.stop()
    log(f"{run}: stopped in {stop_seconds:.1f}s")
    targets.ctl("flush")
    time.sleep(0.6)  # the stand-in writes its log per event: nothing is buffered there

    requests = measure.read_requests(str(targets.log_path), run)
    by_path = {c.path(run): c for c in mix.http}
    arrivals = {p: [r.arrival for r in requests.get(p, [])] for p in by_path}
    offsets = {p: _spread(c.name, interval) for p, c in by_path.items()}
    planned_lags, empty, t0 = measure.lag_from_arrivals(arrivals, offsets, interval, ws, we)
    lags = [lag for _, lag in planned_lags]
    # the same, leaving out probes planned while a /metrics scrape was being served (+1 s)
    busy = [(at, at + took + 1.0) for at, took, _ in scraper.samples]
    busy.append((m0_at, m0_at + m0_took + 1.0))
    quiet = [lag for planned, lag in planned_lags
             if not any(a <= planned < b for a, b in busy)]
    gaps = measure.gaps(arrivals.values(), ws, we)
    http_probes = sum(1 for reqs in arrivals.values() for a in reqs if ws <= a < we)
    cmd_probes = cmd1 - cmd0
    probes = http_probes + cmd_probes
    used = cpu1 - cpu0
    out = {
        "run": run, "n": n, "interval": interval, "window": we - ws, "workers": workers,
        "http": len(mix.http), "command": n - len(mix.http), "hang": mix.count("hang"),
        "slow": mix.count("slow"), "flaky": mix.count("flaky"), "http_only": http_only,
        "startup_s": started - runner.launched, "stop_s": stop_seconds,
        "probes": probes, "http_probes": http_probes, "command_probes": cmd_probes,
        "expected_probes": n * (we - ws) / interval,
        "cpu_s": used.own, "children_cpu_s": used.children,
        "cpu_per_1000": 1000 * used.own / probes if probes else math.nan,
        "cpu_util": used.own / (we - ws),
        "targets_cpu_s": tcpu1 - tcpu0,
        "hwm_kb": mem["VmHWM"], "rss_kb": mem["VmRSS"], "threads": mem["Threads"],
        "threads_mid": mem_mid["Threads"],
        "target_lag": measure.summary(lags), "target_empty_slots": empty,
        "target_lag_outside_scrapes": measure.summary(quiet),
        "scrape_log": [(round(at - ws, 3), round(took, 3)) for at, took, _ in scraper.samples],
        "gap_dev": measure.summary([abs(g - interval) for g in gaps]),
        "gaps_late": sum(1 for g in gaps if g > 1.5 * interval),
        "paths_probed": sum(1 for reqs in arrivals.values() if any(ws <= a < we for a in reqs)),
        "log": runner.log_counts(),
        "effective_interval": (len(mix.http) * (we - ws) / http_probes) if http_probes else None,
        "scrapes": len(scrapes), "scrape_every": args.scrape_every,
        "scrape_max_s": max((x[1] for x in scrapes), default=None),
        "scrape_mean_s": statistics.fmean([x[1] for x in scrapes]) if scrapes else None,
        "scrape_bytes": scrapes[-1][2] if scrapes else None,
    }
    out["metrics"] = _metrics(m0, m1) if m1 is not None else None
    if mix.sample:
        events = measure.read_events(str(stub.log_path))
        out["detection"] = _detection(mix.sample, run, source, requests, events, flips, interval)
    return out


def _spread(name: str, interval: float) -> float:
    from watchdog.timing import spread  # the runner's own first-run offset

    return spread(name, interval)


def _metrics(m0: dict | None, m1: dict) -> dict:
    lag = measure.histogram_delta(m0, m1, "pd_watchdog_schedule_lag_seconds")
    count = lag[-1][1] if lag else 0
    return {
        "runs": measure.delta_total(m0, m1, "pd_watchdog_check_runs_total"),
        "skipped": measure.delta_total(m0, m1, "pd_watchdog_check_skipped_total"),
        "missed": measure.delta_total(m0, m1, "pd_watchdog_check_missed_total"),
        "skipped_since_start": measure.total(m1, "pd_watchdog_check_skipped_total"),
        "missed_since_start": measure.total(m1, "pd_watchdog_check_missed_total"),
        "lag_count": count,
        "lag_p50": measure.bucket_quantile(lag, 0.50),
        "lag_p99": measure.bucket_quantile(lag, 0.99),
        "lag_max_since_start": measure.total(m1, "pd_watchdog_schedule_lag_max_seconds"),
        "lag_mean": (
            (measure.delta_total(m0, m1, "pd_watchdog_schedule_lag_seconds_sum") / count)
            if count else math.nan
        ),
        "outbox_pending": measure.total(m1, "pd_watchdog_outbox_pending"),
    }


def _detection(sample, run, source, requests, events, flips, interval) -> dict:
    """Split each flipped check's down->trigger and up->resolve latency into its parts."""
    first: dict[tuple[str, str], float] = {}
    for event in events:
        for action, flip in (("trigger", "down"), ("resolve", "up")):
            if event["action"] == action and event["at"] >= flips[flip]:
                first.setdefault((action, event["key"]), event["at"])
    parts: dict[str, dict[str, list[float]]] = {
        a: {"total": [], "wait": [], "drift": [], "overhead": [], "answer": []}
        for a in ("trigger", "resolve")
    }
    missing = {"trigger": 0, "resolve": 0}
    for c in sample:
        reqs = requests.get(c.path(run), [])
        key = f"pd-watchdog/{source}/{c.name}"
        for action, flip, status, needed, until in (
            ("trigger", flips["down"], 503, FAIL_AFTER, flips["up"]),
            ("resolve", flips["up"], 200, RECOVER_AFTER, math.inf),
        ):
            seen = [r for r in reqs if flip <= r.arrival < until and r.status == status]
            paged = first.get((action, key))
            if len(seen) < needed or paged is None:
                missing[action] += 1
                continue
            crossing = seen[needed - 1]
            p = parts[action]
            p["total"].append(paged - flip)
            p["wait"].append(seen[0].arrival - flip)
            p["drift"].append(crossing.arrival - seen[0].arrival - (needed - 1) * interval)
            p["answer"].append(crossing.answer - crossing.arrival)
            p["overhead"].append(paged - crossing.answer)
    return {
        "sample": len(sample),
        "missing": missing,
        **{a: {k: measure.summary(v) for k, v in p.items()} for a, p in parts.items()},
    }


def run_monit(ctx: dict, n: int, interval: float, window: float, *, run: str,
              http_only: bool = False) -> dict:
    """Monit on the same HTTP targets (its own run prefix), foreground, for `window` s."""
    procs, targets, work, args = ctx["procs"], ctx["targets"], ctx["work"], ctx["args"]
    if http_only:
        mix = gen.mix(n, hang_pct=0, slow_pct=0, flaky_pct=0, http_only=True)
    else:
        mix = gen.mix(n, hang_pct=args.hang_pct, slow_pct=args.slow_pct)
    folder = work / run
    rc = gen.monitrc(mix.http, port=targets.port, run=run, folder=folder, interval=interval,
                     timeout=args.timeout)
    log(f"{run}: Monit, {len(mix.http)} http checks, set daemon {interval:g}, "
        f"window {window:.0f}s")
    proc = procs.start(
        [ctx["monit"], "-I", "-c", str(rc)],
        stdout=open(folder / "monit.out", "w"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    launched = time.time()
    time.sleep(1.0)
    if proc.poll() is not None:
        raise RuntimeError(f"monit exited {proc.returncode}: see {folder / 'monit.out'}")
    ws = time.time()
    cpu0, tcpu0 = measure.cpu(proc.pid), targets.cpu()
    sleep_until(ws + window)
    we = time.time()
    cpu1, tcpu1 = measure.cpu(proc.pid), targets.cpu()
    mem = measure.memory(proc.pid)
    procs.stop(proc)
    targets.ctl("flush")
    requests = measure.read_requests(str(targets.log_path), run)
    paths = [c.path(run) for c in mix.http]
    arrivals = {p: [r.arrival for r in requests.get(p, [])] for p in paths}
    gaps = measure.gaps(arrivals.values(), ws, we)
    probes = sum(1 for times in arrivals.values() for a in times if ws <= a < we)
    used = cpu1 - cpu0
    # a full cycle's length: how long Monit took to get round to every check once
    firsts = sorted(times[0] for times in arrivals.values() if times)
    return {
        "run": run, "n": n, "http": len(mix.http), "interval": interval, "window": we - ws,
        "probes": probes, "expected_probes": len(mix.http) * (we - ws) / interval,
        "cpu_s": used.own, "cpu_per_1000": 1000 * used.own / probes if probes else math.nan,
        "targets_cpu_s": tcpu1 - tcpu0, "hwm_kb": mem["VmHWM"],
        "gap_mean": statistics.fmean(gaps) if gaps else math.nan,
        "effective_interval": (len(mix.http) * (we - ws) / probes) if probes else None,
        "gap_dev": measure.summary([abs(g - interval) for g in gaps]),
        "gaps_late": sum(1 for g in gaps if g > 1.5 * interval),
        "paths_probed": sum(1 for t in arrivals.values() if any(ws <= a < we for a in t)),
        "first_cycle_s": (firsts[-1] - launched) if len(firsts) == len(paths) else None,
    }


def run_validate(ctx: dict, n: int, repeats: int = 3) -> dict:
    work = ctx["work"]
    mix = gen.mix(n)
    out = {"n": n}
    for label, files in (("one_file", 1), ("ten_files", 10)):
        folder = work / f"validate-{label}"
        config = gen.watchdog_yaml(
            mix, base_url="http://127.0.0.1:9", run="v", folder=folder, interval=30,
            timeout=5, workers=64, pd_url="http://127.0.0.1:9", metrics_port=None,
            count_log=None, files=files,
        )
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            done = subprocess.run(
                [PDW, "validate", str(config)], capture_output=True, text=True, timeout=120
            )
            times.append(time.perf_counter() - start)
            if done.returncode != 0:
                raise RuntimeError(f"validate failed: {done.stderr[-500:]}")
        out[label] = {"median": statistics.median(times), "max": max(times), "runs": times,
                      "said": done.stdout.strip().split(": ", 1)[-1]}
        log(f"validate {n} checks ({label}): median {out[label]['median']:.2f}s")
    return out


def run_drain(ctx: dict, events: int, outage: float) -> dict:
    """Pre-fill the outbox, start the runner against a failing stand-in, then bring it back."""
    from watchdog.model import TRIGGER, Event
    from watchdog.store import Store

    procs, work = ctx["procs"], ctx["work"]
    folder = work / "drain"
    folder.mkdir(parents=True, exist_ok=True)
    stub = Stub(procs, work, "drain", mode="500")
    metrics_port = free_port()
    config = gen.watchdog_yaml(
        gen.Mix([]), base_url="http://127.0.0.1:9", run="d", folder=folder, interval=30,
        timeout=5, workers=64, pd_url=stub.url, metrics_port=metrics_port, count_log=None,
    )
    # The same write path a tripped check takes (Store._append inside one transaction).
    # forget() of a name the store never had only appends the events: no check row is left
    # behind for the runner to reconcile (record() would leave one per check).
    store = Store(str(folder / "state"))
    batch = []
    for i in range(events):
        batch.append(Event(
            action=TRIGGER, incident_key=f"pd-watchdog/bench-drain/c{i:05d}",
            check=f"c{i:05d}", summary=f"c{i:05d}: connection refused (127.0.0.1:9)",
            severity="critical", source="bench-drain",
            details={"url": "http://127.0.0.1:9/", "status_code": None, "latency_ms": 0.3},
        ))
        if len(batch) == 1000 or i == events - 1:
            store.forget("bench-drain-prefill", batch)
            batch = []
    prefilled = store.outbox_stats(time.time())["pending"]
    store.close()
    log(f"drain: {prefilled} events queued; runner starts against a stand-in answering 500")
    runner = Runner(procs, config, metrics_port)
    runner.wait_started()
    deadline = time.monotonic() + 30
    while stub.count()[1] < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(outage)
    cpu0, scpu0 = measure.cpu(runner.pid), measure.cpu(stub.proc.pid)
    back = stub.mode("ok")
    log("drain: stand-in back")
    deadline = time.monotonic() + 300
    accepted = 0
    while time.monotonic() < deadline:
        accepted = stub.count()[0]
        if accepted >= prefilled:
            break
        time.sleep(0.1)
    # pending reaches 0 once the last mark_sent commits, just after the last acceptance
    zero = None
    while time.monotonic() < deadline:
        with Store(str(folder / "state"), readonly=True) as ro:
            if ro.outbox_stats(time.time())["pending"] == 0:
                zero = time.time()
                break
        time.sleep(0.05)
    cpu1, scpu1 = measure.cpu(runner.pid), measure.cpu(stub.proc.pid)
    m1 = runner.scrape()
    runner.stop()
    procs.stop(stub.proc)
    times = sorted(e["at"] for e in measure.read_events(str(stub.log_path)))
    out = {"events": prefilled, "accepted": len(times), "outage_s": outage}
    if times:
        out.update({
            "first_after_back_s": times[0] - back,
            "last_after_back_s": times[-1] - back,
            "pending_zero_after_back_s": (zero - back) if zero else None,
            "rate_from_back": len(times) / ((zero or times[-1]) - back),
            "rate_steady": (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else None,
            "cpu_s": (cpu1 - cpu0).own,
            "cpu_per_1000_events": 1000 * (cpu1 - cpu0).own / len(times),
            "stub_cpu_s": (scpu1 - scpu0).own,
            "metrics_pending_end": measure.total(m1, "pd_watchdog_outbox_pending") if m1 else None,
        })
    log(f"drain: {len(times)} accepted, {out.get('rate_from_back', 0):.0f} events/s from back")
    return out


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="3-minute smoke run")
    p.add_argument("--sizes", help="check counts, e.g. 100,1000,5000")
    p.add_argument("--interval", type=float,
                   help="seconds between runs of a check (default: 10, or 30 above 1,000 checks)")
    p.add_argument("--window", type=float,
                   help="seconds measured per size, after one interval of warm-up; stretched "
                        "to fit the down/up flips (default 60)")
    p.add_argument("--monit-window", type=float, help="seconds Monit is measured per size")
    p.add_argument("--timeout", type=float,
                   help="check timeout (default 5 s, at most 80 %% of the interval)")
    p.add_argument("--hang-pct", type=float, default=5.0)
    p.add_argument("--slow-pct", type=float, default=5.0)
    p.add_argument("--workers", help="per size, e.g. 100:64,1000:64,5000:128 (default 64)")
    p.add_argument("--sample-pct", type=float, default=10.0,
                   help="%% of checks flipped down and up for detection-to-page (max 200)")
    p.add_argument("--scrape-every", type=float, default=15.0,
                   help="fetch the runner's /metrics this often, as Prometheus would (0: only "
                        "at the window's start and end)")
    p.add_argument("--validate-checks", type=int)
    p.add_argument("--drain-events", type=int)
    p.add_argument("--ab-checks", type=int, help="HTTP-only checks for the CPU A/B with Monit")
    p.add_argument("--no-monit", action="store_true")
    p.add_argument("--skip", default="", help="comma list of phases to skip: "
                   "validate,sizes,ab,drain")
    p.add_argument("--out", default=str(ROOT / "bench" / "RESULTS.md"))
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs, configs)")
    args = p.parse_args(argv)
    quick = args.quick
    args.sizes = [int(s) for s in (args.sizes or ("300" if quick else "100,1000,5000")).split(",")]
    args.window = args.window or (35.0 if quick else 60.0)
    args.monit_window = args.monit_window or (25.0 if quick else 60.0)
    args.validate_checks = args.validate_checks or 10_000
    args.drain_events = args.drain_events or (2_000 if quick else 10_000)
    args.ab_checks = args.ab_checks or (300 if quick else 1000)
    workers = dict(item.split(":") for item in (args.workers or "").split(",") if item)
    args.workers_for = lambda n: int(workers.get(str(n), 64))
    args.interval_for = lambda n: args.interval or (5.0 if quick else (10.0 if n <= 1000 else 30.0))
    args.skip = set(filter(None, args.skip.split(",")))
    if args.timeout is None:
        args.timeout = min(5.0, 0.8 * min(args.interval_for(n) for n in args.sizes))
    return args


def ensure_monit() -> str | None:
    found = shutil.which("monit")
    if found:
        return found
    log("monit not found: apt-get install -y monit")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "install", "-y", "-q", "monit"], env=env, check=False,
                   stdout=subprocess.DEVNULL)
    found = shutil.which("monit")
    if found:
        # the package enables a system-wide Monit; this benchmark runs its own
        subprocess.run(["service", "monit", "stop"], check=False, capture_output=True)
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/run.py",
                                                *(sys.argv[1:] if argv is None else argv)])

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupted)  # also when started with SIGINT ignored (&)
    work = Path(tempfile.mkdtemp(prefix="pdw-bench-"))
    procs = Procs()
    results: dict = {"command": command, "started": dt.datetime.now().astimezone().isoformat(),
                     "sizes": [], "monit": [], "args": {
                         k: v for k, v in vars(args).items() if not callable(v)
                         and not isinstance(v, set)}}
    began = time.monotonic()
    log(f"work folder {work}")
    try:
        monit = None if args.no_monit else ensure_monit()
        results["monit_version"] = (
            subprocess.run([monit, "-V"], capture_output=True, text=True).stdout.split("\n")[0]
            if monit else None
        )
        targets = TargetServer(procs, work)
        stub = Stub(procs, work, "main")
        ctx = {"procs": procs, "targets": targets, "stub": stub, "work": work, "args": args,
               "monit": monit}
        log(f"targets at {targets.url}, PagerDuty stand-in at {stub.url}")
        if "validate" not in args.skip:
            results["validate"] = run_validate(ctx, args.validate_checks)
        if "sizes" not in args.skip:
            for n in args.sizes:
                interval = args.interval_for(n)
                sample = min(200, max(1, round(n * args.sample_pct / 100)))
                sample = sample if args.sample_pct > 0 else 0
                results["sizes"].append(run_watchdog(
                    ctx, n, interval, args.window, run=f"n{n}", sample=sample,
                    workers=args.workers_for(n)))
                report.print_size(results["sizes"][-1])
                if monit:
                    results["monit"].append(run_monit(
                        ctx, n, interval, args.monit_window, run=f"m{n}"))
                    report.print_monit(results["monit"][-1])
        if "ab" not in args.skip and monit:
            n = args.ab_checks
            interval = 5.0 if args.quick else 10.0
            results["ab_watchdog"] = run_watchdog(
                ctx, n, interval, args.monit_window, run=f"abw{n}", http_only=True,
                workers=args.workers_for(n))
            report.print_size(results["ab_watchdog"])
            results["ab_monit"] = run_monit(
                ctx, n, interval, args.monit_window, run=f"abm{n}", http_only=True)
            report.print_monit(results["ab_monit"])
        if "drain" not in args.skip:
            results["drain"] = run_drain(ctx, args.drain_events, outage=3.0)
        results["targets_cpu_total_s"] = targets.cpu()
    except KeyboardInterrupt:
        log("interrupted: stopping everything")
        results["interrupted"] = True
    finally:
        procs.stop_all()
        results["elapsed_s"] = time.monotonic() - began
        (work / "results.json").write_text(json.dumps(results, indent=1, default=str))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"kept {work}")
    if results.get("interrupted"):
        return 130
    results["machine"] = machine()
    Path(args.out).write_text(report.markdown(results, Path(args.out)))
    json_path = Path(args.out).with_suffix(".json")
    json_path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    log(f"wrote {args.out} and {json_path.name} in {results['elapsed_s'] / 60:.1f} min")
    return 0


def machine() -> dict:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "watchdog"],
                           capture_output=True, text=True).stdout.strip()
    from watchdog import __version__

    return {
        "cores": os.cpu_count(), "cpu": model,
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(), "kernel": platform.release(),
        "pd_watchdog": __version__, "commit": commit + (" + uncommitted changes" if dirty else ""),
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
    }


if __name__ == "__main__":
    sys.exit(main())
