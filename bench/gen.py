"""Benchmark configs: the check mix, pd-watchdog YAML, Monit's control file, the plugin.

The mix (deterministic for a given size): every 5th check is a command (a small sh plugin
with Nagios output), the rest HTTP against bench/targets.py. Of the HTTP checks, `hang_pct`
% never answer (held past the check's timeout), `slow_pct` % answer after 1-3 s, 2 % fail
10 % of the time, the rest answer at once or within a few ms. A sample of the fast,
never-failing HTTP checks is flipped down and up to measure detection-to-page latency.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

ROUTING_KEY = "0123456789abcdef0123456789abcdef"  # fakepd's TEST_KEY: never a real key
SOURCE = "bench"

PLUGIN = """#!/bin/sh
# A tiny Nagios-style plugin: counts its runs, prints status and perfdata, exits 0 (OK).
printf '%s\\n' "$1" >> "$BENCH_LOG"
echo "OK - bench plugin $1 | time=0.001s;1;2;0 items=42;100;200;0"
exit 0
"""


@dataclass
class Spec:
    """One check of the mix."""

    index: int
    name: str
    kind: str  # http | command
    role: str = "fast"  # fast | slow | hang | flaky | command
    latency_ms: int = 0
    permille: int = 0

    def path(self, run: str) -> str:
        suffix = "/hang" if self.role == "hang" else ""
        return f"/{run}/{self.index}/{self.latency_ms}/{self.permille}{suffix}"


@dataclass
class Mix:
    checks: list[Spec]
    sample: list[Spec] = field(default_factory=list)  # flipped down/up for detection

    @property
    def http(self) -> list[Spec]:
        return [c for c in self.checks if c.kind == "http"]

    def count(self, role: str) -> int:
        return sum(1 for c in self.checks if c.role == role)


def mix(
    n: int,
    *,
    hang_pct: float = 5.0,
    slow_pct: float = 5.0,
    flaky_pct: float = 2.0,
    command_every: int = 5,
    sample: int = 0,
    http_only: bool = False,
    seed: int = 7,
) -> Mix:
    rng = random.Random(seed * 1_000_003 + n)
    checks: list[Spec] = []
    for i in range(n):
        if not http_only and command_every and i % command_every == command_every - 1:
            checks.append(Spec(i, f"c{i:05d}-cmd", "command", "command"))
        else:
            checks.append(Spec(i, f"c{i:05d}-http", "http", "fast", rng.randint(0, 5)))
    http = [c for c in checks if c.kind == "http"]
    order = list(http)
    rng.shuffle(order)
    n_hang = round(len(http) * hang_pct / 100)
    n_slow = round(len(http) * slow_pct / 100)
    n_flaky = round(len(http) * flaky_pct / 100)
    for c in order[:n_hang]:
        c.role, c.latency_ms = "hang", 0
    for c in order[n_hang : n_hang + n_slow]:
        c.role, c.latency_ms = "slow", rng.randint(1000, 3000)
    for c in order[n_hang + n_slow : n_hang + n_slow + n_flaky]:
        c.role, c.permille = "flaky", 100
    fast = [c for c in order[n_hang + n_slow + n_flaky :]]
    chosen = sorted(fast[: min(sample, len(fast))], key=lambda c: c.index)
    return Mix(checks, chosen)


def _q(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid double-quoted YAML scalar


def watchdog_yaml(
    mix_: Mix,
    *,
    base_url: str,
    run: str,
    folder: Path,
    interval: float,
    timeout: float,
    workers: int,
    pd_url: str | None,
    metrics_port: int | None,
    count_log: Path | None,
    fail_after: int = 3,
    recover_after: int = 2,
    files: int = 1,
) -> Path:
    """Write folder/watchdog.yaml (and folder/checks/*.yaml when files > 1); return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    plugin = folder / "plugins" / "check_bench.sh"
    plugin.parent.mkdir(exist_ok=True)
    plugin.write_text(PLUGIN)
    plugin.chmod(0o755)
    head = []
    if pd_url:
        head += [
            "pagerduty:",
            f"  routing_key: {ROUTING_KEY}",
            f"  url: {_q(pd_url)}",
            f"  source: {SOURCE}",
        ]
    head += [
        "state_dir: ./state",
        f"workers: {workers}",
    ]
    if metrics_port is not None:
        head.append(f'metrics: {{listen: "127.0.0.1:{metrics_port}"}}')
    head += [
        "defaults:",
        f"  interval: {interval:g}s",
        f"  timeout: {timeout:g}s",
        f"  fail_after: {fail_after}",
        f"  recover_after: {recover_after}",
    ]
    log = str(count_log) if count_log else "/dev/null"
    lines = []
    for c in mix_.checks:
        if c.kind == "http":
            lines.append(f"  - name: {c.name}\n    http: {{url: {_q(base_url + c.path(run))}}}")
        else:
            lines.append(
                f"  - name: {c.name}\n"
                f"    command: [./plugins/check_bench.sh, {c.name}]\n"
                f"    env: {{BENCH_LOG: {_q(log)}}}"
            )
    path = folder / "watchdog.yaml"
    if files <= 1:
        path.write_text("\n".join(head + ["checks:"] + lines) + "\n")
        path.chmod(0o600)  # it holds a (test) routing key
        return path
    (folder / "checks").mkdir(exist_ok=True)
    per = -(-len(lines) // files)
    for f in range(files):
        chunk = lines[f * per : (f + 1) * per]
        # included files keep their own folder as base: the plugin path is ../plugins there
        text = "\n".join(["checks:"] + chunk).replace("./plugins/", "../plugins/")
        (folder / "checks" / f"part-{f:03d}.yaml").write_text(text + "\n")
    path.write_text("\n".join(head + ["include:", "  - checks/*.yaml"]) + "\n")
    path.chmod(0o600)
    return path


def monitrc(
    specs: list[Spec], *, port: int, run: str, folder: Path, interval: float, timeout: float
) -> Path:
    """Monit's control file for the same HTTP targets: one `check host` per check."""
    folder.mkdir(parents=True, exist_ok=True)
    out = [
        f"set daemon {max(1, round(interval))}",
        f"set logfile {folder / 'monit.log'}",
        f"set pidfile {folder / 'monit.pid'}",
        f"set idfile {folder / 'monit.id'}",
        f"set statefile {folder / 'monit.state'}",
        "",
    ]
    for c in specs:
        out += [
            f"check host {c.name} with address 127.0.0.1",
            f'  if failed port {port} protocol http request "{c.path(run)}"',
            f"     with timeout {max(1, round(timeout))} seconds then alert",
        ]
    path = folder / "monitrc"
    path.write_text("\n".join(out) + "\n")
    os.chmod(path, 0o600)  # Monit refuses a control file others can read
    return path
