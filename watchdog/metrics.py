"""Prometheus metrics for the runner (watchdog.httpserve serves them over HTTP).

Why the per-check families are written by hand: everything labelled `check` (check_up,
consecutive_failures, triggered, runs_total, probe_duration_seconds, skipped_total,
missed_total) is 14 samples per check, nearly all of a scrape, and prometheus_client spent
~8 µs of CPU on each (a Sample object per child, escaping and float formatting per line) while
holding the GIL the probes and the scheduler need. CPU per scrape, before -> after (2-core box,
bench-like data, medians): 1,000 checks ~110 ms (~175 ms as OpenMetrics, which is what
Prometheus asked for) -> ~5 ms; 5,000 checks ~580 ms (~1,050 ms as OpenMetrics) -> ~26 ms.
observe_result, run once per probe result, went from ~5 µs (six prometheus_client calls, each
with its own lock) to ~1 µs, and a check's numbers from ~5 KB to ~0.3 KB.

How: a check's numbers are one small list (see _new_record), updated in place under one lock
held for a few stores. Its label value is escaped once, when the check is first seen
(backslash, double quote, newline, as the text format requires). Buckets are counted one by
one and summed when rendering, so they are cumulative and le="+Inf" is runs, i.e. _count, by
construction. A scrape copies the lists under the lock (~0.5 ms at 5,000 checks) and formats
outside it, so one check's buckets, count and sum always come from the same instant. Counts
are ints written as "<n>.0", as prometheus_client does below a million (above it writes e.g.
1.234567e+06: the same float); the duration sum follows floatToGoString.

The global series (schedule lag, events, outbox, info) stay on prometheus_client and
generate_latest, in a private CollectorRegistry; the lag histogram and max are a collector over
numbers kept under the same lock, so observe_result makes no prometheus_client call. /metrics
is generate_latest(registry) then the per-check block, always as text 0.0.4: Prometheus
accepts that whatever its Accept header prefers, and OpenMetrics would need a second
hand-written renderer (other TYPE names for counters, a final # EOF) for the same numbers.

Labels are check names, event actions and outcomes only: never URLs, commands or keys, which
may hold secrets.
"""

from __future__ import annotations

import contextlib
import threading
from bisect import bisect_left
from collections.abc import Iterator
from itertools import accumulate
from typing import Any

import prometheus_client.metrics
from prometheus_client import CollectorRegistry, Counter, Gauge, Info, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from watchdog.model import RESOLVE, TRIGGER, CheckState, ProbeResult

# Per check, so every bucket is multiplied by thousands of checks in each scrape: few, wide
# buckets (measured in bench/: a scrape at 5,000 checks took 1.2 s with 12 buckets).
PROBE_BUCKETS = (0.01, 0.1, 0.5, 2.5, 10)

