"""`pd-watchdog` with proposed performance fixes applied as patches, to measure them before
anyone changes the runner: an experiment, not a way to run pd-watchdog.

    WHATIF=headers,record,metrics,dispatch .venv/bin/python bench/whatif.py run CONFIG
    .venv/bin/python bench/run.py --whatif headers,record,metrics,dispatch ...

Each patch keeps behaviour and only removes work (see PATCHES); WHATIF picks which apply.
"""

from __future__ import annotations

import http.client
import json
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


def patch_record() -> None:
    """Store.record: plain dicts instead of dataclasses.asdict (a recursive deepcopy)."""
    from watchdog import store

    def record(self, name, fingerprint, incident_key, state, result, at, events):
        row = {
            "name": name,
            "fingerprint": fingerprint,
            "incident_key": incident_key,
            "state": json.dumps({"failures": state.failures, "passes": state.passes,
                                 "triggered": state.triggered, "severity": state.severity}),
            "last_result": json.dumps(
                {"ok": result.ok, "summary": result.summary, "severity": result.severity,
                 "details": result.details, "latency": result.latency}, default=str)
            if result is not None else None,
            "last_at": at if result is not None else None,
            "triggered_since": at if state.triggered else None,
        }
        with self._transaction("record check " + repr(name)) as db:
            db.execute(store._UPSERT_CHECK, row)
            return self._append(db, events)

    store.Store.record = record


def patch_metrics() -> None:
    """Metrics.observe_result: each check's label children looked up once, then cached."""
    from watchdog import metrics

    original_forget = metrics.Metrics.forget

    def observe_result(self, check_name, result, state, *, lag):
        cache = self.__dict__.setdefault("_children", {})
        children = cache.get(check_name)
        if children is None:
            children = cache[check_name] = (
                self._check_up.labels(check_name), self._failures.labels(check_name),
                self._triggered.labels(check_name), self._runs.labels(check_name),
                self._duration.labels(check_name),
            )
        up, failures, triggered, runs, duration = children
        up.set(1 if result.ok else 0)
        failures.set(state.failures)
        triggered.set(1 if state.triggered else 0)
        runs.inc()
        duration.observe(max(0.0, result.latency))
        lag = max(0.0, lag)
        self._lag.observe(lag)
        if lag > self._max_lag:
            with self._lock:
                if lag > self._max_lag:
                    self._max_lag = lag
                    self._lag_max.set(lag)

    def forget(self, check_name):
        self.__dict__.setdefault("_children", {}).pop(check_name, None)
        original_forget(self, check_name)

    metrics.Metrics.observe_result = observe_result
    metrics.Metrics.forget = forget


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


def patch_switch() -> None:
    """sys.setswitchinterval(0.5 ms): a thread that only needs the GIL briefly (the scheduler,
    a probe between two system calls) waits 0.5 ms, not 5 ms, behind a CPU-bound one (a
    /metrics scrape rendering 100,000 samples)."""
    sys.setswitchinterval(0.0005)


def patch_lean_metrics() -> None:
    """Per-check probe duration as count and sum (one bucket) instead of 12 buckets, and no
    *_created series: ~10 samples per check instead of ~23, so a scrape costs half."""
    os.environ["PROMETHEUS_DISABLE_CREATED_SERIES"] = "True"
    import prometheus_client.metrics

    from watchdog import metrics

    prometheus_client.metrics._use_created = False  # read at import time
    metrics.PROBE_BUCKETS = (10.0,)


PATCHES = {
    "switch": patch_switch,
    "leanmetrics": patch_lean_metrics,
    "headers": patch_headers,
    "record": patch_record,
    "metrics": patch_metrics,
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
