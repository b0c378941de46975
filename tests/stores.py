"""Where a durable-store test keeps its state: the SQLite file of a state_dir, or a fresh
PostgreSQL database of the suite's server (tests/pgserver.py). conftest's `place` fixture
runs a test once on each, so both backends pass the same tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from watchdog.dsn import Dsn
from watchdog.store import Store

SQLITE, POSTGRESQL = "sqlite", "postgresql"
FAILOVER_AFTER = 5.0


@dataclass(frozen=True)
class Place:
    backend: str
    state_dir: str
    dsn: str | None = None

    def open(self, *, readonly: bool = False, cls: type[Store] = Store, **kwargs: Any) -> Store:
        """A new Store (its own connection) on this place."""
        return cls(self.state_dir, readonly=readonly, postgresql=self.target(), **kwargs)

    def target(self) -> Any:
        if self.dsn is None:
            return None
        from watchdog.store.postgres import PgTarget

        return PgTarget(Dsn(self.dsn), failover_after=FAILOVER_AFTER)

    @property
    def spec(self) -> str:
        """One argument for a subprocess to open the same place (open_spec)."""
        return f"{self.state_dir}|{self.dsn or ''}"


def open_spec(spec: str, *, readonly: bool = False) -> Store:
    state_dir, _, dsn = spec.partition("|")
    return Place(POSTGRESQL if dsn else SQLITE, state_dir, dsn or None).open(readonly=readonly)
