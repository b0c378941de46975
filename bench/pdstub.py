"""The PagerDuty stand-in for the benchmark: tests/fakepd.py's FakePagerDuty as a process.

    python bench/pdstub.py --log events.jsonl [--mode 500]

Prints the base URL on the first line, then serves until stdin closes or SIGTERM. Each
accepted event is appended to --log as a JSON line (with received_at), as fakepd does.
Control, one command per stdin line, each answered with one stdout line `ok <epoch>` giving
the instant it took effect:

    mode ok|500|429|403|hang     switch the outage mode (fakepd's set_mode)
    count                        `ok <epoch> <accepted events> <requests>`
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fakepd import MODES, FakePagerDuty  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="PagerDuty Events API stand-in (loopback)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", required=True)
    parser.add_argument("--mode", choices=MODES, default="ok")
    args = parser.parse_args(argv)
    fake = FakePagerDuty(args.host, args.port, log_path=args.log).start()
    fake.set_mode(args.mode)
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())

    def control() -> None:
        for line in sys.stdin:
            words = line.split()
            if words[:1] == ["mode"] and len(words) == 2 and words[1] in MODES:
                fake.set_mode(words[1])
                print(f"ok {time.time():.6f}", flush=True)
            elif words[:1] == ["count"]:
                n_events = len(fake._events)  # no deepcopy of 10,000 bodies
                n_requests = len(fake._requests)
                print(f"ok {time.time():.6f} {n_events} {n_requests}", flush=True)
            else:
                print(f"error unknown command: {line.strip()!r}", flush=True)
        done.set()

    threading.Thread(target=control, name="control", daemon=True).start()
    print(fake.url, flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
