"""The Nagios plugin convention: a verdict from the exit code, a summary from the first
line, performance data after "|"."""

from __future__ import annotations

import re
import signal
from typing import Any

NAGIOS_STATES = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}  # details["state"]
OUTPUT_CAP = 4096  # details["output"]
STDERR_CAP = 1024  # details["stderr"]
SUMMARY_CAP = 300


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def output_details(code: int | None, out: bytes, err: bytes) -> dict[str, Any]:
    """details for a result: the exit code and the start of each stream."""
    details: dict[str, Any] = {"exit_code": code, "output": _decode(out[:OUTPUT_CAP])}
    if err:
        details["stderr"] = _decode(err[:STDERR_CAP])
    if len(out) > OUTPUT_CAP:
        details["truncated"] = True
    return details


def verdict(
    returncode: int, out: bytes, err: bytes
) -> tuple[bool, str, str | None, dict[str, Any]]:
    """(ok, summary, severity, details): 0 OK, 1 WARNING, 2 CRITICAL, anything else UNKNOWN."""
    code = returncode if returncode >= 0 else None
    details = output_details(code, out, err)
    text = _decode(out)
    first, _, rest = text.partition("\n")
    summary_text, bar, perf_first = first.partition("|")
    summary = summary_text.strip()
    if out:
        perf_parts = [perf_first] if bar else []
        _long_text, bar, perf_rest = rest.partition("|")
        if bar:
            perf_parts.append(perf_rest)
        if perf_parts:
            perfdata = parse_perfdata(" ".join(perf_parts))
            if perfdata:
                details["perfdata"] = perfdata

    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        details["signal"] = name
        details["state"] = "UNKNOWN"
        return False, f"killed by signal {name}", "error", details

    if not summary:
        for line in _decode(err).splitlines():
            if line.strip():
                summary = line.strip()
                break
    if not summary:
        summary = f"exit code {returncode}"
    summary = summary[:SUMMARY_CAP]
    details["state"] = NAGIOS_STATES.get(returncode, "UNKNOWN")
    if returncode == 0:
        return True, summary, None, details
    if returncode == 1:
        return False, summary, "warning", details
    if returncode == 2:
        return False, summary, None, details
    return False, summary, "error", details


# each item starts at the beginning or after whitespace, so a stray quote skips one item
_PERF_ITEM = re.compile(r"(?<!\S)(?:'((?:[^']|'')+)'=(\S*)|([^\s'=]+)=(\S*))")
_NUMBER = r"[-+]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][-+]?\d+)?"
_VALUE = re.compile(rf"({_NUMBER})(\D*)")
_NUMBER_ONLY = re.compile(_NUMBER)


def _number(text: str) -> float | None:
    if not _NUMBER_ONLY.fullmatch(text):
        return None
    return float(text.replace(",", "."))


def parse_perfdata(text: str) -> dict[str, dict[str, Any]]:
    """Nagios performance data ('label'=value[UOM];[warn];[crit];[min];[max] ...).

    Items that do not parse are skipped: bad perfdata must never fail a check.
    """
    result: dict[str, dict[str, Any]] = {}
    for match in _PERF_ITEM.finditer(text):
        quoted, q_rest, plain, p_rest = match.groups()
        label = quoted.replace("''", "'") if quoted is not None else plain
        fields = (q_rest if quoted is not None else p_rest).split(";")
        value = _VALUE.fullmatch(fields[0])
        if not label or not value:
            continue
        fields += [""] * (5 - len(fields))
        result[label] = {
            "value": float(value.group(1).replace(",", ".")),
            "uom": value.group(2),
            "warn": fields[1] or None,
            "crit": fields[2] or None,
            "min": _number(fields[3]),
            "max": _number(fields[4]),
        }
    return result
