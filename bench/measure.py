"""What the harness reads and computes: /proc, Prometheus text, request logs, percentiles."""

from __future__ import annotations

import json
import math
import os
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

TICK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- /proc


@dataclass(frozen=True)
class Cpu:
    own: float  # utime + stime, seconds
    children: float  # cutime + cstime (waited-for children: plugins), seconds

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(self.own - other.own, self.children - other.children)


def cpu(pid: int) -> Cpu:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        text = f.read()
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "; field 3 is fields[0]
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return Cpu((utime + stime) / TICK, (cutime + cstime) / TICK)


def memory(pid: int) -> dict[str, int]:
    """VmHWM, VmRSS, Threads from /proc/<pid>/status (memory in kB)."""
    out = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "Threads"):
                out[key] = int(value.split()[0])
    return out


# ------------------------------------------------------------------------- metrics


def scrape(url: str, timeout: float = 5.0) -> dict[tuple[str, tuple], float] | None:
    """Prometheus text as {(sample name, sorted labels): value}; None if nobody answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # loopback only
            text = response.read().decode("utf-8")
    except (urllib.error.URLError, OSError):
        return None
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[str, tuple], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def total(samples: dict, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def delta_total(before: dict | None, after: dict, name: str) -> float:
    return total(after, name) - (total(before, name) if before else 0.0)


def histogram(samples: dict, name: str) -> list[tuple[float, float]]:
    """Cumulative (le, count) pairs of an unlabelled histogram, sorted by le."""
    pairs = []
    for (n, labels), v in samples.items():
        if n == name + "_bucket":
            le = dict(labels)["le"]
            pairs.append((math.inf if le in ("+Inf", "inf") else float(le), v))
    return sorted(pairs)


def histogram_delta(before: dict | None, after: dict, name: str) -> list[tuple[float, float]]:
    a = histogram(after, name)
    if not before:
        return a
    b = dict(histogram(before, name))
    return [(le, v - b.get(le, 0.0)) for le, v in a]


def bucket_quantile(buckets: Sequence[tuple[float, float]], q: float) -> tuple[float, float]:
    """The bucket a quantile falls in, as (lower bound, upper bound) in seconds."""
    if not buckets or buckets[-1][1] <= 0:
        return (math.nan, math.nan)
    rank = q * buckets[-1][1]
    lower = 0.0
    for le, count in buckets:
        if count >= rank:
            return (lower, le)
        lower = le
    return (lower, math.inf)


# ---------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1); nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": percentile(values, 0.50),
        "p99": percentile(values, 0.99),
        "max": max(values) if values else math.nan,
    }


# --------------------------------------------------------------------- request log


@dataclass(frozen=True)
class Req:
    arrival: float
    answer: float
    status: int


def read_requests(path: str, prefix: str) -> dict[str, list[Req]]:
    """The target log's requests under /<prefix>/ by path, each list sorted by arrival."""
    out: dict[str, list[Req]] = defaultdict(list)
    marker = f"/{prefix}/"
    with open(path, encoding="ascii") as f:
        for line in f:
            if not line.startswith(marker):
                continue
            p, a, b, s = line.rstrip("\n").split("\t")
            out[p].append(Req(float(a), float(b), int(s)))
    for reqs in out.values():
        reqs.sort(key=lambda r: r.arrival)
    return out


def read_events(path: str) -> list[dict]:
    """The stand-in's accepted events (JSON lines), without their bodies' details."""
    out = []
    if not os.path.exists(path):
        return out
    with open(path, encoding="utf-8") as f:
        for line in f:
            event = json.loads(line)
            out.append(
                {"action": event["action"], "key": event["key"], "at": event["received_at"]}
            )
    return out


def lag_from_arrivals(
    arrivals: dict[str, list[float]],
    offsets: dict[str, float],
    interval: float,
    start: float,
    end: float,
) -> tuple[list[tuple[float, float]], int, float]:
    """Target-side schedule lag for fixed-rate checks: arrival minus planned start.

    The runner plans check c at t0 + offset_c + k * interval (offset_c is its stable spread,
    t0 the instant it loaded its checks). t0 is estimated as the earliest first arrival minus
    its offset over all checks, so the least-delayed first probe counts as lag 0; lags are
    thus slight underestimates by that probe's own delay (connect + send, ~0.1 ms here).
    Returns ((planned, lag) of the arrivals planned in [start, end), planned slots in the
    window with no arrival, t0).
    """
    firsts = [reqs[0] - offsets[p] for p, reqs in arrivals.items() if reqs]
    if not firsts:
        return [], 0, math.nan
    t0 = min(firsts)
    lags: list[tuple[float, float]] = []
    empty = 0
    for path, times in arrivals.items():
        base = t0 + offsets[path]
        seen = set()
        for a in times:
            k = round((a - base) / interval)
            planned = base + k * interval
            if start <= planned < end:
                lags.append((planned, a - planned))
                seen.add(k)
        first_k = math.ceil((start - base) / interval)
        last_k = math.ceil((end - base) / interval) - 1
        # the last slot may still be in flight when the window closes: give it one interval
        empty += sum(1 for k in range(first_k, last_k) if k not in seen)
    return lags, empty, t0


def gaps(arrivals: Iterable[list[float]], start: float, end: float) -> list[float]:
    """Intervals between consecutive arrivals at each path, both inside [start, end)."""
    out = []
    for times in arrivals:
        inside = [a for a in times if start <= a < end]
        out.extend(b - a for a, b in zip(inside, inside[1:], strict=False))
    return out
