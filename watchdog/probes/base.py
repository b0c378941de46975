"""The one interface every probe kind implements.

A probe kind is a module with:
  KEYS:  frozenset of the check-level YAML keys it owns (the first-listed is its name),
  parse(options: dict, base_dir: str) -> Probe
      options holds only those keys, as the YAML wrote them (after ${VAR} expansion);
      base_dir is the folder of the file that defines the check (relative paths resolve
      against it); raise OptionError on bad input.
The returned object's run(timeout) returns a ProbeResult and never raises. run is either
  - a coroutine function: it runs on the scheduler's event loop, alongside every other
    such probe, and must never block it (network probes: thousands cost one thread), or
  - a plain function: it may block, and runs on one of the `workers` threads (probes that
    wait on something the event loop cannot, such as a child process).
The scheduler tells the two apart once per check; run_once() runs either kind to the end.
"""

from __future__ import annotations

import inspect
from typing import Any

from watchdog import aio
from watchdog.model import ProbeResult


class OptionError(ValueError):
    """Bad probe options. `problems` is a list of (key path under the check, message)."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{path}: {message}" for path, message in problems))


def is_async(probe: Any) -> bool:
    """True when the probe's run is a coroutine function (runs on the event loop)."""
    return inspect.iscoroutinefunction(probe.run)


def run_once(probe: Any, timeout: float) -> ProbeResult:
    """Run one probe of either shape from blocking code (`pd-watchdog check`, tests)."""
    if is_async(probe):
        return aio.run(probe.run(timeout))
    return probe.run(timeout)