# The *_created series would double the size of every counter and histogram and tell a
# scraper nothing it needs; this is prometheus_client's documented switch for them (the
# hand-written per-check block never writes them).
prometheus_client.metrics._use_created = False
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
OUTCOMES = ("sent", "retry", "dead_letter")  # watchdog.sender's SENT / RETRY / DEAD_LETTER
REMEDIATION_OUTCOMES = ("fixed", "failed")  # passed again before paging, or not

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def escape_label_value(value: str) -> str:
    """A label value as the text format wants it between double quotes."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _go_float(value: float) -> str:
    """floatToGoString(value), with repr() as the fast path for the usual 0 <= value < 1e6."""
    if 0.0 <= value < 1e6:
        return repr(value)
    return floatToGoString(value)


def _head(name: str, kind: str, help_text: str) -> str:
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"


_UP_HEAD = _head("pd_watchdog_check_up", "gauge",
                 "1 if the check's last run passed, 0 if it failed.")
_FAILURES_HEAD = _head("pd_watchdog_check_consecutive_failures", "gauge",
                       "Failures in a row of the check (0 while it passes).")
_TRIGGERED_HEAD = _head("pd_watchdog_check_triggered", "gauge",
                        "1 while the check has an open incident on PagerDuty.")
_RUNS_HEAD = _head("pd_watchdog_check_runs_total", "counter",
                   "Probe runs of the check that produced a result.")
_DURATION_HEAD = _head("pd_watchdog_probe_duration_seconds", "histogram",
                       "How long the check's probe took.")
_SKIPPED_HEAD = _head("pd_watchdog_check_skipped_total", "counter",
                      "Runs skipped because the previous run of the check was still going.")
_MISSED_HEAD = _head("pd_watchdog_check_missed_total", "counter",
                     "Planned runs that were already past when the scheduler got to them.")
_HELD_HEAD = _head("pd_watchdog_check_held", "gauge",
                   "1 while the check's triggers are held back (maintenance window, silence or "
                   "a failing parent; resolves are never held).")
_FLAPPING_HEAD = _head("pd_watchdog_check_flapping", "gauge",
                       "1 while the check is flapping (one incident held open until it settles).")


# The histogram's lines are cut around the check's label value and the count, so writing
# one is a single f-string (str.format with a whole-histogram template was 1.5x slower).
_BUCKET_LINE = 'pd_watchdog_probe_duration_seconds_bucket{check="'
_LE = [f'",le="{floatToGoString(bound)}"}} ' for bound in PROBE_BUCKETS]
_INF_LE = '",le="+Inf"} '
_COUNT_LINE = 'pd_watchdog_probe_duration_seconds_count{check="'
_SUM_LINE = 'pd_watchdog_probe_duration_seconds_sum{check="'

# A check's record is a list (cheap to update in place and to copy): these are its indexes.
# Buckets are per bucket, not cumulative: observe_result adds 1 to one of them (none when the
# duration is above the last bound, which only +Inf, i.e. runs, counts).
_LABEL, _UP, _FAILURES, _TRIGGERED, _RUNS, _SUM = range(6)
_B0 = 6
_NBUCKETS = len(PROBE_BUCKETS)
_SKIPPED = _B0 + _NBUCKETS  # None until the scheduler's totals are first copied in
_MISSED = _SKIPPED + 1
_HELD = _MISSED + 1
_FLAPPING = _HELD + 1


def _new_record(check_name: str) -> list[Any]:
    return [escape_label_value(check_name), 0, 0, 0, 0, 0.0, *[0] * _NBUCKETS, None, None, 0, 0]


_LAG_LES = [*(floatToGoString(bound) for bound in LAG_BUCKETS), "+Inf"]


class _LagCollector:
    """pd_watchdog_schedule_lag_seconds and _max_seconds, from numbers Metrics keeps under its
    lock (so observe_result needs no prometheus_client call), rendered by generate_latest."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        with m._lock:
            counts = list(m._lag_counts)
            total, largest = m._lag_sum, m._lag_max
        yield HistogramMetricFamily(
            "pd_watchdog_schedule_lag_seconds",
            "Actual start of a probe minus its planned start (all checks).",
            buckets=list(zip(_LAG_LES, accumulate(counts), strict=True)), sum_value=total,
        )
        yield GaugeMetricFamily(
            "pd_watchdog_schedule_lag_max_seconds",
            "Largest schedule lag seen since the process started.", value=largest,
        )

    def describe(self) -> Iterator[Metric]:
        return self.collect()


