"""The config of holding pages back: maintenance windows, flap detection, and the checks
of `depends_on` across files (unknown names, cycles).

Models only declare; `windows()` turns validated windows into the runner's plain
`holds.Window`s, and `dependency_problems()` is the cross-check the loader runs once every
file is read.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, WithJsonSchema

from watchdog import durations
from watchdog.config.fields import (
    DEF_ABOUT,
    DOC_RANGE,
    DOC_TYPE,
    NO_CONTROL,
    Duration,
    Says,
    Section,
    duration_schema,
    env_int,
    one_or_many,
    problem,
)
from watchdog.holds import Window

# --------------------------------------------------------------------------- flapping


def _percent(value: Any) -> Any:
    """50, 50.0 or "50%" -> 50.0 (a bare string number too); anything else as it is."""
    if isinstance(value, str):
        text = value.strip().removesuffix("%").strip()
        try:
            return float(text)
        except ValueError:
            return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


Percent = Annotated[
    float, BeforeValidator(_percent), Field(ge=0, le=100),
    WithJsonSchema({"anyOf": [{"type": "number", "minimum": 0, "maximum": 100},
                              {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*%\s*$"}]}),
    Says("must be a percentage 0..100, e.g. 50% or 50, not {value!r}"),
]


class FlappingSettings(Section):
    """Flap detection as Nagios does it: the percent of state changes among the last
    `window` results, recent ones weighted more. At `high` the check is flapping: one
    incident opens and stays open (no resolve, no further trigger) until the percent falls
    below `low` and the check passes."""

    window: env_int(3, 1000, Says("must be an integer 3..1000, not {value!r} — the number "
                                  "of recent results to look at")) = Field(
        21, description="how many recent results to weigh")
    high: Percent = Field(50.0, description="percent state change at which flapping starts")
    low: Percent = Field(25.0, description="percent state change below which it ends")

    @classmethod
    def rules(cls, data: dict[str, Any]) -> Iterable[tuple[tuple, str]]:
        high, low = _percent(data.get("high", 50.0)), _percent(data.get("low", 25.0))
        if isinstance(high, float) and isinstance(low, float) and low >= high:
            yield ("low",), (f"must be below high ({high:g}%), got {low:g}% — e.g. high: 50%, "
                             "low: 25%")


# --------------------------------------------------------------------------- repeats

MIN_REPEAT = 60.0


def _repeat(value: Any) -> Any:
    if value in (0, "0", "0s", "off") and not isinstance(value, bool):
        return 0.0
    try:
        return durations.parse_duration(value, MIN_REPEAT)
    except ValueError as exc:
        raise problem(f"{exc} (or 0 to turn re-notification off)") from None


_REPEAT_SCHEMA = duration_schema(MIN_REPEAT, "RepeatInterval")
RepeatInterval = Annotated[
    float, BeforeValidator(_repeat),
    WithJsonSchema({**_REPEAT_SCHEMA, "anyOf": [{"const": 0}, *_REPEAT_SCHEMA["anyOf"]],
                    DOC_TYPE: "duration or 0", DOC_RANGE: "0 (off), or 1m to 365d",
                    DEF_ABOUT: "a duration of at least 1m (30m, 4h), or 0 for never"}),
]


# --------------------------------------------------------------------------- windows


def _cron(value: str) -> str:
    from cronsim import CronSim, CronSimError

    fields = value.split()
    if len(fields) != 5:
        raise problem(f"must be a cron expression of 5 fields (minute hour day month weekday), "
                      f"got {len(fields)}: {value!r} — e.g. \"0 2 * * SUN\"")
    try:
        CronSim(" ".join(fields), dt.datetime(2026, 1, 1))
    except CronSimError as exc:
        raise problem(f"not a valid cron expression {value!r}: {exc} — fields are minute "
                      "hour day-of-month month day-of-week, e.g. \"0 2 * * SUN\"") from None
    return " ".join(fields)


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _zone(value: str) -> str:
    import difflib

    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        close = difflib.get_close_matches(value, sorted(_zone_names()), n=1, cutoff=0.6)
        hint = (f"did you mean {close[0]!r}?" if close else
                "an IANA name such as Europe/Berlin, America/New_York or UTC")
        raise problem(f"unknown time zone {value!r} — {hint}") from None
    return value


def _instant(value: Any) -> str:
    if not isinstance(value, str) or durations.parse_instant(value, dt.timezone.utc) is None:
        raise problem(f"must be an ISO 8601 date and time, e.g. \"2026-12-24T22:00\" or "
                      f"\"2026-12-24T22:00:00+01:00\", not {value!r}")
    return value


Glob = Annotated[str, StringConstraints(min_length=1, pattern=NO_CONTROL),
                 Says("must be a check name or glob (string), e.g. \"db-*\"")]
GLOBS_SAYS = Says("must be a list of check names or globs, e.g. [\"db-*\", \"backup-*\"]",
                  missing="checks is required — the names or globs of the checks it holds",
                  at_parent=True, too_short="must name at least one check (or glob)")


class MaintenanceWindow(Section):
    """A planned window in which the named checks do not page (resolves still go out).
    Recurring with `schedule` (cron) and `duration`, or once from `start` to `end`."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_CONTROL),
                    Says("must be a non-empty string, not {value!r}",
                         missing="name is required — a name for the window, shown in "
                         "status and logs", at_parent=True)] = Field(
        description="shown in status, logs and metrics")
    checks: Annotated[one_or_many(Glob, GLOBS_SAYS, min_length=1, single=str), GLOBS_SAYS] = \
        Field(description="names or globs (* ? [abc]) of the checks it holds")
    schedule: Annotated[str | None, AfterValidator(lambda v: v if v is None else _cron(v)),
                        Says("must be a cron expression (string), e.g. \"0 2 * * SUN\"")] = \
        Field(None, description="when it starts, as cron (5 fields, in `timezone`)")
    duration: Duration | None = Field(None, description="how long each occurrence lasts "
                                      "(with schedule; or start plus duration)")
    timezone: Annotated[str | None, AfterValidator(lambda v: v if v is None else _zone(v)),
                        Says("must be an IANA time zone name (string), e.g. Europe/Berlin")] = \
        Field(None, description="IANA zone of schedule/start/end; DST-correct",
              json_schema_extra={"x-default": "the host's zone"})
    start: Annotated[str | None, AfterValidator(lambda v: v if v is None else _instant(v)),
                     Says("must be an ISO 8601 date and time (string)")] = Field(
        None, description="a one-off window's start, ISO 8601 (\"2026-12-24T22:00\")")
    end: Annotated[str | None, AfterValidator(lambda v: v if v is None else _instant(v)),
                   Says("must be an ISO 8601 date and time (string)")] = Field(
        None, description="a one-off window's end (or give duration)")

    @classmethod
    def rules(cls, data: dict[str, Any]) -> Iterable[tuple[tuple, str]]:
        has = {key for key in ("schedule", "start", "end", "duration") if data.get(key)}
        if "schedule" in has and ({"start", "end"} & has):
            yield ("start" if "start" in has else "end",), (
                "a window has either schedule: (recurring) or start:/end: (once), not both")
        elif "schedule" in has and "duration" not in has:
            yield (), "duration is required with schedule — how long each occurrence lasts"
        elif "start" in has and not ({"end", "duration"} & has):
            yield (), "a one-off window needs end: or duration: besides start:"
        elif "end" in has and "start" not in has:
            yield (), "end: needs start: — when the one-off window begins"
        elif not has & {"schedule", "start"}:
            yield (), ("set schedule: (cron) and duration:, or start: and end: for a one-off "
                       "window")
        elif {"start", "end"} <= has and isinstance(data["start"], str) and \
                isinstance(data["end"], str):
            begin = durations.parse_instant(data["start"], dt.timezone.utc)
            finish = durations.parse_instant(data["end"], dt.timezone.utc)
            if begin is not None and finish is not None and finish <= begin:
                yield ("end",), "must be after start"


