"""Turns the harness's measurements into console lines and bench/RESULTS.md."""

from __future__ import annotations

import math
from pathlib import Path

KEEP_MARKER = "<!-- hand-written below this line: kept when run.py rewrites the file -->"


def ms(seconds: float | None, digits: int = 1) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "n/a"
    return f"{seconds * 1000:.{digits}f} ms"


def secs(seconds: float | None, digits: int = 2) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "n/a"
    return f"{seconds:.{digits}f} s"


def mb(kb: float) -> str:
    return f"{kb / 1024:.1f} MB"


def bucket(pair) -> str:
    lo, hi = pair
    if math.isnan(hi):
        return "n/a"
    return f"≤ {ms(hi, 0)}" if lo == 0 else f"{ms(lo, 0)}–{ms(hi, 0)}"


def lag_line(s: dict) -> str:
    return f"{ms(s['p50'])} / {ms(s['p99'])} / {ms(s['max'])}"


def print_size(r: dict) -> None:
    m = r.get("metrics")
    print(
        f"    {r['run']}: {r['probes']} probes ({r['expected_probes']:.0f} planned), "
        f"lag (target side) p50/p99/max {lag_line(r['target_lag'])}, empty slots "
        f"{r['target_empty_slots']}, CPU {r['cpu_s']:.2f}s = {r['cpu_per_1000']:.3f} s/1000, "
        f"HWM {mb(r['hwm_kb'])}, threads {r['threads']}",
        flush=True,
    )
    if m:
        print(
            f"    metrics: runs {m['runs']:.0f}, lag p50 {bucket(m['lag_p50'])} p99 "
            f"{bucket(m['lag_p99'])} max(since start) {ms(m['lag_max_since_start'])}, "
            f"missed {m['missed']:.0f}, skipped {m['skipped']:.0f}",
            flush=True,
        )
    d = r.get("detection")
    if d:
        for action in ("trigger", "resolve"):
            p = d[action]
            print(
                f"    {action}: n={p['total']['n']}/{d['sample']} total p50/p99 "
                f"{secs(p['total']['p50'])}/{secs(p['total']['p99'])}, overhead p50/p99/max "
                f"{lag_line(p['overhead'])}",
                flush=True,
            )


def print_monit(r: dict) -> None:
    print(
        f"    {r['run']}: {r['probes']} probes ({r['expected_probes']:.0f} at the set cycle), "
        f"{r['paths_probed']}/{r['http']} checks probed, effective interval "
        f"{secs(r['effective_interval'])}, "
        f"CPU {r['cpu_s']:.2f}s = {r['cpu_per_1000']:.3f} s/1000",
        flush=True,
    )


def _find(results: dict, n: int) -> dict | None:
    return next((r for r in results.get("sizes", []) if r["n"] == n), None)


