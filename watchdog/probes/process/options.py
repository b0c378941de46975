"""The `process:` check keys, validated once into a ProcessProbe."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import Field, PlainValidator, StringConstraints

from watchdog.config.fields import NO_NUL, Says, Section
from watchdog.config.sizefield import Size
from watchdog.probes._match import Match
from watchdog.probes.base import validate
from watchdog.probes.file import user_or_uid
from watchdog.probes.process.probe import ProcessProbe

NAME = "process"
_SELECTORS = ("name", "cmdline", "pidfile")


class Spec(Section):
    """Which processes (by name, command line or pidfile; the user narrows it) and what must
    hold of them."""

    name: Annotated[
        str, StringConstraints(min_length=1, pattern=r"^[^\x00/]*$"),
        Says("must be a process name such as nginx (no '/': use cmdline for a path)"),
    ] | None = Field(None, description="the process name as `ps -e` shows it, or the base "
                     "name of its argv[0] (what `exec -a` sets)")
    cmdline: Match | None = Field(
        None, description="the command line (arguments joined by spaces) must contain this "
        "string, or match {regex: ...}")
    pidfile: Annotated[
        str, StringConstraints(min_length=1, pattern=NO_NUL),
        Says("must be a file path (relative paths start at the check file)"),
    ] | None = Field(None, description="the file holding the pid of the one process to "
                     "watch; relative to this file's folder")
    user: Annotated[
        str | int, PlainValidator(user_or_uid, json_schema_input_type=str | int),
        Says("must be a user name or a uid", null_is_unset=True),
    ] = Field(None, description="only processes running as this user (effective uid), by "
              "name or uid")
    min: Annotated[
        int, Field(ge=0), Says("must be a whole number, 0 or more"),
    ] = Field(1, description="fail when fewer processes run (zombies do not count)")
    max: Annotated[
        int, Field(ge=0), Says("must be a whole number, 0 or more"),
    ] | None = Field(None, description="fail when more processes run")
    max_rss: Size | None = Field(
        None, description="fail when the resident memory of all the processes, summed, is "
        "larger")
    max_cpu_percent: Annotated[
        float, Field(gt=0), Says("must be a number above 0 (100 is one core)"),
    ] | None = Field(None, description="fail when the processes, summed, used more CPU "
                     "between two runs (100 is one core busy)")

    @classmethod
    def rules(cls, data: dict[str, Any]) -> Iterable[tuple[tuple, str]]:
        if not any(data.get(key) is not None for key in _SELECTORS):
            yield (), "give at least one of name, cmdline or pidfile: which process to watch"
        if data.get("pidfile") is not None:
            for key in ("min", "max"):
                if key in data:
                    yield (key,), "a pidfile names one process: min and max count the " \
                                  "processes found by name or cmdline; remove one of them"
        low, high = data.get("min", 1), data.get("max")
        if _count(low) and _count(high) and high < low:
            yield ("max",), f"is less than min ({low})"


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class Options(Section):
    """A process running, how many, its memory, CPU, zombies and restarts (Monit's process
    checks), from /proc on a worker thread."""

    process: Annotated[
        Spec, Says("must be a mapping such as {{name: nginx}} or {{pidfile: /run/nginx.pid}}"),
    ] = Field(description="which processes, and what must hold of them")


KEYS = frozenset(Options.model_fields)


def build(options: Options, base_dir: str) -> ProcessProbe:
    """The probe, from validated options: the pidfile's path made absolute once."""
    spec = options.process
    pidfile = None
    if spec.pidfile is not None:
        pidfile = os.path.normpath(os.path.join(base_dir, os.path.expanduser(spec.pidfile)))
    return ProcessProbe(name=spec.name, cmdline=spec.cmdline, pidfile=pidfile, user=spec.user,
                        least=spec.min, most=spec.max, max_rss=spec.max_rss,
                        max_cpu=spec.max_cpu_percent)


def parse(options: dict[str, Any], base_dir: str) -> ProcessProbe:
    """Validate the check's `process:` mapping and build the probe; OptionError lists every
    problem."""
    return build(validate(Options, options, base_dir), base_dir)
