"""The runner's memory: check states and the outbox of PagerDuty events, in one SQLite file
(or, for a group of runners, one PostgreSQL database).

A state change and the events it causes are written in one transaction, so after a kill -9
or a reboot either both are there (and the sender will deliver the events) or neither is
(and the check is simply judged again). Events leave the outbox only once PagerDuty accepted
them (mark_sent) or refused them for good (dead_letter).

The package, one way (each module imports only those above it):
- records.py, errors.py: the plain data and the exceptions (no database in them);
- schema.py: the schema versions and the statements that bring a database to each;
- tables.py: the statements on the tables, written against a DB-API connection;
- sqlite_open.py, lockfile.py, sqlite.py: the SQLite side: opening, WAL, integrity,
  migrating, the run lock, file health and rebuild, and the lock that makes one connection
  safe for every thread (`SqliteFile`);
- pgsql.py, postgres.py: the PostgreSQL side (issue 16). pgsql.py translates the SQLite
  statements and schema steps (placeholders, types) in one place; postgres.py's
  `PgDatabase` offers what `Store` uses of `SqliteFile` (db, locked, transaction, the run
  lock as the group's advisory lock, file_problems...). `Store(state_dir,
  postgresql=PgTarget(...))` or `Store.for_config(config)` picks it; the transactions and
  the tests are the same;
- api.py: `Store`, which runs each of its transactions through `SqliteFile` (or
  `PgDatabase`) with statements from tables.py.
"""

from watchdog.store.api import Store
from watchdog.store.errors import StoreError, StoreLocked
from watchdog.store.lockfile import LOCK_NAME
from watchdog.store.records import (
    DEAD,
    DRY_RUN,
    SENT,
    Deferred,
    OutboxItem,
    StoredCheck,
    lane_hash,
)
from watchdog.store.schema import SCHEMA_VERSION
from watchdog.store.sqlite_open import BUSY_TIMEOUT_MS, DB_NAME

__all__ = [
    "BUSY_TIMEOUT_MS",
    "DB_NAME",
    "DEAD",
    "DRY_RUN",
    "LOCK_NAME",
    "SCHEMA_VERSION",
    "SENT",
    "Deferred",
    "OutboxItem",
    "Store",
    "StoreError",
    "StoreLocked",
    "StoredCheck",
    "lane_hash",
]