def _yes(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**yes**" if ok else "**NO**")


def _lag_p99(r: dict) -> tuple[float, str]:
    """The p99 judged: the runner's own histogram when it has one, else the target side."""
    m = r.get("metrics")
    target = r["target_lag"]["p99"]
    if m and m["lag_count"]:
        hi = m["lag_p99"][1]
        return hi, (f"runner histogram p99 {bucket(m['lag_p99'])} (max since start "
                    f"{ms(m['lag_max_since_start'])}); target side p99 {ms(target)}, "
                    f"max {ms(r['target_lag']['max'])}")
    return target, (f"target side p99 {ms(target)}, max {ms(r['target_lag']['max'])} "
                    "(runner metrics not available)")


def _misses(r: dict) -> tuple[int, str]:
    m = r.get("metrics")
    empty = r["target_empty_slots"]
    if m:
        missed, skipped = int(m["missed"]), int(m["skipped"])
        return missed + skipped + empty, (
            f"missed {missed}, skipped {skipped} (runner); {empty} empty slots (target side)"
        )
    return empty, f"{empty} planned slots with no probe (target side)"


def targets_table(results: dict) -> list[str]:
    rows = ["| target | measured | met? |", "| --- | --- | --- |"]
    for n, label in ((1000, "1,000 checks at 10 s, 5 % of HTTP targets hanging to their "
                            "timeout: schedule lag p99 < 250 ms"),
                     (5000, "5,000 checks at 30 s sustained: schedule lag p99 < 250 ms")):
        r = _find(results, n)
        if r is None:
            rows.append(f"| {label} | not run | n/a |")
            rows.append(f"| … and zero missed runs ({n:,} checks) | not run | n/a |")
            continue
        p99, text = _lag_p99(r)
        rows.append(f"| {label} | {text}; every {r['interval']:g} s | {_yes(p99 < 0.25)} |")
        misses, text = _misses(r)
        rows.append(f"| … and zero missed runs ({n:,} checks) | {text}; {r['probes']:,} probes "
                    f"of {r['expected_probes']:,.0f} planned | {_yes(misses == 0)} |")
    overheads = []
    for r in results.get("sizes", []):
        d = r.get("detection")
        if d:
            for action in ("trigger", "resolve"):
                o = d[action]["overhead"]
                if o["n"]:
                    overheads.append((r["n"], action, o["p99"], o["n"], o["max"]))
    if overheads:
        worst = max(p for _, _, p, _, _ in overheads)
        text = "; ".join(f"{n:,} {a} p99 {ms(p)} (n={k}, max {ms(mx)})"
                         for n, a, p, k, mx in overheads)
        rows.append(f"| runner overhead in detection-to-page p99 < 100 ms | {text} | "
                    f"{_yes(worst < 0.1)} |")
    else:
        rows.append("| runner overhead in detection-to-page p99 < 100 ms | not measured | n/a |")
    v = results.get("validate")
    if v:
        worst = max(v["one_file"]["median"], v["ten_files"]["median"])
        rows.append(f"| `validate` of {v['n']:,} checks < 2 s | one file median "
                    f"{secs(v['one_file']['median'])} (max {secs(v['one_file']['max'])}); "
                    f"11 files median {secs(v['ten_files']['median'])} | {_yes(worst < 2.0)} |")
    r = _find(results, 5000)
    if r:
        rows.append(f"| RSS < 150 MB at 5,000 checks | peak (VmHWM) {mb(r['hwm_kb'])}, "
                    f"{r['hwm_kb'] / r['n']:.1f} kB per check | {_yes(r['hwm_kb'] < 150 * 1024)} |")
    d = results.get("drain")
    if d and d.get("rate_from_back"):
        rows.append(
            f"| outbox drain ≥ 300 events/s to loopback | {d['rate_from_back']:.0f} events/s "
            f"from the stand-in's return to pending = 0 ({d['events']:,} events; first "
            f"accepted after {secs(d['first_after_back_s'])}); {d['rate_steady']:.0f}/s "
            f"first to last | {_yes(d['rate_from_back'] >= 300)} |")
    a, m = results.get("ab_watchdog"), results.get("ab_monit")
    if a and m:
        ratio = a["cpu_per_1000"] / m["cpu_per_1000"] if m["cpu_per_1000"] else math.nan
        rows.append(
            f"| CPU per 1,000 HTTP probes within 3x Monit's | pd-watchdog "
            f"{a['cpu_per_1000']:.3f} s, Monit {m['cpu_per_1000']:.3f} s ({a['http']:,} "
            f"healthy HTTP checks each, every {a['interval']:g} s): {ratio:.2f}x | "
            f"{_yes(ratio <= 3.0)} |")
    return rows


def _scrapes(r: dict) -> str:
    if not r.get("scrapes"):
        return "none"
    return (f"{r['scrapes']} × every {r['scrape_every']:g} s: {ms(r['scrape_mean_s'], 0)} / "
            f"{ms(r['scrape_max_s'], 0)}, {r['scrape_bytes'] / 2**20:.1f} MB")


def sizes_tables(results: dict) -> list[str]:
    out = []
    sizes = results.get("sizes", [])
    if not sizes:
        return out
    out += [
        "### Schedule (the window excludes one interval of warm-up)",
        "",
        "| checks | every | workers | probes run / planned | lag p50 / p99 / max, target side "
        "| … leaving out probes planned during a /metrics scrape (+1 s) "
        "| lag p50 / p99 (runner histogram) | lag max since start (runner) "
        "| missed / skipped (runner) | empty slots (target side) | interval deviation "
        "p50 / p99 / max | /metrics scrapes: mean / max time, size |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in sizes:
        m = r.get("metrics")
        quiet = lag_line(r["target_lag_outside_scrapes"]) if "target_lag_outside_scrapes" in r \
            else "n/a"
        hist = f"{bucket(m['lag_p50'])} / {bucket(m['lag_p99'])}" if m else "n/a"
        mx = ms(m["lag_max_since_start"]) if m else "n/a"
        miss = f"{m['missed']:.0f} / {m['skipped']:.0f}" if m else "n/a"
        out.append(
            f"| {r['n']:,} ({r['http']} http, {r['command']} cmd; {r['hang']} hang, {r['slow']} "
            f"slow) | {r['interval']:g} s | {r['workers']} | {r['probes']:,} / "
            f"{r['expected_probes']:,.0f} | {lag_line(r['target_lag'])} | {quiet} | {hist} | "
            f"{mx} | {miss} "
            f"| {r['target_empty_slots']} | {lag_line(r['gap_dev'])} | {_scrapes(r)} |"
        )
    out += [
        "",
        "### Resources (pd-watchdog process only; plugins and targets separately)",
        "",
        "| checks | window | CPU (utime+stime) | CPU / 1,000 probes | core used | plugins' CPU "
        "(cutime+cstime) | peak RSS (VmHWM) | RSS / check | threads | targets' CPU | start-up "
        "| stop |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in sizes:
        out.append(
            f"| {r['n']:,} | {r['window']:.0f} s | {r['cpu_s']:.2f} s | "
            f"{r['cpu_per_1000']:.3f} s | {100 * r['cpu_util']:.1f} % | "
            f"{r['children_cpu_s']:.2f} s | {mb(r['hwm_kb'])} | {r['hwm_kb'] / r['n']:.1f} kB | "
            f"{r['threads']} | {r['targets_cpu_s']:.2f} s | {secs(r['startup_s'])} | "
            f"{secs(r['stop_s'], 1)} |"
        )
    if len(sizes) >= 2:
        a, b = sizes[0], sizes[-1]
        if b["n"] != a["n"]:
            marginal = (b["hwm_kb"] - a["hwm_kb"]) / (b["n"] - a["n"])
            out += ["", f"Marginal RSS per check ({a['n']:,} → {b['n']:,} checks): "
                        f"{marginal:.1f} kB."]
    det = [r for r in sizes if r.get("detection")]
    if det:
        out += [
            "",
            "### Detection-to-page (fail_after 3, recover_after 2; a sample of fast targets "
            "flipped down, then up)",
            "",
            "total = flip → event at the stand-in; wait = flip → first probe that saw it "
            "(0..interval by design); drift = schedule drift over the probes that counted "
            "(beyond (fail_after-1) intervals); overhead = event at the stand-in − the moment "
            "the target answered the probe that crossed fail_after (recover_after).",
            "",
            "| checks | event | paged / sample | total p50 / p99 | wait p50 / p99 | drift p50 / "
            "p99 | runner overhead p50 / p99 / max |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in det:
            d = r["detection"]
            for action in ("trigger", "resolve"):
                p = d[action]
                out.append(
                    f"| {r['n']:,} | {action} | {p['total']['n']} / {d['sample']} | "
                    f"{secs(p['total']['p50'])} / {secs(p['total']['p99'])} | "
                    f"{secs(p['wait']['p50'])} / {secs(p['wait']['p99'])} | "
                    f"{ms(p['drift']['p50'])} / {ms(p['drift']['p99'])} | "
                    f"{lag_line(p['overhead'])} |"
                )
    return out


def monit_table(results: dict) -> list[str]:
    pairs = []
    monit = {r["n"]: r for r in results.get("monit", [])}
    for r in results.get("sizes", []):
        if r["n"] in monit:
            pairs.append((f"{r['n']:,} mixed", r, monit[r["n"]]))
    if results.get("ab_watchdog") and results.get("ab_monit"):
        a = results["ab_watchdog"]
        pairs.append((f"{a['n']:,} healthy HTTP (A/B)", a, results["ab_monit"]))
    if not pairs:
        return []
    out = [
        "### Side by side with Monit (same HTTP targets, same interval / `set daemon`)",
        "",
        "Effective interval = HTTP checks × window ÷ HTTP probes in the window (how often each "
        "target really got probed). Interval deviation = |gap between two probes of one "
        "target − interval|, from the targets' arrival log (n/a: no target was probed twice in "
        "the window). pd-watchdog's probe count and CPU include its command checks in the mixed "
        "rows; Monit runs only the HTTP checks, one after another, so a hung target holds its "
        "whole cycle for the timeout.",
        "",
        "| checks | tool | HTTP checks | probes run / planned | checks probed in window | "
        "effective interval per check | interval deviation p50 / p99 / max | late gaps "
        "(> 1.5 × interval) | CPU | CPU / 1,000 probes | peak RSS |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, w, m in pairs:
        out.append(
            f"| {label} | pd-watchdog | {w['http']:,} | {w['probes']:,} / "
            f"{w['expected_probes']:,.0f} | {w['paths_probed']:,} / {w['http']:,} | "
            f"{secs(w['effective_interval'])} | "
            f"{lag_line(w['gap_dev'])} | {w['gaps_late']} | {w['cpu_s']:.2f} s | "
            f"{w['cpu_per_1000']:.3f} s | {mb(w['hwm_kb'])} |"
        )
        out.append(
            f"| {label} | Monit | {m['http']:,} | {m['probes']:,} / {m['expected_probes']:,.0f} "
            f"| {m['paths_probed']:,} / {m['http']:,} | {secs(m['effective_interval'])} | "
            f"{lag_line(m['gap_dev'])} | {m['gaps_late']} | {m['cpu_s']:.2f} s | "
            f"{m['cpu_per_1000']:.3f} s | {mb(m['hwm_kb'])} |"
        )
    return out


def other_tables(results: dict) -> list[str]:
    out = []
    v = results.get("validate")
    if v:
        out += [
            f"### `pd-watchdog validate` of {v['n']:,} checks (wall time, 3 runs, includes "
            "Python start-up)",
            "",
            "| layout | median | max | said |",
            "| --- | --- | --- | --- |",
            f"| one file | {secs(v['one_file']['median'])} | {secs(v['one_file']['max'])} | "
            f"{v['one_file']['said']} |",
            f"| main file + 10 included files | {secs(v['ten_files']['median'])} | "
            f"{secs(v['ten_files']['max'])} | {v['ten_files']['said']} |",
            "",
        ]
    d = results.get("drain")
    if d and d.get("rate_from_back") is not None:
        out += [
            f"### Outbox drain ({d['events']:,} events queued, stand-in answering 500 for "
            f"{d['outage_s']:g} s after the runner's first attempts)",
            "",
            "| accepted | first accepted after return | pending = 0 after return | rate from "
            "return | rate first → last | runner CPU / 1,000 events |",
            "| --- | --- | --- | --- | --- | --- |",
            f"| {d['accepted']:,} | {secs(d['first_after_back_s'])} | "
            f"{secs(d['pending_zero_after_back_s'])} | {d['rate_from_back']:.0f} /s | "
            f"{d['rate_steady']:.0f} /s | {d['cpu_per_1000_events']:.3f} s |",
            "",
        ]
    return out


def markdown(results: dict, out_path: Path) -> str:
    mach = results["machine"]
    kept = ""
    if out_path.exists():
        old = out_path.read_text()
        if KEEP_MARKER in old:
            kept = old.split(KEEP_MARKER, 1)[1]
    lines = [
        "# pd-watchdog benchmark results",
        "",
        "Generated by `bench/run.py` (see [README.md](README.md) for what each number means).",
        "",
        f"- command: `{results['command']}`",
        f"- date: {mach['date']}; run took {results['elapsed_s'] / 60:.1f} min",
        f"- machine: {mach['cores']} cores ({mach['cpu']}), {mach['memory_gb']} GB, Linux "
        f"{mach['kernel']}",
        f"- Python {mach['python']}; pd-watchdog {mach['pd_watchdog']} at {mach['commit']}; "
        f"{results.get('monit_version') or 'Monit not run'}",
        f"- the runner's /metrics is fetched every {results['args']['scrape_every']:g} s during "
        "each window, as a Prometheus server would (its cost is part of what is measured)",
        f"- check timeout {results['args']['timeout']:g} s; HTTP mix: "
        f"{results['args']['hang_pct']:g} % hang past the timeout, "
        f"{results['args']['slow_pct']:g} % answer in 1-3 s, 2 % fail 10 % of the time, the "
        "rest in 0-5 ms; every 5th check is a command (a sh plugin with Nagios output)",
        "",
        "## Targets",
        "",
        *targets_table(results),
        "",
        "## Details",
        "",
        *sizes_tables(results),
        "",
        *monit_table(results),
        "",
        *other_tables(results),
        KEEP_MARKER,
    ]
    return "\n".join(lines) + (kept if kept else "\n")
