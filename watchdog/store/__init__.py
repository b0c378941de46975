"""The runner's memory (being split into modules; see api.py)."""

from watchdog.store.api import (
    BUSY_TIMEOUT_MS,
    DB_NAME,
    DEAD,
    DRY_RUN,
    LOCK_NAME,
    SCHEMA_VERSION,
    SENT,
    Deferred,
    OutboxItem,
    Store,
    StoredCheck,
    StoreError,
    StoreLocked,
    lane_hash,
)

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
