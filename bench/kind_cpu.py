"""CPU per 1,000 runs of the blocking probe kinds (file, process), in this process.

The network kinds are measured under the scheduler by tcp_load.py and dns_bench.py; these
two run on the worker pool, one run at a time per check, so their cost is simply the CPU of
one run: `python bench/kind_cpu.py [--runs N]`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import psutil  # noqa: E402

from watchdog.probes import file, process  # noqa: E402
from watchdog.probes.base import run_once  # noqa: E402


def cpu_per_thousand(probe, runs: int) -> tuple[float, str]:
    run_once(probe, 5)  # warm: the first process run has no CPU figure
    start = time.process_time()
    for _ in range(runs):
        result = run_once(probe, 5)
    return (time.process_time() - start) / runs * 1000, result.summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    sleeper = subprocess.Popen(["sleep", "300"])  # a process to find (ourselves are left out)
    try:
        measure(args.runs)
    finally:
        sleeper.kill()
        sleeper.wait()


def measure(runs: int) -> None:
    with tempfile.NamedTemporaryFile() as target:
        target.write(b"backup done\n" * 100)
        target.flush()
        kinds = {
            "file (stat, age, size)": file.parse(
                {"file": {"path": target.name, "max_age": "1d", "min_size": 1}}, "/"),
            "file (+ contains, 1.2 KB read)": file.parse(
                {"file": {"path": target.name, "contains": "backup done"}}, "/"),
            "process (by name)": process.parse({"process": {"name": "sleep"}}, "/"),
            "process (cmdline regex, RSS, CPU)": process.parse(
                {"process": {"cmdline": {"regex": "^sleep 300$"}, "max_rss": "1GiB",
                             "max_cpu_percent": 99}}, "/"),
        }
        print(f"{len(psutil.pids())} processes on this host, load "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print("| kind | CPU per 1,000 runs | last summary |\n|---|---|---|")
        for name, probe in kinds.items():
            seconds, summary = cpu_per_thousand(probe, runs)
            print(f"| {name} | {seconds:.2f} s | {summary[:60]} |")


if __name__ == "__main__":
    main()
