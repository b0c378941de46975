"""A group: its name (the lock), how soon a lost leader is given up on, this member's name,
and the group's store, opened without the lock (the member takes it when it can)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

from watchdog.config import Config

DEFAULT_FAILOVER_AFTER = 10.0


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


@dataclass(frozen=True)
class Group:
    """The group this member belongs to (config `state:`), and the pace that follows."""

    name: str
    failover_after: float
    member: str

    @property
    def poll(self) -> float:
        """Seconds between two tries at the lock while waiting: a takeover costs at most one."""
        return _clamp(self.failover_after / 10, 0.05, 1.0)

    @property
    def lease_check(self) -> float:
        """Seconds between two checks that the leader still holds the lock."""
        return _clamp(self.failover_after / 4, 0.05, 2.5)

    @property
    def reconnect_max(self) -> float:
        """The longest wait between two tries to reach PostgreSQL."""
        return _clamp(self.failover_after, 0.5, 10.0)


def state_of(config: Config) -> Any | None:
    """The config's `state:` section when it names a PostgreSQL, else None (SQLite)."""
    state = getattr(config.settings, "state", None)
    return state if state is not None and getattr(state, "postgresql", None) else None


def group_of(config: Config) -> Group | None:
    """The group config asks this runner to be a member of, or None (one runner, SQLite)."""
    state = state_of(config)
    if state is None:
        return None
    failover = getattr(state, "failover_after", None) or DEFAULT_FAILOVER_AFTER
    member = getattr(state, "member", None) or f"{socket.gethostname()}:{os.getpid()}"
    return Group(str(state.lock), float(failover), str(member))


def open_store(config: Config, group: Group) -> Any:
    """The group's Store on PostgreSQL, connected and migrated, *not* holding the lock (the
    member takes it with try_lock()); StoreError when the server cannot be reached."""
    from watchdog.store import Store

    return Store.for_config(config, member=group.member)
