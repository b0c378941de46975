"""A/B the config loader: an old commit against this tree, same machine, one run.

    .venv/bin/python bench/config_ab.py --old f685e10 [--repeats 5]
    .venv/bin/python bench/config_ab.py --old-tree /tmp/base12 [--repeats 5]

Measures, alternating old and new so that the machine's drift hits both alike:
  * `pd-watchdog validate` of 10,000 checks (bench/gen.py's mix; one file, and a main file
    including 10 files), wall time with Python's start-up;
  * `pd-watchdog run --dry-run` with 5,000 checks: wall time from exec to its "started:"
    line, and the process's peak RSS (VmHWM) at that moment.
Both trees are byte-compiled first, as an install would be. The old code is a
`git worktree` of --old in a temporary folder, run by this venv's Python
from that folder with PYTHONPATH pointing at it (so it comes before this tree's editable
install; its dependencies are a subset of ours); or --old-tree, a checkout made beforehand,
run by its own .venv/bin/python when it has one (its own dependencies, as installed).
Loopback only: the checks point at a closed port, no PagerDuty is contacted (dry-run).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gen  # noqa: E402
import measure  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")


def config(folder: Path, n: int, files: int = 1) -> Path:
    return gen.watchdog_yaml(
        gen.mix(n), base_url="http://127.0.0.1:9", run="ab", folder=folder, interval=30,
        timeout=5, workers=64, pd_url=None, metrics_port=None, count_log=None, files=files,
    )


def env_for(tree: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("STATE_DIRECTORY",
                                                           "PAGERDUTY_ROUTING_KEY")}
    env["PYTHONPATH"] = str(tree)
    return env


def python_for(tree: Path) -> str:
    """The tree's own venv if it has one (--old-tree), else this one's."""
    own = tree / ".venv" / "bin" / "python"
    return str(own) if tree != ROOT and own.exists() else PYTHON


def which_code(tree: Path) -> str:
    done = subprocess.run([python_for(tree), "-c",
                           "import watchdog.config as c; print(c.__file__)"],
                          env=env_for(tree), cwd=tree, capture_output=True, text=True,
                          check=True)
    return done.stdout.strip()


def validate_once(tree: Path, path: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the validate process)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([python_for(tree), "-m", "watchdog", "validate", str(path)],
                          env=env_for(tree), cwd=tree, capture_output=True, text=True, timeout=120)
    took = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"validate failed ({tree}): {done.stderr[-500:]}")
    return took, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def startup_once(tree: Path, path: Path) -> tuple[float, float, int]:
    """(wall seconds from exec to "started:", CPU seconds then, VmHWM kB then)."""
    log = path.parent / "run.log"
    state = path.parent / "state"
    subprocess.run(["rm", "-rf", str(state)], check=True)
    with open(log, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen([python_for(tree), "-m", "watchdog", "run", "--dry-run", str(path)],
                                env=env_for(tree), cwd=tree, stdout=out,
                                stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "started:" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"run did not start ({tree}): {log.read_text()[-500:]}")
            time.sleep(0.005)
        took = time.perf_counter() - start
        used = measure.cpu(proc.pid).own
        peak = measure.memory(proc.pid)["VmHWM"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return took, used, peak


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": values}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    old = parser.add_mutually_exclusive_group(required=True)
    old.add_argument("--old", help="the commit to compare with")
    old.add_argument("--old-tree", type=Path, help="a checkout of it (with its own .venv)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--validate-checks", type=int, default=10_000)
    parser.add_argument("--run-checks", type=int, default=5_000)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="pdw-config-ab-"))
    old_tree = args.old_tree.resolve() if args.old_tree else work / "old"
    if not args.old_tree:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old_tree),
                        args.old], check=True, capture_output=True)
    try:
        trees = {"old": old_tree, "new": ROOT}
        for label, tree in trees.items():
            # as installed: bytecode compiled once (pip does it), not recompiled per start
            # when PYTHONDONTWRITEBYTECODE keeps a checkout without fresh .pyc files
            subprocess.run([python_for(tree), "-m", "compileall", "-q", str(tree / "watchdog"),
                            str(tree / "pagerduty_api")],
                           env={**env_for(tree), "PYTHONDONTWRITEBYTECODE": ""}, check=True)
            print(f"{label}: {which_code(tree)}", flush=True)
        inputs = {
            "validate_one_file": config(work / "v1", args.validate_checks),
            "validate_ten_files": config(work / "v10", args.validate_checks, files=10),
        }
        run_config = config(work / "run", args.run_checks)
        keys = [f"{key}{unit}" for key in [*inputs, "startup"] for unit in ("", "_cpu")]
        raw: dict[str, dict[str, list]] = {k: {"old": [], "new": []}
                                           for k in [*keys, "peak_rss_kb"]}
        for _ in range(args.repeats):
            for label, tree in trees.items():  # alternate: drift hits both alike
                for key, path in inputs.items():
                    wall, used = validate_once(tree, path)
                    raw[key][label].append(wall)
                    raw[f"{key}_cpu"][label].append(used)
                wall, used, peak = startup_once(tree, run_config)
                raw["startup"][label].append(wall)
                raw["startup_cpu"][label].append(used)
                raw["peak_rss_kb"][label].append(peak)
        old_commit = args.old or subprocess.run(
            ["git", "-C", str(old_tree), "rev-parse", "--short", "HEAD"], capture_output=True,
            text=True, check=True).stdout.strip()
        results = {"old_commit": old_commit, "repeats": args.repeats,
                   "validate_checks": args.validate_checks, "run_checks": args.run_checks,
                   **{key: {label: summary(v) for label, v in pair.items()}
                      for key, pair in raw.items()}}
        for key, pair in raw.items():
            old, new = statistics.median(pair["old"]), statistics.median(pair["new"])
            print(f"{key}: old {old:.3f}  new {new:.3f}  ({new / old:.2f}x)", flush=True)
        if args.out:
            args.out.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        if not args.old_tree:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(old_tree)], check=False, capture_output=True)
        subprocess.run(["rm", "-rf", str(work)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
