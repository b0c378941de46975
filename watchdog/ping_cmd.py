"""`pd-watchdog ping` and `wrap`: report to a passive check from a cron job or a script.

Both write the report straight into the state store (safe beside a live runner, as
`silence` does: SQLite's WAL, one transaction per report), so they need no listener; the
runner reads new reports every second, so one takes effect within 2 s. `wrap` runs the job
whatever happens to the report: a job must not stop running because its watchdog is down.
"""

from __future__ import annotations

import argparse
import difflib
import sys
import time
from typing import Any

from watchdog.reports import FAIL, MESSAGE_CAP, START, SUCCESS, Report


def add_parsers(sub: Any) -> list[argparse.ArgumentParser]:
    ping = sub.add_parser(
        "ping", help="report to a passive check (a job succeeded, started or failed)",
        description="Report to the passive check NAME: a success (no option), a start "
        "(--start: max_runtime counts from now), a failure (--fail), or an exit code "
        "(--exit-code N: 0 a success, else a failure). Takes effect in a running "
        "pd-watchdog within 2 s; needs no listener. Prints nothing when it worked.")
    ping.add_argument("config", metavar="CONFIG")
    ping.add_argument("name", metavar="NAME", help="a passive check of the config")
    kind = ping.add_mutually_exclusive_group()
    kind.add_argument("--start", action="store_true", help="the job started")
    kind.add_argument("--fail", action="store_true", help="the job failed")
    kind.add_argument("--exit-code", type=int, metavar="N", help="the job's exit code, 0-255")
    ping.add_argument("--message", default="", metavar="TEXT",
                      help="shown with the result (e.g. the tail of the job's output)")
    ping.set_defaults(func=cmd_ping)

    wrap = sub.add_parser(
        "wrap", help="run a cron job and report its start and outcome to a passive check",
        description="Report a start to the passive check NAME, run COMMAND (its output "
        "passed through as it comes), report its exit code, duration and the tail of its "
        "output, and exit with its code (128+N when signal N killed it). The command runs "
        "even when the report cannot be written. Crontab: pd-watchdog wrap "
        "/etc/pd-watchdog/watchdog.yaml backup -- /usr/local/bin/backup.sh")
    wrap.add_argument("config", metavar="CONFIG")
    wrap.add_argument("name", metavar="NAME", help="a passive check of the config")
    wrap.add_argument("command", metavar="-- COMMAND", nargs=argparse.REMAINDER,
                      help="the job and its arguments, after --")
    wrap.set_defaults(func=cmd_wrap)
    return [ping, wrap]


def passive_target(config: Any, name: str) -> str | None:
    """Why `name` cannot take reports (with a did-you-mean), or None when it can."""
    from watchdog.probes.passive import PassiveProbe

    kinds = {check.name: check for check in config.checks}
    check = kinds.get(name)
    if check is not None and isinstance(check.probe, PassiveProbe):
        return None
    passive = sorted(n for n, c in kinds.items() if isinstance(c.probe, PassiveProbe))
    if check is not None:
        return (f"check {name!r} is a {check.kind} check; only passive checks take reports "
                f"({', '.join(passive) or 'the config has none'})")
    close = difflib.get_close_matches(name, passive, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    listed = f"passive checks: {', '.join(passive)}" if passive else "the config has no " \
        "passive check (a check with passive: {expect_every: ..., grace: ...})"
    return f"no passive check {name!r} in {config.path}{hint}; {listed}"


def bind_to_store(checks: Any, config: Any) -> None:
    """Bind passive probes to the reports in the config's store (SQLite or a group's
    PostgreSQL), for `pd-watchdog check` (none yet: they stay pending)."""
    from watchdog.probes.passive import PassiveProbe
    from watchdog.store import Store, StoreError

    passive = [check for check in checks if isinstance(check.probe, PassiveProbe)]
    if not passive:
        return
    try:
        with Store.for_config(config, readonly=True) as store:
            inbox = dict(store.passive_records())
    except StoreError:
        inbox = {}
    for check in passive:
        check.probe.bind(check.name, inbox)


def write(config: Any, name: str, report: Report) -> str | None:
    """Store the report; None, or why it could not be stored."""
    from watchdog import outbox_cmd
    from watchdog.store import StoreError

    try:
        store = outbox_cmd.open_store(config, write=True)
        try:
            store.report(name, report)
        finally:
            store.close()
    except StoreError as exc:
        return str(exc)
    return None


def cmd_ping(args: argparse.Namespace) -> int:
    from watchdog import cli, logs

    if args.exit_code is not None and not 0 <= args.exit_code <= 255:
        print(f"pd-watchdog ping: --exit-code {args.exit_code} is not an exit code (0-255)",
              file=sys.stderr)
        return 2
    config = cli.load_config(args.config, need_key=False)
    if config is None:
        return 1
    refusal = passive_target(config, args.name)
    if refusal is not None:
        print(f"pd-watchdog ping: {refusal}", file=sys.stderr)
        return 1
    kind = START if args.start else FAIL if args.fail else SUCCESS
    if args.exit_code is not None:
        kind = SUCCESS if args.exit_code == 0 else FAIL
    message = logs.mask(args.message[-MESSAGE_CAP:], config.secrets)
    problem = write(config, args.name, Report(kind, time.time(), exit_code=args.exit_code,
                                              message=message))
    if problem is not None:
        print(f"pd-watchdog ping: the report was not recorded: {problem}", file=sys.stderr)
        return 1
    return 0


def cmd_wrap(args: argparse.Namespace) -> int:
    from watchdog import wrap

    argv = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not argv:
        print("pd-watchdog wrap: give the command to run after --, e.g. pd-watchdog wrap "
              "CONFIG NAME -- /usr/local/bin/backup.sh", file=sys.stderr)
        return 2
    config, refusal = _target(args.config, args.name)
    problem = refusal or write(config, args.name, Report(START, time.time()))
    if problem is not None:
        print(f"pd-watchdog wrap: the start of {args.name!r} was not reported ({problem}); "
              "running the command anyway", file=sys.stderr)
    outcome = wrap.run_through(argv, config.secrets if config else frozenset())
    if outcome.spawn_error:
        print(f"pd-watchdog wrap: {outcome.spawn_error}", file=sys.stderr)
    if refusal is None:
        kind = SUCCESS if outcome.returncode == 0 else FAIL
        lost = write(config, args.name, Report(kind, time.time(), exit_code=outcome.returncode,
                                               duration=outcome.duration,
                                               message=outcome.tail))
        if lost is not None:
            print(f"pd-watchdog wrap: the report of {args.name!r} (exit code "
                  f"{outcome.exit_status}) was lost: {lost}", file=sys.stderr)
    return outcome.exit_status


def _target(path: str, name: str) -> tuple[Any, str | None]:
    """(the config or None, why reports cannot be written), the problems said quietly: the
    job runs regardless."""
    from watchdog import logs
    from watchdog.config import ConfigError, load

    try:
        config = load(path, need_key=False)
    except ConfigError as exc:
        return None, f"{path} does not load: {exc.errors[0]}" + (
            f" (and {len(exc.errors) - 1} more)" if len(exc.errors) > 1 else "")
    logs.add_secrets(config.secrets)
    return config, passive_target(config, name)
