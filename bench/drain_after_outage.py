"""After PagerDuty was down: how soon a backlog of pages goes out once it is back (A/B, one run).

    .venv/bin/python bench/drain_after_outage.py                # 300 triggers, 60 s outage
    .venv/bin/python bench/drain_after_outage.py --outage 10    # a quick look
    .venv/bin/python bench/drain_after_outage.py --variants old --limit 0   # the issue's setup

For each sender — "old" (a commit exported with `git archive`, default 229de1a, the sender
before issue 10) and "new" (this checkout) — it queues N triggers (N incident keys) in a
fresh state store, starts the real `pd-watchdog run` (no checks; imported from that tree via
PYTHONPATH) against the PagerDuty stand-in (tests/fakepd.py, in this process) answering 429
without Retry-After, and after --outage seconds switches the stand-in to accepting. The
stand-in applies PagerDuty's rate limit all along (--limit calls per routing key in any
60 s, default 120; throttled and failed calls count, as PagerDuty counts calls).

Measured from the switch ("recovery"): first and last accepted event, events accepted
within 5 s, calls throttled by the limit after it, and the most events accepted in any
60 s. Everything is on 127.0.0.1; the runner gets its own process group and is stopped at
the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from fakepd import TEST_KEY, FakePagerDuty  # noqa: E402
from watchdog.model import TRIGGER, Event  # noqa: E402
from watchdog.store import Store  # noqa: E402

WINDOW = 60.0  # PagerDuty's rate-limit window


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def export_commit(commit: str, into: Path) -> Path:
    """The tree of `commit` as plain files (no worktree: nothing in .git changes)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    tar_path = into / "old.tar"
    tar_path.write_bytes(archive)
    target = into / f"tree-{commit}"
    with tarfile.open(tar_path) as tar:
        tar.extractall(target, filter="data")
    return target


def write_config(folder: Path, pd_url: str) -> Path:
    config = folder / "watchdog.yaml"
    config.write_text(
        "pagerduty:\n"
        f"  routing_key: {TEST_KEY}\n"
        f'  url: "{pd_url}"\n'
        "  source: bench-drain-after-outage\n"
        "state_dir: ./state\n"
        "checks: []\n"
    )
    config.chmod(0o600)
    return config


def queue_triggers(folder: Path, n: int) -> None:
    """N triggers of N incident keys, through the same write path a tripped check takes."""
    events = [
        Event(
            action=TRIGGER,
            incident_key=f"pd-watchdog/bench-outage/c{i:04d}",
            check=f"c{i:04d}",
            summary=f"c{i:04d}: connection refused (127.0.0.1:9)",
            severity="critical",
            source="bench-drain-after-outage",
            details={"url": "http://127.0.0.1:9/"},
        )
        for i in range(n)
    ]
    with Store(str(folder / "state")) as store:
        store.forget("bench-prefill", events)  # appends only: no check row left behind


# `python -c` puts the current folder first on sys.path, ahead of PYTHONPATH; this preamble
# puts `tree` ahead of everything, so watchdog and pagerduty_api come from it wherever we are.
PREAMBLE = "import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); "


def python_in(tree: Path, module: str) -> list[str]:
    """argv running `python -m module` with watchdog and pagerduty_api imported from tree."""
    run = f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
    return [sys.executable, "-c", PREAMBLE + run, str(tree)]


