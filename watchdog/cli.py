"""The `pd-watchdog` command: run, validate, check, status, outbox, schema, silence, ping,
wrap, test-page, migrate-state."""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from watchdog import __version__, logs, migrate_cmd
from watchdog.config import Config, ConfigError, load
from watchdog.model import Check
from watchdog.probes.base import run_once
from watchdog.words import plural, result_label

log = logging.getLogger("watchdog")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    args.as_command = argv is None  # the process's own command line, not a caller's
    return args.func(args)


def _leave(code: int) -> None:
    """End the process now, without tearing down what it loaded object by object: freeing
    a config of 10,000 checks is ~3 % of `validate` (mypy leaves the same way). For
    `validate` run as a command: it opens nothing but stdout and stderr, flushed here, and
    starts no thread; other commands and main(argv) return and exit as usual."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a closed pipe: what was printed is lost either way
        code = code or 1
    os._exit(code)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pd-watchdog",
        description="Run checks declared in YAML and page PagerDuty when they fail.",
    )
    parser.add_argument("--version", action="version", version=f"pd-watchdog {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run the checks in the foreground (as a systemd service)",
        description="Run the checks until SIGTERM; SIGHUP reloads CONFIG.",
    )
    run.add_argument("config", metavar="CONFIG")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="log the events that would be sent instead of sending them",
    )
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    run.set_defaults(func=cmd_run)

    validate = sub.add_parser(
        "validate",
        help="check CONFIG and the files it includes",
        description="Exit 0 if CONFIG is valid, else 1 with every error.",
    )
    validate.add_argument("config", metavar="CONFIG")
    validate.set_defaults(func=cmd_validate)

    check = sub.add_parser(
        "check",
        help="run the probes once and print the results",
        description="Run the probes once, send nothing; exit 1 if any fail.",
    )
    check.add_argument("config", metavar="CONFIG")
    check.add_argument("names", metavar="NAME", nargs="*", help="only these checks")
    check.set_defaults(func=cmd_check)

    status = sub.add_parser(
        "status",
        help="show each check's state and the outbox",
        description="Read the state of a running (or stopped) runner.",
    )
    status.add_argument("config", metavar="CONFIG")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_status)
    outbox = _outbox_parser(sub)
    schema = _schema_parser(sub)
    from watchdog import silence_cmd

    silencing = silence_cmd.add_parsers(sub)
    from watchdog import ping_cmd, testpage_cmd

    reporting = [*ping_cmd.add_parsers(sub), testpage_cmd.add_parser(sub),
                 migrate_cmd.add_parser(sub)]
    for command in (run, validate, check, status, outbox, schema, *silencing, *reporting):
        command.add_argument("--version", action="version", version=f"pd-watchdog {__version__}")
    return parser


def _outbox_parser(sub: Any) -> argparse.ArgumentParser:
    outbox = sub.add_parser(
        "outbox",
        help="list events waiting for PagerDuty and dead letters; retry or drop them",
        description="List pending events and dead letters (events PagerDuty refused for "
        "good). --retry puts dead letters back into the outbox at their old place; --drop "
        "forgets them. Safe beside a running pd-watchdog.",
    )
    outbox.add_argument("config", metavar="CONFIG")
    outbox.add_argument("--json", action="store_true", help="machine-readable output")
    action = outbox.add_mutually_exclusive_group()
    action.add_argument("--retry", metavar="ID|all", help="send dead letters again")
    action.add_argument("--drop", metavar="ID|all", help="forget dead letters (needs --reason)")
    outbox.add_argument("--reason", help="why they are dropped (logged)")
    outbox.set_defaults(func=cmd_outbox)
    return outbox


def _schema_parser(sub: Any) -> argparse.ArgumentParser:
    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of the config file",
        description="Print the JSON Schema (draft 2020-12) of the config file, made from the "
        "models that validate it (editors: `# yaml-language-server: $schema=...`). "
        "--markdown prints the settings tables of docs/configuration.md instead.",
    )
    schema.add_argument("--markdown", action="store_true",
                        help="the settings tables, as Markdown")
    schema.set_defaults(func=cmd_schema)
    return schema


def load_config(path: str, *, need_key: bool = True) -> Config | None:
    try:
        config = load(path, need_key=need_key)
    except ConfigError as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        print(f"{path}: {plural(len(exc.errors), 'error')}; nothing was started", file=sys.stderr)
        return None
    logs.add_secrets(config.secrets)
    return config


SERVICE_WITHOUT_KEY = (
    "no routing key under systemd: the service runs in dry-run and pages nobody, ever; set "
    "the key (the example config reads PAGERDUTY_ROUTING_KEY, from /etc/pd-watchdog/env) and "
    "restart, or put --dry-run on the ExecStart= line to run dry on purpose"
)


def service_without_key(config: Config, environ: Mapping[str, str] | None = None) -> str | None:
    """As a service, a forgotten key means dry-run forever: one line in a busy journal is
    easy to miss, so say it louder wherever systemd started us (or `systemd-run` did)."""
    env = os.environ if environ is None else environ
    if config.dry_run and (env.get("NOTIFY_SOCKET") or env.get("INVOCATION_ID")):
        return SERVICE_WITHOUT_KEY
    return None


def cmd_validate(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if config is None:
        return 1
    for warning in [*config.warnings, service_without_key(config)]:
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
    print(f"{args.config}: OK, {plural(len(config.checks), 'check')} in "
          f"{plural(len(config.files), 'file')}")
    if args.as_command:
        _leave(0)  # while `config` is still referenced: nothing of it is freed first
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    config = load_config(args.config, need_key=False)
    if config is None:
        return 1
    checks = list(config.checks)
    if args.names:
        known = {check.name for check in checks}
        unknown = [name for name in args.names if name not in known]
        if unknown:
            print(
                f"no such check: {', '.join(unknown)} (see `pd-watchdog validate`)", file=sys.stderr
            )
            return 2
        checks = [check for check in checks if check.name in args.names]
    from watchdog.ping_cmd import bind_to_store

    bind_to_store(checks, config)
    with ThreadPoolExecutor(max_workers=max(1, min(config.workers, len(checks)))) as pool:
        results = list(pool.map(lambda c: run_once(c.probe, c.timeout), checks))
    rows = [("CHECK", "RESULT", "LATENCY", "SUMMARY")]
    for check, result in zip(checks, results, strict=True):
        if result is None:  # a passive check with nothing reported yet
            rows.append((check.name, "PENDING", "-", "nothing to judge yet (no report, not "
                         "yet due)"))
            continue
        label = result_label(result, check.severity)
        rows.append((check.name, label, f"{result.latency * 1000:.0f} ms", result.summary))
    results = [result for result in results if result is not None]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        line = "  ".join(col.ljust(widths[i]) for i, col in enumerate(row[:3])) + "  " + row[3]
        print(logs.mask(line.rstrip(), config.secrets))
    failed = sum(not result.ok for result in results)
    print(f"\n{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def cmd_status(args: argparse.Namespace) -> int:
    from watchdog import status
    from watchdog.config import state_dir_of
    from watchdog.store import Store, StoreError

    try:
        config: Config | None = load(args.config, need_key=False)
    except ConfigError as exc:
        # The runner kept its previous config: its state is what is needed most right now.
        config = None
        print(f"warning: {args.config} does not load ({plural(len(exc.errors), 'error')}; "
              "`pd-watchdog validate` lists them): showing the state as the runner recorded "
              "it, without the config's view of each check", file=sys.stderr)
    state_dir = config.state_dir if config else state_dir_of(args.config)
    secrets = config.secrets if config else frozenset()
    if config:
        logs.add_secrets(secrets)
    try:
        store = Store.for_config(config, readonly=True) if config else None  # a group's too
        data = status.collect(state_dir, config.checks if config else None,
                              windows=config.maintenance if config else (), store=store)
    except StoreError as exc:
        print(f"pd-watchdog status: {exc}", file=sys.stderr)
        return 1
    render = status.render_json if args.json else status.render_table
    print(render(data, secrets))
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    import time

    from watchdog import outbox_cmd
    from watchdog.store import StoreError

    config = load_config(args.config, need_key=False)
    if config is None:
        return 1
    if args.drop and not args.reason:
        print("pd-watchdog outbox: --drop needs --reason TEXT (it is logged)", file=sys.stderr)
        return 2
    logs.setup("INFO")
    try:
        store = outbox_cmd.open_store(config, write=bool(args.retry or args.drop))
        try:
            if args.retry:
                done, skipped = outbox_cmd.retry(store, args.retry)
                for line in skipped:
                    print(line)
                print(f"re-queued {plural(len(done), 'dead letter')}; the runner sends them "
                      "within seconds")
            elif args.drop:
                done = outbox_cmd.drop(store, args.drop, args.reason)
                print(f"dropped {plural(len(done), 'dead letter')}")
            else:
                data = outbox_cmd.collect(store, time.time())
                render = outbox_cmd.render_json if args.json else outbox_cmd.render
                print(render(data, config.secrets))
        finally:
            store.close()
    except (StoreError, ValueError) as exc:
        print(f"pd-watchdog outbox: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from watchdog.config import schema

    sys.stdout.write(schema.markdown() if args.markdown else schema.schema_text())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    logs.setup(args.log_level)
    config = load_config(args.config)
    if config is None:
        return 1
    from watchdog.leadership.member import member_of
    from watchdog.runner import Runner
    from watchdog.store import StoreError

    try:
        # One member of a group (state: postgresql) or one runner: driven the same way.
        runner = (member_of(config, force_dry_run=args.dry_run)
                  or Runner(config, force_dry_run=args.dry_run))
    except StoreError as exc:
        log.error("%s", exc)
        return 1
    runner.install_signal_handlers()
    unmeant = None if args.dry_run else service_without_key(config)
    if unmeant:
        log.warning("%s", unmeant)
    _raise_open_files_limit()
    warning = _open_files_warning(
        resource.getrlimit(resource.RLIMIT_NOFILE)[0], *_sockets_held(config.checks)
    )
    if warning:
        log.warning("%s", warning)
    # The scheduler thread needs the GIL only briefly but on time; with Python's default
    # 5 ms switch interval it waits behind any CPU-bound thread (a /metrics scrape of
    # thousands of series). 0.5 ms measured: 5,000-check lag p99 from ~900 ms to ~30 ms.
    sys.setswitchinterval(0.0005)
    try:
        runner.start()
        runner.loop()
    except StoreError as exc:
        log.error("%s", exc)
        return 1
    finally:
        runner.shutdown()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # Probe threads still inside a timeout must not hold the exit up: state is committed.
    os._exit(0)


OPEN_FILES_WANTED = 65536


def _raise_open_files_limit() -> None:
    """Every running HTTP probe holds a socket, and thousands may run at once on the event
    loop; the usual soft limit of 1024 open files is too few. Raise it toward the hard
    limit (systemd's default hard limit is 524288), as Go programs do at start-up."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = OPEN_FILES_WANTED if hard == resource.RLIM_INFINITY else min(hard, OPEN_FILES_WANTED)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open files limit from %d: %s", soft, exc)


OPEN_FILES_RESERVE = 256  # the state file, the sender's connections, plugins' pipes, logs


def _sockets_held(checks: Iterable[Check], kinds: Mapping[str, Any] | None = None
                  ) -> tuple[int, str]:
    """(sockets the checks may hold at once, what holds them: "5000 HTTP checks"), from each
    probe kind's OPEN_SOCKETS (sockets one running check of that kind may hold)."""
    if kinds is None:
        from watchdog.probes import KINDS as kinds
    counts: dict[str, int] = {}
    for check in checks:
        if kinds[check.kind].OPEN_SOCKETS:
            counts[check.kind] = counts.get(check.kind, 0) + 1
    sockets = sum(kinds[kind].OPEN_SOCKETS * count for kind, count in counts.items())
    holders = (plural(count, f"{kind.upper()} check") for kind, count in counts.items())
    return sockets, ", ".join(holders)


def _open_files_warning(soft: int, sockets: int, holders: str) -> str | None:
    """Every check may be in flight at once (all hanging to their timeout), each holding
    its kind's sockets. Below that, connects fail with "Too many open files" and healthy
    targets page."""
    if soft == resource.RLIM_INFINITY or soft >= sockets + OPEN_FILES_RESERVE:
        return None
    return (
        f"the open files limit ({soft}) is below {holders} ({plural(sockets, 'socket')}) + "
        f"{OPEN_FILES_RESERVE}: if they all hang at once, probes fail with 'Too many open "
        f"files'; raise it (systemd: LimitNOFILE=)"
    )


if __name__ == "__main__":
    sys.exit(main())