Maintenance = Annotated[
    list[MaintenanceWindow],
    Says("must be a list of windows, each with a name, checks and a schedule or start"),
]


def host_zone(environ: Mapping[str, str] | None = None) -> dt.tzinfo:
    """The host's time zone as a zoneinfo zone (DST-correct), from $TZ or /etc/localtime;
    UTC when neither names one."""
    env = os.environ if environ is None else environ
    name = (env.get("TZ") or "").lstrip(":")
    if name:
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    try:
        with open("/etc/localtime", "rb") as file:
            return zoneinfo.ZoneInfo.from_file(file, key="localtime")
    except (OSError, ValueError):
        return dt.timezone.utc


def windows(settings: Sequence[MaintenanceWindow] | None, origins: Sequence[str] = (),
            environ: Mapping[str, str] | None = None) -> tuple[Window, ...]:
    """The validated windows as the runner's `holds.Window`s, zones resolved."""
    out = []
    for index, window in enumerate(settings or ()):
        zone = zoneinfo.ZoneInfo(window.timezone) if window.timezone else host_zone(environ)
        start = durations.parse_instant(window.start, zone) if window.start else None
        end = durations.parse_instant(window.end, zone) if window.end else None
        if start is not None and end is None:
            end = start + (window.duration or 0.0)
        out.append(Window(
            name=window.name, checks=tuple(window.checks), duration=window.duration or 0.0,
            schedule=window.schedule, tz=zone, start=start, end=end,
            origin=origins[index] if index < len(origins) else ""))
    return tuple(out)


# --------------------------------------------------------------------------- depends_on


def dependency_problems(graph: Mapping[str, Sequence[str]]) -> list[tuple[str, int, str]]:
    """(check, index in its depends_on, message) for each unknown parent and each cycle."""
    found: list[tuple[str, int, str]] = []
    for name, parents in graph.items():
        for index, parent in enumerate(parents):
            if parent == name:
                found.append((name, index, "a check cannot depend on itself"))
            elif parent not in graph:
                found.append((name, index, f"unknown check {parent!r} — " + _closest(
                    parent, graph)))
    for cycle in _cycles(graph):
        first = cycle[0]
        found.append((first, list(graph[first]).index(cycle[1]),
                      "depends_on forms a cycle: " + " -> ".join(cycle) +
                      " — a check's parents must not depend on it"))
    return found


def _closest(name: str, graph: Mapping[str, Sequence[str]]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(graph), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else "no check has that name"


def _cycles(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """One cycle (as a path a -> b -> a) per strongly connected loop, found iteratively."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    cycles: list[list[str]] = []
    for root in graph:
        if state.get(root):
            continue
        path: list[str] = []
        stack: list[tuple[str, Iterable[str]]] = [(root, iter(graph[root]))]
        state[root] = 1
        path.append(root)
        while stack:
            node, parents = stack[-1]
            for parent in parents:
                if parent == node or parent not in graph:
                    continue
                if state.get(parent) == 1:
                    cycles.append(path[path.index(parent):] + [parent])
                elif not state.get(parent):
                    state[parent] = 1
                    path.append(parent)
                    stack.append((parent, iter(graph[parent])))
                    break
            else:
                state[node] = 2
                path.pop()
                stack.pop()
    return cycles