def sender_file(tree: Path) -> str:
    """Which watchdog/sender.py the runner imports from tree (checked before each run)."""
    show = "import watchdog.sender as s, pagerduty_api as p; print(s.__file__, p.__file__)"
    done = subprocess.run(
        [sys.executable, "-c", PREAMBLE + show, str(tree)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def wait_started(proc: subprocess.Popen, log_path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"runner exited {proc.returncode}: {log_path.read_text()[-800:]}")
        if " started: " in log_path.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise RuntimeError(f"runner not started after {timeout} s: {log_path.read_text()[-800:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def most_in_window(times: list[float], window: float = WINDOW) -> int:
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def run_variant(name: str, tree: Path, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    folder = work / name
    folder.mkdir()
    queue_triggers(folder, args.events)
    with FakePagerDuty() as pd:
        if args.limit:
            pd.set_rate_limit(args.limit, window=WINDOW)
        pd.set_mode("429")  # no Retry-After
        config = write_config(folder, pd.url)
        log_path = folder / "runner.log"
        with open(log_path, "w") as stderr:
            proc = subprocess.Popen(
                [*python_in(tree, "watchdog"), "run", str(config)],
                cwd=folder,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        try:
            wait_started(proc, log_path)
            started = time.time()
            log(f"{name}: runner started, stand-in answering 429 for {args.outage:g} s")
            time.sleep(args.outage)
            recovery = time.time()
            pd.set_mode("ok")
            log(f"{name}: stand-in accepting (limit {args.limit or 'none'} per {WINDOW:g} s)")
            deadline = time.monotonic() + args.timeout
            while len(pd.events) < args.events and time.monotonic() < deadline:
                time.sleep(0.5)
        finally:
            stop(proc)
        requests = pd.requests
    if args.keep:
        keep = Path(args.keep) / name
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(log_path, keep / "runner.log")
        calls = [
            {
                "at": round(r["received_at"] - recovery, 4),
                "status": r["status"],
                "key": (r["body"] or {}).get("dedup_key"),
                "rate_limited": bool(r.get("rate_limited")),
            }
            for r in requests
        ]
        (keep / "calls.json").write_text(json.dumps(calls, indent=0) + "\n")
    accepted = sorted(r["received_at"] for r in requests if r["status"] in (200, 202))
    after = [r for r in requests if r["received_at"] >= recovery]
    out: dict[str, Any] = {
        "variant": name,
        "sender": str(tree),
        "events": args.events,
        "outage_s": round(recovery - started, 2),
        "limit_per_60s": args.limit or None,
        "accepted": len(accepted),
        "calls_during_outage": sum(1 for r in requests if r["received_at"] < recovery),
        "calls_after_recovery": len(after),
        "throttled_after_recovery": sum(1 for r in after if r.get("rate_limited")),
        "failed_after_recovery": sum(1 for r in after if r["status"] not in (200, 202)),
    }
    if accepted:
        out["first_accepted_s"] = round(accepted[0] - recovery, 2)
        out["last_accepted_s"] = round(accepted[-1] - recovery, 2)
        out["most_accepted_in_60s"] = most_in_window(accepted)
        out["accepted_within_5s"] = sum(1 for t in accepted if t - recovery <= 5.0)
    log(f"{name}: {json.dumps(out)}")
    return out


def table(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    floor = WINDOW * (math.ceil(args.events / args.limit) - 1) if args.limit else 0.0
    limit = (
        f"a limit of {args.limit} calls per routing key in any 60 s; no sender can finish "
        f"before {floor:g} s after recovery under that limit"
        if args.limit
        else "no rate limit"
    )
    lines = [
        f"{args.events} triggers queued, stand-in answering 429 (no Retry-After) for "
        f"{args.outage:g} s, then accepting with {limit}.",
        "",
        "| sender | accepted | calls during the outage | recovery → first accepted "
        "| accepted ≤ 5 s after recovery | recovery → last accepted "
        "| throttled by the limit after recovery "
        "| other failed calls after recovery | most accepted in any 60 s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r['variant']} | {r['accepted']}/{r['events']} | {r['calls_during_outage']} "
            f"| {r.get('first_accepted_s', '-')} s | {r.get('accepted_within_5s', 0)} "
            f"| {r.get('last_accepted_s', '-')} s "
            f"| {r['throttled_after_recovery']} "
            f"| {r['failed_after_recovery'] - r['throttled_after_recovery']} "
            f"| {r.get('most_accepted_in_60s', '-')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--outage", type=float, default=60.0, help="seconds of 429s")
    parser.add_argument("--limit", type=int, default=120, help="calls per key per 60 s; 0: none")
    parser.add_argument("--old", default="229de1a", help="commit of the old sender")
    parser.add_argument("--variants", default="old,new", help="comma-separated: old,new")
    parser.add_argument("--timeout", type=float, default=900.0, help="s to wait for the drain")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--keep", help="copy each variant's runner log and calls to this folder")
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    if not variants or set(variants) - {"old", "new"}:
        parser.error(f"--variants takes old and/or new, got {args.variants!r}")
    with tempfile.TemporaryDirectory(prefix="pdw-drain-outage-") as tmp:
        work = Path(tmp)
        trees = {"new": ROOT}
        if "old" in variants:
            trees["old"] = export_commit(args.old, work)
        results = []
        for name in variants:
            tree = trees[name]
            log(f"{name}: sender from {sender_file(tree)}")
            results.append(run_variant(name, tree, args, work))
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.strip()
    print(f"- command: `{' '.join([Path(sys.executable).name, *sys.argv])}`")
    print(
        f"- new: {commit} (this checkout), old: {args.old}; {os.cpu_count()} cores, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )
    print(f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print(table(results, args))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
