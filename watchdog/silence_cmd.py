"""`pd-watchdog silence`, `silences` and `unsilence`: ad-hoc holds that always end.

A silence is a row in the state store, written straight from the command line (safe
beside a live runner: SQLite's WAL and one transaction per change); the runner reads the
active silences every second, so one takes effect within 2 s without a reload, survives
a restart, and ends by itself at `until`.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import secrets
import socket
import sys
import time
from typing import Any

from watchdog.durations import format_duration, format_time, parse_duration, parse_instant
from watchdog.holds import Silence, matches, unmatched

MAX_FOR = 7 * 86400.0
KEEP_ENDED = 7 * 86400.0  # ended silences are listed (--all) this long, then forgotten


def add_parsers(sub: Any) -> list[argparse.ArgumentParser]:
    silence = sub.add_parser(
        "silence", help="hold back the pages of matching checks for a while",
        description="Hold back triggers of the checks matching PATTERN (names or globs) "
        "until the silence ends; resolves still go out. Takes effect in a running "
        "pd-watchdog within 2 s and survives restarts. Prints the silence's id.")
    silence.add_argument("config", metavar="CONFIG")
    silence.add_argument("patterns", metavar="PATTERN", nargs="+", help="check names or globs")
    length = silence.add_mutually_exclusive_group(required=True)
    length.add_argument("--for", dest="duration", metavar="DURATION",
                        help="how long, e.g. 30m or 2h (at most 7d; longer needs --until)")
    length.add_argument("--until", metavar="TIME", help="when it ends, ISO 8601 "
                        "(2026-12-24T08:00, local time unless it has an offset)")
    silence.add_argument("--reason", required=True, help="why (shown in status and logs)")
    silence.set_defaults(func=cmd_silence)

    listing = sub.add_parser("silences", help="list the silences",
                             description="List active silences (--all: ended ones too).")
    listing.add_argument("config", metavar="CONFIG")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.add_argument("--all", action="store_true", help="include ended silences")
    listing.set_defaults(func=cmd_silences)

    unsilence = sub.add_parser("unsilence", help="end silences now",
                               description="End the silence ID (or --all of them) now: held "
                               "pages of still-failing checks go out within one interval.")
    unsilence.add_argument("config", metavar="CONFIG")
    which = unsilence.add_mutually_exclusive_group(required=True)
    which.add_argument("id", metavar="ID", nargs="?", help="the silence's id")
    which.add_argument("--all", action="store_true", help="every active silence")
    unsilence.set_defaults(func=cmd_unsilence)
    return [silence, listing, unsilence]


def ends_at(duration: str | None, until: str | None, now: float) -> float:
    """When a new silence ends; ValueError saying what to write instead."""
    if duration is not None:
        seconds = parse_duration(duration, 1.0)
        if seconds > MAX_FOR:
            raise ValueError(f"--for {duration} is longer than 7 days — a silence that long "
                             "is forgotten; give --until TIME if you mean it")
        return now + seconds
    assert until is not None
    end = parse_instant(until)
    if end is None:
        raise ValueError(f"--until {until!r} is not an ISO 8601 time — e.g. "
                         "2026-12-24T08:00 or 2026-12-24T08:00:00+01:00")
    if end <= now:
        raise ValueError(f"--until {until} is in the past")
    return end


def new_silence(patterns: list[str], reason: str, now: float, until: float) -> Silence:
    return Silence(id=secrets.token_hex(4), patterns=tuple(patterns), reason=reason.strip(),
                   created_at=now, until=until, created_by=_who())


def _who() -> str:
    user = os.environ.get("SUDO_USER") or _login()
    return f"{user}@{socket.gethostname()}"


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def refuse_unmatched(patterns: list[str], names: list[str]) -> str | None:
    """The error for patterns naming no check (a typo would silence nothing, silently)."""
    missing = unmatched(patterns, names)
    if not missing:
        return None
    import difflib

    hints = []
    for pattern in missing:
        close = difflib.get_close_matches(pattern, names, n=1, cutoff=0.6)
        hints.append(f"{pattern!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return (f"{', '.join(hints)} matches no check in the config — nothing was silenced; "
            "`pd-watchdog status CONFIG` lists the checks")


def describe(silence: Silence, names: list[str], now: float) -> dict[str, Any]:
    matched = [name for name in names if matches(silence.patterns, name)]
    return {
        "id": silence.id, "patterns": list(silence.patterns), "reason": silence.reason,
        "created_at": silence.created_at, "created_by": silence.created_by,
        "until": silence.until, "active": silence.active(now), "checks": matched,
    }


def render(rows: list[dict[str, Any]], now: float) -> str:
    if not rows:
        return "no silences"
    lines = []
    for row in rows:
        left = row["until"] - now
        when = format_time(row["until"])
        state = (f"ends {when} (in {format_duration(left, 'age')})" if row["active"]
                 else f"ended {when}")
        lines.append(f"{row['id']}  {' '.join(row['patterns'])}  {state}  "
                     f"{len(row['checks'])} checks  by {row['created_by']}: {row['reason']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- commands


def cmd_silence(args: argparse.Namespace) -> int:
    config, store = _open(args, write=True)
    if store is None:
        return 1
    try:
        names = [check.name for check in config.checks]
        now = time.time()
        refusal = refuse_unmatched(args.patterns, names)
        if refusal is None and not args.reason.strip():
            refusal = "--reason must say why (it is shown in status and logs)"
        if refusal is None:
            try:
                until = ends_at(args.duration, args.until, now)
            except ValueError as exc:
                refusal = str(exc)
        if refusal is not None:
            print(f"pd-watchdog silence: {refusal}", file=sys.stderr)
            return 1
        silence = new_silence(args.patterns, args.reason, now, until)
        store.add_silence(silence)
        matched = describe(silence, names, now)["checks"]
        print(silence.id)
        shown = ", ".join(matched[:10]) + (" ..." if len(matched) > 10 else "")
        print(f"silenced {len(matched)} checks until {format_time(until)}: {shown}",
              file=sys.stderr)
        return 0
    finally:
        store.close()


def cmd_silences(args: argparse.Namespace) -> int:
    config, store = _open(args, write=False)
    if store is None:
        return 1
    try:
        now = time.time()
        found = store.silences(None if args.all else now, since=now - KEEP_ENDED)
    finally:
        store.close()
    names = [check.name for check in config.checks]
    rows = [describe(silence, names, now) for silence in found]
    print(json.dumps(rows, indent=2) if args.json else render(rows, now))
    return 0


def cmd_unsilence(args: argparse.Namespace) -> int:
    _, store = _open(args, write=True)
    if store is None:
        return 1
    try:
        ended = store.end_silences(None if args.all else [args.id], time.time())
    finally:
        store.close()
    if not ended and not args.all:
        print(f"pd-watchdog unsilence: no active silence {args.id!r} — `pd-watchdog silences "
              "CONFIG` lists them", file=sys.stderr)
        return 1
    print(f"ended {len(ended)} silence{'s' if len(ended) != 1 else ''}"
          + (f": {', '.join(ended)}" if ended else ""))
    return 0


def _open(args: argparse.Namespace, *, write: bool) -> tuple[Any, Any]:
    from watchdog import cli, outbox_cmd
    from watchdog.store import StoreError

    config = cli.load_config(args.config, need_key=False)
    if config is None:
        return None, None
    try:
        return config, outbox_cmd.open_store(config, write=write)
    except StoreError as exc:
        print(f"pd-watchdog {args.command}: {exc}", file=sys.stderr)
        return None, None
