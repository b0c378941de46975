"""Delivers the outbox to PagerDuty: in order per incident key, at least once, through outages.

Each of `lanes` threads owns the incident keys that hash to it (the same crc32 the store
indexes) and sends its events strictly in outbox order, retrying the event at its head until
PagerDuty takes it. So a resolve never overtakes its trigger, and a trigger and a resolve that
are both queued are both sent. An event leaves the outbox only after PagerDuty accepted it
(or refused it for good with a 400, which parks it as a dead letter); a crash in between
means it is sent again on the next start, which PagerDuty de-duplicates by key.

All waiting happens on these threads: probes only write to the store and call wake().
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from pagerduty_api.exceptions import (
    IncidentKeyException,
    InvalidEventException,
    PagerDutyAPIServerException,
)
from watchdog import memqueue
from watchdog.memqueue import MemoryItem, MemoryQueue
from watchdog.model import RESOLVE, TRIGGER, Event
from watchdog.store import OutboxItem, Store, lane_hash

logger = logging.getLogger("watchdog.sender")

CLIENT_NAME = "pd-watchdog"
BATCH = 100  # outbox rows a lane reads at a time
IDLE_POLL = 5.0  # seconds a lane sleeps without wake(): a safety net, not the normal path
SETTLE_RETRY = 1.0  # seconds between tries to write delivered events out of the outbox
COMPLAIN_EVERY = 60.0  # seconds between two log lines about the same store trouble
MAX_ERROR_CHARS = 500  # of an error kept in the outbox / a dead letter's reason

SENT = "sent"
RETRY = "retry"
DEAD_LETTER = "dead_letter"
DRY_RUN = "dry_run"


class LoggingAlert:
    """Dry-run stand-in for pagerduty_api.Alert: logs what would be sent, sends nothing."""

    def trigger(
        self,
        description: str,
        incident_key: str | None = None,
        client: str | None = None,
        client_url: str | None = None,
        details: dict[str, Any] | None = None,
        *,
        severity: str | None = None,
        source: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Log the trigger at WARNING (dry runs should be noticed) and pretend it went out."""
        logger.warning(
            "dry-run: would trigger %s: %s (%s, %s)", incident_key, description, severity, source
        )
        return {"status": "dry-run"}

    def resolve(
        self,
        incident_key: str | None = None,
        description: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Log the resolve at WARNING and pretend it went out."""
        logger.warning("dry-run: would resolve %s: %s", incident_key, description)
        return {"status": "dry-run"}


class _Stopped(Exception):
    """The lane was told to stop while it waited; its event stays in the outbox."""


class Sender:
    """Drains the store's outbox through an Alert-like object on `lanes` daemon threads."""

    def __init__(
        self,
        store: Store,
        alert: Any,
        *,
        lanes: int = 4,
        backoff_base: float = 1.0,
        backoff_max: float = 300.0,
        settle_retry: float = SETTLE_RETRY,
        on_result: Callable[[Event, str], None] | None = None,
    ) -> None:
        if lanes < 1:
            raise ValueError(f"lanes must be at least 1, got {lanes}")
        self.store = store
        self.alert = alert
        self.lanes = lanes
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.settle_retry = settle_retry
        self.on_result = on_result
        self._wakes = [threading.Event() for _ in range(lanes)]
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._deadline: float | None = None  # monotonic; set by stop()
        self._random = random.Random()
        self.memory = MemoryQueue()
        # Outbox items delivered (None) or refused (reason) whose removal from the outbox the
        # store could not write yet; lanes skip them, and every settle retries them first.
        self._unsettled: dict[int, str | None] = {}
        self._settle_lock = threading.Lock()
        self.settle_error: str | None = None  # why the store did not take the last settle
        self._complained: dict[str, float] = {}
        self._complain_lock = threading.Lock()

    # --------------------------------------------------------------- public API

    def start(self) -> None:
        """Start the lane threads (daemons: a hung request never keeps the process alive)."""
        if self._threads:
            raise RuntimeError("Sender already started")
        for lane in range(self.lanes):
            thread = threading.Thread(
                target=self._run_lane, args=(lane,), name=f"pd-sender-{lane}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def wake(self) -> None:
        """New events were recorded: have idle lanes look at the outbox now."""
        for event in self._wakes:
            event.set()

    def stop(self, flush_timeout: float = 5.0) -> int:
        """Stop: lanes keep draining for at most flush_timeout s, then quit; returns pending.

        A lane waiting out a backoff stops at once (its event stays queued, it would likely
        fail again). Never blocks much longer than flush_timeout, even if a request hangs.
        """
        self._deadline = time.monotonic() + max(0.0, flush_timeout)
        self._stopping.set()
        self.wake()
        for thread in self._threads:
            thread.join(timeout=max(0.0, self._deadline - time.monotonic()))
        return self.pending_count()

    def send_from_memory(self, events: list[Event]) -> list[MemoryItem]:
        """Deliver events the store could not take (see watchdog.memqueue)."""
        items = self.memory.add(events, lambda event: lane_hash(event.incident_key) % self.lanes)
        self.wake()
        return items

    def pending_count(self) -> int:
        """Events in the outbox (all lanes), including any a hung request is still carrying."""
        return int(self.store.outbox_stats(time.time())["pending"])

    # ---------------------------------------------------------------- the lanes

    def _run_lane(self, lane: int) -> None:
        """One lane's loop; it never dies of an exception, only of stop()."""
        failures = 0
        while not self._out_of_time():
            wake = self._wakes[lane]
            wake.clear()  # before reading, so a record() after the read still wakes us
            if self._unsettled:
                self._settle()
            items, read_failed = self._read_lane(lane)
            failures = failures + 1 if read_failed else 0
            try:
                if items:
                    for item in items:
                        if self._out_of_time():
                            return
                        self._deliver(lane, item)
                    continue
                # Events kept in memory are newer than any stored event of their key; and
                # when the outbox cannot even be read, a page still beats order.
                held = self.memory.take(lane)
                if held is not None:
                    self._deliver_from_memory(held)
                elif read_failed:
                    if not self._pause(self._backoff(failures, None)):
                        return
                elif self._stopping.is_set():
                    return
                else:
                    wake.wait(self.settle_retry if self._unsettled else IDLE_POLL)
            except _Stopped:
                return
            except Exception:  # a bug here must not silence a lane for the process lifetime
                failures += 1
                logger.exception("sender lane %d: unexpected error; carrying on", lane)
                if not self._pause(self._backoff(failures, None)):
                    return

    def _read_lane(self, lane: int) -> tuple[list[OutboxItem], bool]:
        """The lane's next stored events, less those delivered but not yet settled."""
        with self._settle_lock:
            # Before reading: any lane may settle these meanwhile, and then they leave the
            # outbox; one settled after the read is still skipped (a copy taken after the
            # read could miss it and send it again).
            unsettled = set(self._unsettled)
        try:
            items = self.store.pending(BATCH, lane=lane, lanes=self.lanes)
        except Exception as exc:
            self._complain("read", f"cannot read the outbox: {exc}")
            return [], True
        return [item for item in items if item.id not in unsettled], False

    def _deliver_from_memory(self, held: MemoryItem) -> None:
        """One attempt at an event kept in memory; its fate is kept on the item."""
        event = held.event
        try:
            self._send(event)
        except Exception as exc:
            if _is_refusal(exc):
                reason = self._describe(exc, invalid=isinstance(exc, InvalidEventException))
                self.memory.settle(held, memqueue.DEAD, reason)
                logger.error("dead letter %s %s (not yet recorded): refused: %s",
                             event.action, event.incident_key, reason)
                self._report(event, DEAD_LETTER)
                return
            self.memory.settle(held, memqueue.QUEUED)
            delay = self._backoff(held.attempts, getattr(exc, "retry_after", None))
            logger.warning("retry %s %s (not yet recorded): attempt %d failed: %s; next try "
                           "in %.2f s", event.action, event.incident_key, held.attempts,
                           self._describe(exc, invalid=False), delay)
            self._report(event, RETRY)
            if not self._pause(delay):
                raise _Stopped from None
            return
        self.memory.settle(held, memqueue.SENT)
        if isinstance(self.alert, LoggingAlert):
            self._report(event, DRY_RUN)
            return
        logger.info("sent %s %s (from memory: the state store could not record it yet)",
                    event.action, event.incident_key)
        self._report(event, SENT)

    def _deliver(self, lane: int, item: OutboxItem) -> None:
        """Send one event until PagerDuty takes or refuses it; raises _Stopped on stop()."""
        attempts = item.attempts
        event = item.event
        while True:
            try:
                self._send(event)
            except Exception as exc:
                if not _is_refusal(exc):
                    attempts = self._retry_later(item, attempts, exc)
                    continue
                reason = self._describe(exc, invalid=isinstance(exc, InvalidEventException))
                self._settle(item.id, reason)
                logger.error(
                    "dead letter %s %s (id %d): refused, never to be accepted: %s",
                    event.action,
                    event.incident_key,
                    item.id,
                    reason,
                )
                self._report(event, DEAD_LETTER)
                return
            # Accepted. Until the store takes it out, a crash resends it (PagerDuty dedups by
            # key); settling keeps the outbox's order, so a resend never overtakes a resolve.
            self._settle(item.id, None)
            if isinstance(self.alert, LoggingAlert):
                self._report(event, DRY_RUN)  # logged by LoggingAlert; nothing was sent
                return
            logger.info("sent %s %s (id %d)", event.action, event.incident_key, item.id)
            self._report(event, SENT)
            return

    def _retry_later(self, item: OutboxItem, attempts: int, exc: Exception) -> int:
        """Note a failed attempt and wait out the backoff; raises _Stopped on stop()."""
        event = item.event
        attempts += 1
        error = self._describe(exc, invalid=False)
        self._note_failure(item.id, error)
        delay = self._backoff(attempts, getattr(exc, "retry_after", None))
        if not _is_delivery_error(exc):
            logger.error(
                "sender bug sending %s %s (id %d); treating it as retryable",
                event.action,
                event.incident_key,
                item.id,
                exc_info=True,
            )
        logger.warning(
            "retry %s %s (id %d): attempt %d failed: %s; next try in %.2f s",
            event.action,
            event.incident_key,
            item.id,
            attempts,
            error,
            delay,
        )
        self._report(event, RETRY)
        if self._stopping.is_set() or not self._pause(delay):
            raise _Stopped from None
        return attempts

    def _send(self, event: Event) -> Any:
        if event.action == TRIGGER:
            return self.alert.trigger(
                description=event.summary,
                incident_key=event.incident_key,
                details=event.details,
                client=CLIENT_NAME,
                severity=event.severity,
                source=event.source,
            )
        if event.action == RESOLVE:
            return self.alert.resolve(
                incident_key=event.incident_key, description=event.summary, details=event.details
            )
        raise InvalidEventException(
            f"unknown event action {event.action!r}", errors=[f"unknown action {event.action!r}"]
        )

    # ------------------------------------------------------------------ helpers

    def _settle(self, item_id: int | None = None, reason: str | None = None) -> bool:
        """Take a delivered item out of the outbox (reason: refused, a dead letter).

        What the store cannot take now (a full disk) is kept here, skipped by the lanes, and
        written with the next settle that works, all in one transaction in outbox order."""
        with self._settle_lock:
            if item_id is not None:
                self._unsettled[item_id] = reason
            if not self._unsettled:
                return True
            outcomes = sorted(self._unsettled.items())
            try:
                self.store.settle(outcomes)
            except Exception as exc:
                self.settle_error = str(exc)
                self._complain("settle", f"cannot update the outbox; {len(outcomes)} delivered "
                               f"events kept in memory until it can: {exc}")
                return False
            self._unsettled.clear()
            if self.settle_error is not None:
                self.settle_error = None
                logger.info("sender: the outbox is updated again (%d delivered events settled)",
                            len(outcomes))
            return True

    def _complain(self, kind: str, message: str) -> None:
        """One line per kind of trouble per COMPLAIN_EVERY seconds, not one per attempt."""
        now = time.monotonic()
        with self._complain_lock:
            last = self._complained.get(kind)
            if last is not None and now - last < COMPLAIN_EVERY:
                return
            self._complained[kind] = now
        logger.error("sender: %s", message)

    def _note_failure(self, item_id: int, error: str) -> None:
        try:
            self.store.note_failure(item_id, error)
        except Exception:
            logger.exception("cannot note the failure of outbox item %d", item_id)

    def _report(self, event: Event, outcome: str) -> None:
        if self.on_result is None:
            return
        try:
            self.on_result(event, outcome)
        except Exception:
            logger.exception("on_result callback failed for %s", outcome)

    def _backoff(self, attempts: int, retry_after: Any) -> float:
        """Full jitter: uniform(0, min(max, base * 2**(attempts-1))), at least Retry-After."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** min(max(attempts - 1, 0), 60))
        delay = self._random.uniform(0.0, ceiling)
        if isinstance(retry_after, int | float) and retry_after > delay:
            delay = float(retry_after)
        return delay

    def _pause(self, delay: float) -> bool:
        """Wait delay seconds unless stop() comes first; False means stop."""
        if self._stopping.is_set():
            return False
        return not self._stopping.wait(delay)

    def _out_of_time(self) -> bool:
        deadline = self._deadline
        return deadline is not None and time.monotonic() >= deadline

    def _describe(self, exc: BaseException, *, invalid: bool) -> str:
        if invalid:
            # The client's message carries PagerDuty's errors and, for a key of the wrong
            # kind, the hint that says so; the operator needs both.
            text = str(exc) or "; ".join(str(error) for error in getattr(exc, "errors", []))
        else:
            text = f"{type(exc).__name__}: {exc}"
        key = getattr(self.alert, "service_key", None)
        if isinstance(key, str) and key:
            text = text.replace(key, "***")
        return text[:MAX_ERROR_CHARS]


# Refusals that no retry can fix: PagerDuty's 400, or the client refusing before sending
# (a key or value it knows PagerDuty would reject). These go to the dead letters.
_REFUSALS = (InvalidEventException, IncidentKeyException, ValueError, TypeError)


def _is_refusal(exc: BaseException) -> bool:
    # requests' InvalidURL is also a ValueError, but it is about transport, not the event.
    return isinstance(exc, _REFUSALS) and not isinstance(exc, requests.RequestException)


def _is_delivery_error(exc: BaseException) -> bool:
    """PagerDuty or the network said no (expected), as opposed to a bug in our code."""
    return isinstance(exc, PagerDutyAPIServerException | requests.RequestException | OSError)
