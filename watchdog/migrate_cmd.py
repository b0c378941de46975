"""`pd-watchdog migrate-state CONFIG --to postgresql://...`: a runner's SQLite state into a
group's PostgreSQL database, in one transaction.

Everything is copied as it is (store/copy.py), so the first member to lead on PostgreSQL
carries on where the SQLite runner stopped: open incidents stay open under the same keys
(their recovery resolves them, no new trigger), pending events and dead letters keep their
order. Refused while a runner holds the SQLite state (stop it first: it would keep writing
into a copy no one reads), while a member of the group leads on the target, and when the
target already has state (unless --force, which replaces it).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from watchdog import dsn
from watchdog.words import plural


def add_parser(sub: Any) -> argparse.ArgumentParser:
    migrate = sub.add_parser(
        "migrate-state", help="copy the SQLite state of CONFIG into PostgreSQL",
        description="Copy the SQLite state of CONFIG's state_dir (checks, open incidents, "
        "the outbox with its pending events and dead letters, silences, passive reports) "
        "into the PostgreSQL database at --to, in one transaction. Stop the runner first. "
        "Then set state: {postgresql: ...} in CONFIG and start the group's members.")
    migrate.add_argument("config", metavar="CONFIG")
    migrate.add_argument("--to", required=True, metavar="URL",
                         help="postgresql://user@host/db (or ${VAR}: the password is best "
                         "kept in ~/.pgpass or PGPASSWORD)")
    migrate.add_argument("--force", action="store_true",
                         help="replace the state the target already has")
    migrate.set_defaults(func=cmd_migrate_state)
    return migrate


def cmd_migrate_state(args: argparse.Namespace) -> int:
    from watchdog.cli import load_config
    from watchdog.store import StoreError

    url = os.path.expandvars(args.to).strip()
    wrong = dsn.problem(url)
    if wrong:
        print(f"pd-watchdog migrate-state: --to {wrong}", file=sys.stderr)
        return 2
    config = load_config(args.config, need_key=False)
    if config is None:
        return 1
    try:
        return migrate(config, dsn.Dsn(url), force=args.force)
    except StoreError as exc:
        print(f"pd-watchdog migrate-state: {exc}", file=sys.stderr)
        return 1


def migrate(config: Any, url: dsn.Dsn, *, force: bool) -> int:
    from watchdog.store import Store, StoreLocked
    from watchdog.store.api import target_of
    from watchdog.store.copy import copy_state, rows_in, tables_of
    from watchdog.store.postgres import PgTarget

    Store(config.state_dir, readonly=True).close()  # a clear error when there is no state
    with Store(config.state_dir) as source:
        try:
            source.lock()
        except StoreLocked as exc:
            print(f"pd-watchdog migrate-state: {exc}: stop that runner first (its state "
                  "would go on changing after the copy)", file=sys.stderr)
            return 1
        configured = target_of(config)
        lock = configured.lock if configured is not None else "pd-watchdog"
        with Store(config.state_dir, postgresql=PgTarget(url, lock=lock)) as target:
            if not target.try_lock():
                print(f"pd-watchdog migrate-state: a member of group {lock!r} is running on "
                      f"{url} ({target.lock_holder()}); stop the group first",
                      file=sys.stderr)
                return 1
            tables = tables_of(source)
            present = rows_in(target, tables)
            if present and not force:
                held = ", ".join(f"{table} {count}" for table, count in present.items())
                print(f"pd-watchdog migrate-state: {url} already has state ({held}); "
                      "nothing was copied. Add --force to replace it", file=sys.stderr)
                return 1
            open_incidents = sum(stored.state.triggered
                                 for stored in source.load_checks().values())
            copied = copy_state(source, target, replace=force)
    print(summary(config.state_dir, url, copied, open_incidents, replaced=bool(present)))
    return 0


def summary(state_dir: str, url: dsn.Dsn, copied: dict[str, int], open_incidents: int,
            *, replaced: bool) -> str:
    """What was copied, in words, and what to do next."""
    parts = [
        f"{plural(copied.get('checks', 0), 'check')} ({open_incidents} with an open "
        "incident)",
        f"{plural(copied.get('outbox', 0), 'pending event')}",
        f"{plural(copied.get('dead_letters', 0), 'dead letter')}",
        f"{plural(copied.get('silences', 0), 'silence')}",
        f"{plural(copied.get('passive', 0), 'passive record')}",
    ]
    named = {"checks", "outbox", "dead_letters", "silences", "passive"}
    parts += [f"{table} {count}" for table, count in copied.items()
              if table not in named and count]
    verb = "replaced the state at" if replaced else "copied to"
    return (f"{verb} {url}: " + ", ".join(parts) + f".\nNext: set state: {{postgresql: ...}} "
            f"in the config and start the members; {state_dir} is left as it was (do not "
            "start a runner on it again).")
