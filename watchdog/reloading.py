"""Reading a config for a reload, and where its events go: what SIGHUP needs besides
installing the checks (which the runner does, under its lock)."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from pagerduty_api import Alert, ChangeEvent
from pagerduty_api.base import deadline_session
from watchdog import __version__, logs
from watchdog.config import Config, ConfigError, load
from watchdog.config.reload import keep_running, restart_changes
from watchdog.model import CheckState, Event, Policy
from watchdog.page import enrich
from watchdog.sender import LoggingAlert
from watchdog.state import retrigger
from watchdog.store import StoredCheck
from watchdog.words import plural

if TYPE_CHECKING:
    from watchdog.runner import Runner

log = logging.getLogger("watchdog.runner")

DRY_RUN_TARGET = "dry-run"  # delivery_target() while nothing is sent


def read_reload(current: Config) -> Config | None:
    """The config at current.path, for a reload; None (errors logged) if it is invalid.

    Settings that take a restart keep their running value, with a warning each."""
    try:
        config = load(current.path)
    except ConfigError as exc:
        log.error("reload rejected, still running the previous configuration:")
        for error in exc.errors:
            log.error("  %s", error)
        return None
    logs.add_secrets(config.secrets)
    # The restart-only settings are the ones their model marks so (config/reload.py).
    changes = restart_changes(current.settings, config.settings)
    for change in changes:
        log.warning(
            "reload: %s changed to %s; that takes a restart, keeping %s",
            change.key, change.show(change.new), change.show(change.old),
        )
    if changes:
        settings = keep_running(current.settings, config.settings, changes)
        config = replace(config, settings=settings)
    return config


def make_alert(config: Config, dry_run: bool) -> Alert | LoggingAlert:
    """What sends the events: PagerDuty's client, or a logger in dry-run."""
    if dry_run:
        return LoggingAlert()
    pd = config.pagerduty
    # retry_deadline=0: the sender owns retrying, durably, for as long as it takes. A session
    # of its own: keep-alive, and the whole deadline (without one, each call is a requests.post).
    return Alert(pd.routing_key, api=pd.api, url=pd.url, source=pd.source, retry_deadline=0,
                 session=deadline_session())


def make_changes(config: Config, dry_run: bool) -> ChangeEvent | None:
    """What sends change events: the Change Events API on the events host (EU too), with
    the same key; None in dry-run (the LoggingAlert logs them) and on api v1 (none go)."""
    pd = config.pagerduty
    if dry_run or pd.api != "v2":
        return None
    return ChangeEvent(pd.routing_key, url=pd.url, retry_deadline=0, session=deadline_session())


def delivery_target(config: Config, dry_run: bool) -> str:
    """Where events go, as a digest (the routing key is a secret): stored, so a start or a
    reload can tell that open incidents must be re-sent somewhere new."""
    if dry_run:
        return DRY_RUN_TARGET
    pd = config.pagerduty
    return hashlib.sha256(f"{pd.api}|{pd.url}|{pd.routing_key}".encode()).hexdigest()


def retrigger_open(states: dict[str, CheckState], policies: dict[str, Policy],
                   stored: dict[str, StoredCheck]) -> dict[str, list[Event]]:
    """The events that re-send the trigger of every open incident, by check, for when events
    start going somewhere new; each says the last summary the state file has of its check."""
    resend = {}
    for name, state in states.items():
        row = stored.get(name)
        summary = (row.last_result or {}).get("summary", "failing") if row else "failing"
        events = retrigger(state, policies[name], summary, "re-sent: PagerDuty settings changed")
        if events:
            resend[name] = events
    return resend


def resync_delivery(runner: Runner) -> None:
    """Re-send the trigger of every open incident when events start going somewhere new.

    Events that went to dry-run, or to a key PagerDuty refused, never opened an incident
    there; without this, a check triggered then would stay silent until it recovers.
    """
    target = delivery_target(runner.config, runner.dry_run)
    previous = runner.store.get_meta("delivery_target")
    if previous is not None and previous != target and target != DRY_RUN_TARGET:
        stored = runner.store.load_checks()
        now = time.time()
        with runner._lock:
            resend = retrigger_open(runner.states, runner.policies, stored)
            for name, events in resend.items():
                check = runner.checks[name]
                events = enrich(events, check, runner.states[name], runner.history)
                runner.recorder.record(name, check.fingerprint, check.incident_key,
                                       runner.states[name], None, now, events)
        if resend:
            log.warning(
                "PagerDuty settings changed since these incidents opened: "
                "re-sending the trigger of %d open incidents",
                len(resend),
            )
    with runner._lock:
        runner.recorder.write(lambda: runner.store.set_meta("delivery_target", target))


def reload_runner(runner: Runner) -> bool:
    """A reload the runner was asked for: read the config again and install it (an invalid
    one is rejected and the running one kept); True when installed."""
    config = read_reload(runner.config)
    if config is None:
        return False
    delivery_changed = (
        config.pagerduty != runner.config.pagerduty or config.dry_run != runner.config.dry_run
    )
    if delivery_changed:
        runner.sender.set_alert(*runner._make_alert(config))
        log.info("reload: PagerDuty settings changed")
    for warning in config.warnings:
        log.warning("%s", warning)
    heartbeat_changed = config.heartbeat != runner.config.heartbeat
    runner._apply(config)
    runner.config = config
    runner.scheduler.set_checks(config.checks)
    if heartbeat_changed:
        runner._start_heartbeat(config)
    if delivery_changed:
        runner._resync_delivery()
    if runner.metrics is not None:
        runner.metrics.set_info(__version__, len(runner.checks), runner.dry_run)
    log.info("reload: %s from %s", plural(len(config.checks), "check"),
             plural(len(config.files), "file"))
    return True
