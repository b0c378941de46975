"""What a load gives the runner: a Config of plain, immutable, resolved values."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from watchdog.config.listen import Address
from watchdog.config.models import MAX_INCIDENT_KEY_CHARS, PushSettings, Settings
from watchdog.holds import Window
from watchdog.model import Check

DRY_RUN_WARNING = "no routing key: running in dry-run, events are logged, not sent"


@dataclass(frozen=True)
class PagerDutySettings:
    """Where events go, resolved (the key read from its file, the hostname as source).
    routing_key "" means dry-run (events are logged, not sent)."""

    routing_key: str
    api: str
    url: str
    source: str


@dataclass(frozen=True)
class Heartbeat:
    """A dead-man's switch the runner pings every `interval` so someone notices it died."""

    url: str
    interval: float
    timeout: float


@dataclass(frozen=True)
class Config:
    """A fully validated config; `files` lists every file read, main first (absolute).

    `settings` is the main file's settings as validated (models.Settings), with state_dir
    resolved to an absolute path; the runner compares them on reload (config/reload.py).
    """

    path: str
    files: tuple[str, ...]
    settings: Settings
    pagerduty: PagerDutySettings
    checks: tuple[Check, ...]
    heartbeat: Heartbeat | None
    secrets: frozenset[str]
    warnings: tuple[str, ...]
    maintenance: tuple[Window, ...] = ()

    @property
    def dry_run(self) -> bool:
        return self.pagerduty.routing_key == ""

    @property
    def state_dir(self) -> str:
        return self.settings.state_dir or ""

    @property
    def workers(self) -> int:
        return self.settings.workers

    @property
    def metrics_listen(self) -> Address | None:
        metrics = self.settings.metrics
        return metrics.listen if metrics is not None else None

    @property
    def push(self) -> PushSettings | None:
        return self.settings.push


def default_incident_key(source: str, name: str) -> str:
    """The incident key of a check that names none: stable across restarts and reorderings.

    Depends only on source and name, so renaming a check opens a new incident and a
    still-open old one must be resolved by whoever renamed it.
    """
    key = f"pd-watchdog/{source}/{name}"
    if len(key) <= MAX_INCIDENT_KEY_CHARS:
        return key
    digest = hashlib.sha256(f"{source}/{name}".encode("utf-8", "surrogatepass")).hexdigest()
    return "pd-watchdog/" + digest
