"""A/B: CPU per probe result with holds (issue 13), an older tree against this one, in one run.

    .venv/bin/python bench/holds_ab.py --old-tree /tmp/base13 [--repeats 5] [--rounds 10]

`--old-tree DIR` is a checkout made beforehand (`git worktree add /tmp/base13 58c68fd`) with
its own venv (`DIR/.venv`, `pip install -e '.[test]'`): the old side runs as it was
installed. The new side is this checkout and its venv. Each measurement is a fresh process
(this script with `--worker`, run by that side's Python) that:

  - writes a config of `--checks` (5,000) HTTP checks (a closed loopback port: nothing is
    probed), metrics on, no routing key (dry-run: events are queued in the outbox and the
    sender logs them), fail_after 3, recover_after 2, state in a temporary folder;
  - builds the real Runner and calls start() (store, sender, metrics listener; the
    scheduler's loop is not started, so nothing is probed: results are fed by hand);
  - feeds Runner._on_result one result per check per round, `--rounds` rounds after two
    warm-up rounds (every check leaves "pending", then reaches recover_after), the checks
    in one fixed shuffled order (the scheduler's spread), and calls Runner._housekeeping()
    every checks / 30 results (one second's worth at a 30 s interval), as the runner's
    main thread does once a second;
  - prints thread CPU (time.thread_time) of the feeding thread per result: on_result alone,
    and on_result plus housekeeping; and the process's CPU per result (sender thread too).

Variants: "old" (old tree), "new, no holds" (this tree, the same config: the cost of the
code path) and "new, holds" (this tree, the same checks plus 10 % in maintenance, half by a
cron window open all along, half by a one-off start/end window, and 20 % with depends_on).

The results (seeded, the same for every variant): 3 % of the checks have outages (4 failing
results in every 10), 2 % fail 10 % of the time at random, and 10 of the 100 parents have
outages that their 100 children share (same rounds): about 2.3 % of results fail, each
outage check triggers and resolves, in maintenance its trigger is held, a child's is held
for its failing parent. Variants run interleaved (old, new no holds, new holds, then the
next repeat in rotated order) after one untimed warm-up run each. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("old", "new-plain", "new-holds")
LABELS = {"old": "old", "new-plain": "new, no holds", "new-holds": "new, holds"}


# --- the checks and their results ---------------------------------------------------------


def names(n: int) -> dict[str, list[str]]:
    """Check names by role: 10 % in maintenance (db-* by cron, batch-* one-off), 2 % parents
    (uplink-*), 20 % their children (api-*, ten per parent), the rest web-*."""
    maint, parents = n // 10, n // 50
    children = parents * 10
    return {
        "db": [f"db-{i:04d}" for i in range(maint // 2)],
        "batch": [f"batch-{i:04d}" for i in range(maint - maint // 2)],
        "uplink": [f"uplink-{i:03d}" for i in range(parents)],
        "api": [f"api-{i:04d}" for i in range(children)],
        "web": [f"web-{i:04d}" for i in range(n - maint - parents - children)],
    }


def config_yaml(n: int, folder: Path, holds: bool, metrics_port: int,
                change_events: bool = False) -> Path:
    """The worker's config: the same checks for every variant; windows and parents if holds
    (and with change_events, issue 15's change events of windows and silences turned on)."""
    roles = names(n)
    lines = [
        "state_dir: ./state",
        *(["pagerduty: {change_events: [maintenance, silence]}"] if change_events else []),
        f'metrics: {{listen: "127.0.0.1:{metrics_port}"}}',
        "defaults: {interval: 30s, timeout: 5s, fail_after: 3, recover_after: 2}",
    ]
    if holds:
        now = datetime.now(timezone.utc)
        lines += [
            "maintenance:",
            "  - name: nightly-db",  # open all along: an hourly start lasting 2 h
            '    checks: ["db-*"]',
            '    schedule: "0 * * * *"',
            "    duration: 2h",
            "    timezone: UTC",
            "  - name: batch-move",
            '    checks: ["batch-*"]',
            f'    start: "{(now - timedelta(hours=1)).isoformat(timespec="seconds")}"',
            f'    end: "{(now + timedelta(days=1)).isoformat(timespec="seconds")}"',
        ]
    lines.append("checks:")
    for role, group in roles.items():
        for i, name in enumerate(group):
            lines.append(f'  - {{name: {name}, http: {{url: "http://127.0.0.1:9/{name}"}}'
                         + (f", depends_on: [{roles['uplink'][i // 10]}]"
                            if holds and role == "api" else "") + "}")
    path = folder / "watchdog.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def plan(n: int, seed: int = 13) -> tuple[list[str], dict[str, tuple[str, int]]]:
    """The feeding order, and each check's behaviour: ("ok"|"outage"|"flaky", phase)."""
    rng = random.Random(seed)
    roles = names(n)
    everyone = [name for group in roles.values() for name in group]
    behaviour = {name: ("ok", 0) for name in everyone}
    independent = [name for name in everyone if not name.startswith(("uplink-", "api-"))]
    picked = rng.sample(independent, len(independent) * 5 // 100)
    outages = len(picked) * 3 // 5
    for name in picked[:outages]:
        behaviour[name] = ("outage", rng.randrange(10))
    for name in picked[outages:]:
        behaviour[name] = ("flaky", 0)
    for p in rng.sample(range(len(roles["uplink"])), 10):
        phase = rng.randrange(10)
        behaviour[roles["uplink"][p]] = ("outage", phase)
        for child in roles["api"][p * 10:(p + 1) * 10]:
            behaviour[child] = ("outage", phase)
    order = everyone[:]
    rng.shuffle(order)
    return order, behaviour


def failing(behaviour: tuple[str, int], round_: int, rng: random.Random) -> bool:
    kind, phase = behaviour
    if kind == "outage":
        return (round_ + phase) % 10 < 4
    return kind == "flaky" and rng.random() < 0.1


# --- one measurement (run by the side's own Python) ---------------------------------------


def worker(variant: str, checks: int, rounds: int, change_events: bool = False) -> dict:
    import watchdog
    from watchdog import logs
    from watchdog.config import load
    from watchdog.model import ProbeResult
    from watchdog.runner import Runner

    work = Path(tempfile.mkdtemp(prefix="pdw-holds-ab-"))
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        path = config_yaml(checks, work, variant == "new-holds", port,
                           change_events and variant == "new-holds")
        saved, sys.stderr = sys.stderr, open(work / "runner.log", "w")  # noqa: SIM115
        try:
            logs.setup("INFO")  # as `run` logs: INFO, through the masking formatter
        finally:
            sys.stderr = saved
        config = load(str(path))
        runner = Runner(config)
        runner.start()
        by_name = {check.name: check for check in config.checks}
        order, behaviour = plan(checks)
        rng = random.Random(7)
        changes = [0]
        record = runner.recorder.record

        def counted(*args, **kwargs):
            changes[0] += 1
            return record(*args, **kwargs)

        runner.recorder.record = counted
        results = {}
        for name in order:
            url = f"http://127.0.0.1:9/{name}"
            results[name] = (
                ProbeResult(True, "HTTP 200 in 1.2 ms", None,
                            {"url": url, "status_code": 200, "latency_ms": 1.2}, 0.0012),
                ProbeResult(False, "HTTP 503 Service Unavailable in 0.9 ms", None,
                            {"url": url, "status_code": 503, "latency_ms": 0.9}, 0.0009),
            )
        block = max(1, checks // 30)
        feed = [(by_name[name], results[name], behaviour[name]) for name in order]

        def one_round(round_: int) -> tuple[float, float]:
            on_result = housekeeping = 0.0
            for start in range(0, len(feed), block):
                t0 = time.thread_time()
                for check, (ok, bad), how in feed[start:start + block]:
                    started = time.time()
                    runner._on_result(check, bad if failing(how, round_, rng) else ok,
                                      started - 0.001, started)
                t1 = time.thread_time()
                runner._housekeeping()
                housekeeping += time.thread_time() - t1
                on_result += t1 - t0
            return on_result, housekeeping

        for round_ in (-1, 0):  # warm-up: every check leaves "pending", then passes 2/2
            one_round(round_)
        changes[0] = 0
        p0 = time.process_time()
        on_result = housekeeping = 0.0
        for round_ in range(1, rounds + 1):
            a, b = one_round(round_)
            on_result, housekeeping = on_result + a, housekeeping + b
        process = time.process_time() - p0
        fed = rounds * len(feed)
        held = sum(1 for state in runner.states.values() if getattr(state, "held", False))
        triggered = sum(1 for state in runner.states.values() if state.triggered)
        runner.shutdown()
        return {
            "variant": variant, "watchdog": str(Path(watchdog.__file__).resolve().parent),
            "results": fed, "state_changes": changes[0], "held_at_end": held,
            "triggered_at_end": triggered,
            "on_result_us": on_result / fed * 1e6,
            "with_housekeeping_us": (on_result + housekeeping) / fed * 1e6,
            "process_us": process / fed * 1e6,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- the A/B ------------------------------------------------------------------------------


def measure(variant: str, tree: Path, args: argparse.Namespace) -> dict:
    python = tree / ".venv" / "bin" / "python"
    out = subprocess.run(
        [str(python), str(Path(__file__).resolve()), "--worker", variant,
         "--checks", str(args.checks), "--rounds", str(args.rounds),
         *(["--change-events"] if args.change_events and variant == "new-holds" else [])],
        cwd=str(tree), check=True, capture_output=True, text=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    ).stdout
    row = json.loads(out.splitlines()[-1])
    if not row["watchdog"].startswith(str(tree.resolve())):
        raise SystemExit(f"{variant}: imported {row['watchdog']}, not the code in {tree}")
    return row


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def table(rows: list[dict]) -> str:
    def med(variant: str, key: str) -> float:
        return statistics.median(r[key] for r in rows if r["variant"] == variant)

    def span(variant: str, key: str) -> str:
        values = [r[key] for r in rows if r["variant"] == variant]
        return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"

    out = ["| µs CPU per result, median (min-max) | " + " | ".join(
        LABELS[v] for v in VARIANTS) + " | no holds / old | holds / old |",
        "| --- | --- | --- | --- | --- | --- |"]
    for key, label in (("on_result_us", "Runner._on_result (feeding thread)"),
                       ("with_housekeeping_us", "same + housekeeping once a second"),
                       ("process_us", "process (sender and metrics threads too)")):
        old = med("old", key)
        out.append(f"| {label} | " + " | ".join(span(v, key) for v in VARIANTS)
                   + f" | {med('new-plain', key) / old:.3f} | {med('new-holds', key) / old:.3f} |")
    for key, label in (("state_changes", "state changes written"),
                       ("held_at_end", "checks held at the end"),
                       ("triggered_at_end", "checks triggered at the end")):
        out.append(f"| {label} | " + " | ".join(f"{med(v, key):.0f}" for v in VARIANTS)
                   + " | | |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="A/B of CPU per result with holds (issue 13)")
    p.add_argument("--old-tree", type=Path, help="old checkout with its own .venv")
    p.add_argument("--new-tree", type=Path, default=ROOT)
    p.add_argument("--checks", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=10, help="measured results per check")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", type=Path, help="write every measurement here")
    p.add_argument("--change-events", action="store_true",
                   help="new, holds: with pagerduty.change_events [maintenance, silence]")
    p.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.checks, args.rounds, args.change_events)))
        return 0
    if args.old_tree is None:
        p.error("--old-tree DIR is required (a checkout of the old commit with its .venv)")
    trees = {"old": args.old_tree, "new-plain": args.new_tree, "new-holds": args.new_tree}
    for tree in {args.old_tree, args.new_tree}:
        subprocess.run([str(tree / ".venv" / "bin" / "python"), "-m", "compileall", "-q",
                        str(tree / "watchdog"), str(tree / "pagerduty_api")], check=True)
    print(f"load average before: {load_average()}", flush=True)
    for variant in VARIANTS:  # untimed: first imports, page cache
        measure(variant, trees[variant], argparse.Namespace(**{**vars(args), "rounds": 1}))
    rows = []
    for repeat in range(args.repeats):
        shift = repeat % len(VARIANTS)
        for variant in VARIANTS[shift:] + VARIANTS[:shift]:
            row = measure(variant, trees[variant], args)
            rows.append(row)
            print(f"repeat {repeat + 1} {LABELS[variant]:14} on_result {row['on_result_us']:6.1f}"
                  f" µs, +housekeeping {row['with_housekeeping_us']:6.1f} µs, process "
                  f"{row['process_us']:6.1f} µs, load {load_average()}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    print(f"load average after: {load_average()}\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
