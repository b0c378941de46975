"""`pd-watchdog` with proposed performance fixes applied as patches, to measure them before
anyone changes the runner: an experiment, not a way to run pd-watchdog.

    WHATIF=headers,record,metrics,dispatch .venv/bin/python bench/whatif.py run CONFIG
    .venv/bin/python bench/run.py --whatif headers,record,metrics,dispatch ...

Each patch keeps behaviour and only removes work (see PATCHES); WHATIF picks which apply.
The `record`, `metrics` and `switch` patches measured in RESULTS.md are in the runner since
600a80d (Store.record without asdict, cached label children, a 0.5 ms switch interval), so
they are no longer here; what remains are the proposals not taken (yet).
"""

from __future__ import annotations

import http.client
import os
import sys


def _fast_parse_headers(fp, _class=http.client.HTTPMessage):
    """http.client.parse_headers without email.parser: the same HTTPMessage (same get/get_all
    answers) built from the raw lines. Folded (obsolete continuation) lines fall back to the
    standard parser."""
    lines = http.client._read_headers(fp)
    message = _class()
    headers = message._headers
    for raw in lines:
        if raw in (b"\r\n", b"\n", b""):
            break
        text = raw.decode("iso-8859-1")
        name, sep, value = text.partition(":")
        if not sep or text[0] in " \t":
            return _standard_parse(lines, _class)
        headers.append((name, value.lstrip(" \t").rstrip("\r\n")))
    return message


def _standard_parse(lines, _class):
    import email.parser

    return email.parser.Parser(_class=_class).parsestr(b"".join(lines).decode("iso-8859-1"))


def patch_headers() -> None:
    http.client.parse_headers = _fast_parse_headers


def patch_dispatch() -> None:
    """_HeapScheduler.run_pending: call the job's function directly; schedule's Job.run
    computes a next run (datetime arithmetic, logging) that run_pending overwrites anyway."""
    import datetime
    import heapq

    import schedule

    from watchdog import scheduler

    def run_pending(self):
        now = self._follow_clock()
        heap, live = self._heap, self._live
        while heap and heap[0][0] <= now:
            when, _, job = heapq.heappop(heap)
            if id(job) not in live or when != job.next_run:
                continue
            planned = job.next_run
            if job.job_func() is schedule.CancelJob:
                self.cancel_job(job)
            job.last_run = now
            if id(job) not in live:
                continue
            period = datetime.timedelta(seconds=job.interval)
            following = planned + period
            missed = 0
            while following <= now:
                following += period
                missed += 1
            if missed:
                self.on_missed(job, missed)
            job.next_run = following
            self._push(job)

    scheduler._HeapScheduler.run_pending = run_pending


def patch_lean_metrics() -> None:
    """Per-check probe duration as count and sum (one bucket) instead of 12 buckets, and no
    *_created series: ~10 samples per check instead of ~23, so a scrape costs half."""
    os.environ["PROMETHEUS_DISABLE_CREATED_SERIES"] = "True"
    import prometheus_client.metrics

    from watchdog import metrics

    prometheus_client.metrics._use_created = False  # read at import time
    metrics.PROBE_BUCKETS = (10.0,)


PATCHES = {
    "leanmetrics": patch_lean_metrics,
    "headers": patch_headers,
    "dispatch": patch_dispatch,
}


def main() -> int:
    chosen = [p for p in os.environ.get("WHATIF", "").split(",") if p]
    for name in chosen:
        PATCHES[name]()
    if chosen:
        print(f"whatif: patched {', '.join(chosen)}", file=sys.stderr, flush=True)
    from watchdog.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
