"""Failover time of a redundant pair (issue 16): kill -9 the leader, time the new leader's
first probe.

    .venv/bin/python bench/failover.py                      # 20 takeovers, failover_after 3s
    .venv/bin/python bench/failover.py --takeovers 5 --interval 0.5

Two real `pd-watchdog run` members of one group (tests/hapair.py), a real PostgreSQL
(tests/pgserver.py: initdb in a temp dir, 127.0.0.1), the PagerDuty stand-in and one HTTP
target that notes the arrival (monotonic) of every probe and whose it is (the URL carries
${MEMBER}). Each round: wait until one member leads and the other waits, SIGKILL the
leader (os.kill, for real), and measure from the kill to the new leader's first probe
reaching the target (a probe of the killed one may still be in flight), and to its "took
the lock" log line (polled every 20 ms); then start the killed member again (it waits) and
let the next round kill whichever leads. Prints p50/p99/min/max as JSON. Everything is on
127.0.0.1 and stopped at the end, also on Ctrl-C or an error.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fakepd import FakePagerDuty  # noqa: E402
from hapair import TOOK, Pair, config_text  # noqa: E402
from pgserver import PgServer  # noqa: E402
from procs import wait_for  # noqa: E402


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Arrivals:
    """A loopback target answering 200 that keeps the monotonic arrival of every request."""

    def __init__(self) -> None:
        self.times: list[tuple[float, str]] = []  # (arrival, the member whose probe it is)
        arrivals = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                arrivals.times.append((time.monotonic(), self.path.rpartition("m=")[2]))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/health?m=${{MEMBER}}"

    def first_after(self, moment: float, member: str) -> float | None:
        """The first probe of `member` after `moment` (a probe of the killed leader may
        still be in flight at the kill)."""
        return next((t for t, m in list(self.times) if t > moment and m == member), None)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def one_takeover(pair: Pair, target: Arrivals) -> dict[str, float]:
    leader = pair.leader(timeout=60)
    survivor = pair.other(leader)
    wait_for(lambda: "waiting for the lock" in survivor.run_log(), 60,
             what="the other member to wait")
    # The kill at a random moment of the waiting member's poll, as a crash comes (right
    # after its first "waiting" line it would always fall just after a try: one full poll).
    time.sleep(random.uniform(0.5, 1.5))
    terms = survivor.terms()
    killed_at = time.monotonic()
    os.kill(leader.proc.proc.pid, signal.SIGKILL)
    leader.proc.proc.wait(10)
    wait_for(lambda: survivor.terms() > terms, 60, what="the takeover")
    took_at = time.monotonic()  # polled: an upper bound, within 20 ms
    probe = wait_for(lambda: target.first_after(killed_at, survivor.name), 60,
                     what="the first probe")
    leader.start()  # back as the waiting member
    return {"to_first_probe": probe - killed_at, "to_lock_seen": took_at - killed_at}


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(values), 3), "p99": round(percentile(values, 99), 3),
            "min": round(min(values), 3), "max": round(max(values), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--takeovers", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.1, help="check interval, seconds")
    parser.add_argument("--failover-after", default="3s")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="pdw-failover-"))
    server = PgServer()
    target = Arrivals()
    pair = None
    try:
        server.start()
        dsn = server.dsn(server.create_database())
        with FakePagerDuty() as pd:
            text = config_text({"web": target.url}, interval=f"{args.interval}s",
                               failover_after=args.failover_after)
            pair = Pair(work, text, dsn, (pd.url, pd.url))
            pair.a.start()
            wait_for(lambda: pair.a.leading(), 60, what="a to lead")
            pair.b.start()
            rounds = []
            for n in range(args.takeovers):
                rounds.append(one_takeover(pair, target))
                log(f"takeover {n + 1}: first probe after {rounds[-1]['to_first_probe']:.3f}s")
            logs = [member.proc.log() for member in pair.members]
    finally:
        if pair is not None:
            pair.close()
        target.close()
        server.destroy()
    assert sum(text.count(TOOK) for text in logs) == args.takeovers + 1
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    result = {
        "commit": commit, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load": os.getloadavg(), "takeovers": args.takeovers, "interval": args.interval,
        "failover_after": args.failover_after,
        "kill_to_first_probe": summary([r["to_first_probe"] for r in rounds]),
        "kill_to_lock_taken": summary([r["to_lock_seen"] for r in rounds]),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