class Metrics:
    """Every pd_watchdog_* series; safe to call from probe, sender and HTTP threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checks: dict[str, list[Any]] = {}  # check name -> record (see _LABEL...)
        self._lag_counts = [0] * (len(LAG_BUCKETS) + 1)  # per bucket; the last is > 5 s
        self._lag_sum = 0.0
        self._lag_max = 0.0
        self.registry = CollectorRegistry()
        r = self.registry
        r.register(_LagCollector(self))
        self._events = Counter(
            "pd_watchdog_events", "Attempts to deliver events to PagerDuty, by outcome.",
            ["action", "outcome"], registry=r,
        )
        self._pending = Gauge(
            "pd_watchdog_outbox_pending", "Events stored but not yet accepted by PagerDuty.",
            registry=r,
        )
        self._oldest = Gauge(
            "pd_watchdog_outbox_oldest_pending_age_seconds",
            "Age of the oldest event still waiting to be sent (0 when none is).", registry=r,
        )
        self._dead = Gauge(
            "pd_watchdog_outbox_dead_letters",
            "Events PagerDuty refused for good (see `pd-watchdog status`).", registry=r,
        )
        self._store_ok = Gauge(
            "pd_watchdog_state_store_ok",
            "1 while the state file takes every write; 0 while changes are kept in memory "
            "(pages still go out; see `pd-watchdog status`).", registry=r,
        )
        self._store_ok.set(1)
        self._held = Gauge(
            "pd_watchdog_state_unrecorded_changes",
            "State changes kept in memory because the state file could not take them.",
            registry=r,
        )
        self._remediations = Counter(
            "pd_watchdog_remediations", "Remediation runs, by whether the check passed again "
            "before paging (fixed) or not (failed).", ["check", "outcome"], registry=r,
        )
        self._info = Info("pd_watchdog", "The running pd-watchdog.", registry=r)
        self._count = Gauge("pd_watchdog_checks", "Checks configured.", registry=r)
        self._pending_checks = Gauge(
            "pd_watchdog_checks_pending",
            "Checks with no result yet since the start or since their definition changed.",
            registry=r,
        )
        for action in (TRIGGER, RESOLVE):
            for outcome in OUTCOMES:
                self._events.labels(action, outcome)  # present at 0, so rate() works at once
        self._leader = Gauge(
            "pd_watchdog_leader", "1 while this member leads its group (state: postgresql), "
            "0 while it waits for the group's lock.", ["group"], registry=r,
        )

    def observe_result(
        self, check_name: str, result: ProbeResult, state: CheckState, *, lag: float,
        held: bool = False,
    ) -> None:
        """Record one probe result and the state it left the check in (a hot path: everything
        that can be worked out before taking the lock is)."""
        latency = result.latency
        latency = latency if latency > 0.0 else 0.0  # and NaN, as max(0.0, nan) did
        lag = lag if lag > 0.0 else 0.0  # a clock step can make it negative; that is not "early"
        bucket = bisect_left(PROBE_BUCKETS, latency)  # the first bound >= latency, as le means
        lag_bucket = bisect_left(LAG_BUCKETS, lag)
        up = 1 if result.ok else 0
        failures = int(state.failures)
        triggered = 1 if state.triggered else 0
        held_now = 1 if held else 0
        flapping = 1 if state.flapping else 0
        with self._lock:
            record = self._checks.get(check_name)
            if record is None:
                record = self._checks[check_name] = _new_record(check_name)
            record[_UP] = up
            record[_FAILURES] = failures
            record[_TRIGGERED] = triggered
            record[_HELD] = held_now
            record[_FLAPPING] = flapping
            record[_RUNS] += 1
            record[_SUM] += latency
            if bucket < _NBUCKETS:
                record[_B0 + bucket] += 1
            self._lag_counts[lag_bucket] += 1
            self._lag_sum += lag
            if lag > self._lag_max:
                self._lag_max = lag

    def set_skipped(self, check_name: str, skipped: int, missed: int) -> None:
        """Copy the scheduler's totals for a check (CheckStats.skipped / .missed).

        Totals, not deltas: they cannot drift, and a check removed and re-added simply shows a
        counter reset."""
        skipped, missed = int(skipped), int(missed)
        with self._lock:
            record = self._checks.get(check_name)
            if record is None:
                record = self._checks[check_name] = _new_record(check_name)
            record[_SKIPPED] = skipped
            record[_MISSED] = missed

    def event_outcome(self, action: str, outcome: str) -> None:
        """Count one delivery attempt (Sender's on_result)."""
        self._events.labels(action, outcome).inc()

    def remediation(self, check_name: str, outcome: str) -> None:
        """Count one remediation run once the check said whether it helped (an outcome of
        REMEDIATION_OUTCOMES)."""
        self._remediations.labels(check_name, outcome).inc()

    def set_outbox(self, stats: dict[str, Any]) -> None:
        """Copy Store.outbox_stats()."""
        self._pending.set(stats.get("pending") or 0)
        self._oldest.set(stats.get("oldest_pending_age") or 0.0)
        self._dead.set(stats.get("dead_letters") or 0)

    def set_store(self, ok: bool, held: int) -> None:
        """Whether the state file takes writes, and how many changes wait in memory."""
        self._store_ok.set(1 if ok else 0)
        self._held.set(held)

    def set_pending(self, count: int) -> None:
        """How many checks have not run yet (since the start, or since they changed)."""
        self._pending_checks.set(count)

    def set_leader(self, group: str, leading: bool) -> None:
        """pd_watchdog_leader{group}: whether this member leads (watchdog.leadership)."""
        self._leader.labels(group).set(1 if leading else 0)

    def forget(self, check_name: str) -> None:
        """Drop a removed check's series, so dashboards don't show it frozen forever."""
        with self._lock:
            self._checks.pop(check_name, None)
        for outcome in REMEDIATION_OUTCOMES:
            with contextlib.suppress(KeyError):
                self._remediations.remove(check_name, outcome)

    def set_info(self, version: str, checks: int, dry_run: bool) -> None:
        """pd_watchdog_info{version, dry_run} 1 and pd_watchdog_checks."""
        self._info.info({"version": version, "dry_run": "true" if dry_run else "false"})
        self._count.set(checks)

    def render(self) -> bytes:
        """The whole /metrics page: the global registry, then the per-check block."""
        return generate_latest(self.registry) + self.render_checks()

    def render_checks(self) -> bytes:
        """The per-check families in the text format 0.0.4 (see the module docstring).

        A family's HELP and TYPE are written even with no check in it, as prometheus_client
        does. A check shows in the probe families once it has a result, and in skipped/missed
        once the scheduler's totals were copied in."""
        with self._lock:
            rows = [record.copy() for record in self._checks.values()]
        ran = [row for row in rows if row[_RUNS]]
        counted = [row for row in rows if row[_SKIPPED] is not None]
        out = [
            _UP_HEAD,
            *[f'pd_watchdog_check_up{{check="{r[_LABEL]}"}} {r[_UP]}.0\n' for r in ran],
            _FAILURES_HEAD,
            *[f'pd_watchdog_check_consecutive_failures{{check="{r[_LABEL]}"}} {r[_FAILURES]}.0\n'
              for r in ran],
            _TRIGGERED_HEAD,
            *[f'pd_watchdog_check_triggered{{check="{r[_LABEL]}"}} {r[_TRIGGERED]}.0\n'
              for r in ran],
            _RUNS_HEAD,
            *[f'pd_watchdog_check_runs_total{{check="{r[_LABEL]}"}} {r[_RUNS]}.0\n' for r in ran],
            _HELD_HEAD,
            *[f'pd_watchdog_check_held{{check="{r[_LABEL]}"}} {r[_HELD]}.0\n' for r in ran],
            _FLAPPING_HEAD,
            *[f'pd_watchdog_check_flapping{{check="{r[_LABEL]}"}} {r[_FLAPPING]}.0\n'
              for r in ran],
            _DURATION_HEAD,
        ]
        add = out.append
        for r in ran:
            label = r[_LABEL]
            for le, count in zip(_LE, accumulate(r[_B0:_SKIPPED]), strict=True):
                add(f"{_BUCKET_LINE}{label}{le}{count}.0\n")
            add(f'{_BUCKET_LINE}{label}{_INF_LE}{r[_RUNS]}.0\n'
                f'{_COUNT_LINE}{label}"}} {r[_RUNS]}.0\n'
                f'{_SUM_LINE}{label}"}} {_go_float(r[_SUM])}\n')
        out += [
            _SKIPPED_HEAD,
            *[f'pd_watchdog_check_skipped_total{{check="{r[_LABEL]}"}} {r[_SKIPPED]}.0\n'
              for r in counted],
            _MISSED_HEAD,
            *[f'pd_watchdog_check_missed_total{{check="{r[_LABEL]}"}} {r[_MISSED]}.0\n'
              for r in counted],
        ]
        text = "".join(out)
        # A check name can hold a lone surrogate (YAML "\ud800" passes config.py): a "?"
        # beats failing every scrape, which is what prometheus_client's encode() did.
        return text.encode("utf-8", "replace")
