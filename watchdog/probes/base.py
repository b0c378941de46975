"""The one interface every probe kind implements.

A probe kind is a module (listed once in probes.KINDS) with:
  NAME:    the check-level key that selects the kind (`http:`, `command:`);
  KEYS:    frozenset of the check-level YAML keys it owns (NAME among them);
  Options: a pydantic model (config.fields.Section) of exactly those keys: their types,
           defaults, ranges, help and error sentences, declared once. pd-watchdog validates
           a check's keys with it, and the JSON Schema and docs table come from it;
  build(options: Options, base_dir: str) -> Probe
           the probe, from options already validated; base_dir is the folder of the file
           that defines the check (relative paths resolve against it). It raises OptionError
           only for what validation cannot know (a file that is missing, a CA bundle that
           does not load);
  OPEN_SOCKETS: how many sockets one running check of this kind may hold (the open-files
           estimate of `pd-watchdog run`);
  parse(options: dict, base_dir: str) -> Probe
           validate and build in one step, raising OptionError: for tests and tools.
The returned object's run(timeout) returns a ProbeResult and never raises; it may return
None for "nothing to judge yet" (a passive check before its first report or deadline): the
check then stays pending, no result is counted. run is either
  - a coroutine function: it runs on the scheduler's event loop, alongside every other
    such probe, and must never block it (network probes: thousands cost one thread), or
  - a plain function: it may block, and runs on one of the `workers` threads (probes that
    wait on something the event loop cannot, such as a child process).
The scheduler tells the two apart once per check; run_once() runs either kind to the end.
tests/test_probe_kinds.py checks every entry of KINDS against this list.
"""

from __future__ import annotations

import inspect
from typing import Any

from pydantic import BaseModel, ValidationError

from watchdog import aio
from watchdog.model import ProbeResult


class OptionError(ValueError):
    """Bad probe options. `problems` is a list of (key path under the check, message)."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{path}: {message}" for path, message in problems))


def validate(options_model: type[BaseModel], options: dict[str, Any],
             base_dir: str | None = None) -> Any:
    """`options` validated by the kind's Options model (paths in them relative to
    `base_dir`); OptionError listing every problem, worded as `pd-watchdog validate` words
    them."""
    from watchdog.config.errors import fmt_path, translate  # config imports the kinds
    from watchdog.config.fields import validate as checked

    try:
        return checked(options_model, options, {"base_dir": base_dir})
    except ValidationError as exc:
        raise OptionError([(fmt_path(path), message)
                           for path, message in translate(exc, options_model, options)]) from None


def is_async(probe: Any) -> bool:
    """True when the probe's run is a coroutine function (runs on the event loop)."""
    return inspect.iscoroutinefunction(probe.run)


def run_once(probe: Any, timeout: float) -> ProbeResult | None:
    """Run one probe of either shape from blocking code (`pd-watchdog check`, tests)."""
    if is_async(probe):
        return aio.run(probe.run(timeout))
    return probe.run(timeout)
