"""Delivers the outbox to PagerDuty: in order per incident key, at least once, through outages.

Each of `lanes` threads owns the incident keys that hash to it (the same crc32 the store
indexes). A lane sends its events one at a time, retrying one until PagerDuty takes it, and
never lets an event overtake an older one of the same key: a resolve never overtakes its
trigger, and a trigger and a resolve that are both queued are both sent. Between keys a page
comes first: a trigger with nothing older of its key pending goes before the lane's other
events (watchdog/retry.py holds that rule and the backoff caps). An event leaves the outbox
only after PagerDuty accepted it (or refused it for good with a 400, which parks it as a
dead letter); a crash in between means it is sent again on the next start, which PagerDuty
de-duplicates by key.

After an outage, the first lane PagerDuty answers again wakes every lane out of its backoff,
and every attempt takes a slot from its routing key's Pacer (watchdog/pacer.py), so a
backlog drains at PagerDuty's rate limit instead of earning 429s.

All waiting happens on these threads: probes only write to the store and call wake().
What the lanes share (their wake-ups, recoveries, stop, the budgets) is in watchdog/lanes.py.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from pagerduty_api._transport import backoff_delay
from pagerduty_api.exceptions import InvalidEventException
from pagerduty_api.retry import is_retryable, is_throttle
from watchdog import memqueue
from watchdog.dryrun import LoggingAlert
from watchdog.events_api import describe_error, send_event
from watchdog.lanes import Lane, LaneSignals, Pacers, Targets
from watchdog.memqueue import MemoryItem, MemoryQueue
from watchdog.model import TRIGGER, Event
from watchdog.pacer import Pace, Pacer
from watchdog.probes._util import fmt_seconds
from watchdog.retry import (
    RESOLVE_BACKOFF_MAX,
    TRIGGER_BACKOFF_MAX,
    is_delivery_error,
    retry_after_of,
    send_order,
)
from watchdog.settle import Settlement
from watchdog.store import DEAD, OutboxItem, Store, StoreError, lane_hash
from watchdog.store import DRY_RUN as STORE_DRY_RUN
from watchdog.store import SENT as STORE_SENT
from watchdog.trouble import Trouble

logger = logging.getLogger("watchdog.sender")

BATCH = 100  # outbox rows a lane reads at a time
IDLE_POLL = 5.0  # seconds a lane sleeps without wake(): a safety net, not the normal path
SETTLE_RETRY = 1.0  # seconds between tries to write delivered events out of the outbox
PAGERDUTY_PACE = Pace()  # ~110 attempts per rolling 61 s per routing key (PagerDuty: ~120/60 s)

SENT = "sent"
RETRY = "retry"
DEAD_LETTER = "dead_letter"
DRY_RUN = "dry_run"
_REREAD = "reread"  # newer events were recorded: read the outbox again before sending on
_STOP = "stop"


class Sender:
    """Drains the store's outbox through an Alert-like object on `lanes` daemon threads.

    `pace` is the attempt budget per routing key (None: unpaced); an alert without a
    `service_key` (the dry run's LoggingAlert) is never paced. `rng` makes the jitter
    reproducible in tests. set_alert() swaps the alert from any thread; each attempt uses the
    alert it began with from its send to its outcome.
    """

    def __init__(
        self,
        store: Store,
        alert: Any,
        changes: Any = None,
        *,
        lanes: int = 4,
        backoff_base: float = 1.0,
        trigger_backoff_max: float = TRIGGER_BACKOFF_MAX,
        resolve_backoff_max: float = RESOLVE_BACKOFF_MAX,
        pace: Pace | None = PAGERDUTY_PACE,
        on_result: Callable[[Event, str], None] | None = None,
        rng: random.Random | None = None,
        settle_retry: float = SETTLE_RETRY,
    ) -> None:
        if lanes < 1:
            raise ValueError(f"lanes must be at least 1, got {lanes}")
        self.store = store
        self._targets = Targets(alert, changes)
        self.lanes = lanes
        self.backoff_base = backoff_base
        self.trigger_backoff_max = trigger_backoff_max
        self.resolve_backoff_max = resolve_backoff_max
        self.pace = pace
        self.on_result = on_result
        self._signals = LaneSignals(lanes)
        self._pacers = Pacers(pace)
        self._threads: list[threading.Thread] = []
        self._random = rng or random.Random()
        self.settle_retry = settle_retry
        self.memory = MemoryQueue()  # events of changes the store could not take
        self.settlement = Settlement(store)
        self._read_trouble = Trouble("sender: reading the outbox", log=logger)

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

    @property
    def alert(self) -> Any:
        """The Alert new attempts go through (change it with set_alert)."""
        return self._targets.alert

    def set_alert(self, alert: Any, changes: Any = None) -> None:
        """Send through `alert` (change events through `changes`, a ChangeEvent) from the
        next attempt on (a reload changed the PagerDuty settings); an attempt in flight
        finishes, and is judged, with the alert it began with."""
        self._targets.set(alert, changes)

    def halt(self) -> None:
        """Every lane stops before its next attempt: a fenced leader must not page."""
        self._signals.stop(0.0)

    def wake(self) -> None:
        """New events were recorded: have lanes look at the outbox now (a trigger may go
        ahead of resolves a lane is waiting to send)."""
        self._signals.wake()

    def stop(self, flush_timeout: float = 5.0) -> int:
        """Stop: lanes keep draining for at most flush_timeout s, then quit; returns pending.

        A lane waiting out a backoff stops at once (its event stays queued, it would likely
        fail again). Never blocks much longer than flush_timeout, even if a request hangs.
        """
        self._signals.stop(flush_timeout)
        for thread in self._threads:
            thread.join(timeout=self._signals.time_left())
        return self.pending_count()

    @property
    def settle_error(self) -> str | None:
        """Why delivered events cannot be taken out of the outbox, while they cannot."""
        return self.settlement.error

    def send_from_memory(self, events: list[Event]) -> list[MemoryItem]:
        """Deliver events the store could not take (see watchdog.memqueue)."""
        items = self.memory.add(events, lambda event: lane_hash(event.incident_key) % self.lanes)
        self.wake()
        return items

    def pending_count(self) -> int:
        """Events in the outbox (all lanes), including any a hung request is still carrying."""
        return int(self.store.outbox_stats(time.time())["pending"])

    # ---------------------------------------------------------------- the lanes

    def _run_lane(self, index: int) -> None:
        """One lane's loop; it never dies of an exception, only of stop()."""
        lane = Lane(index)
        failures = 0
        while not self._signals.out_of_time():
            self._signals.clear(index)  # before reading: a record() after it still wakes us
            if self.settlement:
                self.settlement.settle()
            items, read_failed = self._read_lane(index)
            failures = failures + 1 if read_failed else 0
            try:
                if not self._next(lane, items, read_failed, failures):
                    return
            except Exception:  # a bug here must not silence a lane for the process lifetime
                failures += 1
                logger.exception("sender lane %d: unexpected error; carrying on", index)
                delay = self._backoff(failures, None, self.trigger_backoff_max)
                if not self._signals.pause(delay):
                    return

    def _next(self, lane: Lane, items: list[OutboxItem], read_failed: bool,
              failures: int) -> bool:
        """Send what the lane has next: stored events, else those kept in memory (they are
        newer than any stored event of their key; and when the outbox cannot even be read, a
        page still beats order). False means stop."""
        if items:
            return self._drain(lane, send_order(items))
        held = self.memory.take(lane.index)
        if held is not None:
            return self._deliver_from_memory(lane, held)
        if read_failed:
            return self._signals.pause(self._backoff(failures, None, self.trigger_backoff_max))
        if self._signals.stopping:
            return False
        idle = self.settle_retry if self.settlement else IDLE_POLL
        self._signals.wait(idle, lambda: self._signals.woken(lane.index) or self._signals.stopping)
        return True

    def _read_lane(self, index: int) -> tuple[list[OutboxItem], bool]:
        """The lane's next stored events, less those delivered but not yet settled."""
        unsettled = self.settlement.unsettled()  # before the read: see Settlement.unsettled
        try:
            items = self.store.pending(BATCH, lane=index, lanes=self.lanes)
        except Exception as exc:
            self._read_trouble.fail(str(exc))
            return [], True
        self._read_trouble.clear("")
        return [item for item in items if item.id not in unsettled], False

    def _drain(self, lane: Lane, items: list[OutboxItem]) -> bool:
        """Send items in order until one fails or newer events arrive; False means stop."""
        for item in items:
            if self._signals.out_of_time():
                return False
            if item.id == lane.retry_id:
                if not self._wait_backoff(lane):
                    return False
                if lane.retry_id is not None and time.monotonic() < lane.retry_at:
                    return True  # woken early by new events: read again, they may go first
            outcome = self._attempt(lane, item)
            if outcome == _STOP:
                return False
            if outcome in (RETRY, _REREAD) or self._signals.woken(lane.index):
                return True
        return True

    def _wait_backoff(self, lane: Lane) -> bool:
        """Wait until the lane's retry is due, others saw PagerDuty recover, or new events
        arrive; False means stop."""
        delay, signals = lane.retry_at - time.monotonic(), self._signals
        if delay > 0 and not signals.stopping:
            began = lane.recoveries
            signals.wait(delay, lambda: (
                signals.stopping or signals.recoveries != began or signals.woken(lane.index)))
        if signals.stopping:
            return False
        if signals.recoveries != lane.recoveries:  # another lane got through: so may we
            lane.streak, lane.retry_id = 0, None
        return True

    def _attempt(self, lane: Lane, item: OutboxItem) -> str:
        """One paced attempt at one event: SENT, DEAD_LETTER, RETRY, _REREAD or _STOP."""
        event, alert = item.event, self._targets.of(item.event)  # one for the whole attempt
        pacer = self._pacers.of(alert)
        if pacer is not None and not self._take_slot(lane, pacer):
            return _STOP if self._signals.out_of_time() else _REREAD
        try:
            send_event(alert, event)
        except Exception as exc:
            if is_retryable(exc):
                self._retry_later(lane, item, exc, alert, pacer)
                return RETRY
            reason = describe_error(alert, exc, invalid=isinstance(exc, InvalidEventException))
            self.settlement.settle(item.id, DEAD, reason)
            what = f"{event.action} {event.incident_key} (id {item.id})"
            logger.error("dead letter %s: refused, never to be accepted: %s", what, reason)
            self._report(event, DEAD_LETTER)
            return DEAD_LETTER
        # Accepted. Until the store takes it out, a crash resends it (PagerDuty dedups by key);
        # settling keeps outbox order, so a resend never overtakes a later resolve.
        dry = isinstance(alert, LoggingAlert)
        self.settlement.settle(item.id, STORE_DRY_RUN if dry else STORE_SENT)
        self._accepted(lane, pacer)
        lane.retry_id = None
        if dry:
            self._report(event, DRY_RUN)  # logged by LoggingAlert; nothing was sent
            return SENT
        logger.info("sent %s %s (id %d)", event.action, event.incident_key, item.id)
        self._report(event, SENT)
        return SENT

    def _deliver_from_memory(self, lane: Lane, held: MemoryItem) -> bool:
        """One paced attempt at an event kept in memory; its fate stays on the item (the
        recorder writes it with its change). False means stop."""
        event, alert = held.event, self._targets.of(held.event)  # one for the whole attempt
        pacer = self._pacers.of(alert)
        if pacer is not None and not self._take_slot(lane, pacer):
            self.memory.put_back(held)
            return not self._signals.out_of_time()
        try:
            send_event(alert, event)
        except Exception as exc:
            if not is_retryable(exc):
                reason = describe_error(alert, exc, invalid=isinstance(exc, InvalidEventException))
                self.memory.settle(held, memqueue.DEAD, reason)
                logger.error("dead letter %s %s (not yet recorded): refused: %s",
                             event.action, event.incident_key, reason)
                self._report(event, DEAD_LETTER)
                return True
            self.memory.settle(held, memqueue.QUEUED)
            lane.streak += 1
            cap = self.trigger_backoff_max if event.action == TRIGGER else self.resolve_backoff_max
            delay = self._backoff(lane.streak, retry_after_of(exc), cap)
            logger.warning("retry %s %s (not yet recorded): %s; retrying in %s (attempt %d)",
                           event.action, event.incident_key,
                           describe_error(alert, exc, invalid=False),
                           fmt_seconds(delay), held.attempts)
            self._report(event, RETRY)
            signals, began = self._signals, self._signals.recoveries
            signals.wait(delay, lambda: signals.stopping or signals.recoveries != began)
            return not signals.stopping
        dry = isinstance(alert, LoggingAlert)
        self.memory.settle(held, memqueue.DRY_RUN if dry else memqueue.SENT)
        self._accepted(lane, pacer)
        outcome = DRY_RUN if dry else SENT
        if outcome == SENT:
            logger.info("sent %s %s (from memory: the state store could not record it yet)",
                        event.action, event.incident_key)
        self._report(event, outcome)
        return True

    def _take_slot(self, lane: Lane, pacer: Pacer) -> bool:
        """Wait for a slot in the routing key's budget; False: out of time, or new events
        arrived (the lane reads again, so a new trigger can have the slot)."""
        while not self._signals.out_of_time():
            wait = pacer.reserve()
            if wait <= 0:
                return True
            if self._signals.woken(lane.index):
                return False
            self._signals.wait(wait, lambda: self._signals.woken(lane.index))
        return False

    def _retry_later(
        self, lane: Lane, item: OutboxItem, exc: Exception, alert: Any, pacer: Pacer | None
    ) -> None:
        """Note a failed attempt and when to try again (the lane waits in _wait_backoff)."""
        event = item.event
        lane.streak += 1
        error = describe_error(alert, exc, invalid=False)
        self._note_failure(item.id, error)
        retry_after = retry_after_of(exc)
        if pacer is not None and is_throttle(exc, getattr(alert, "api", None)):
            if retry_after is not None:
                pacer.hold(retry_after)  # PagerDuty asked the whole key to wait
            if pacer.throttled():
                logger.warning(
                    "PagerDuty throttled events faster than our budget; pacing at %d per %g s",
                    pacer.budget,
                    pacer.pace.window,
                )
        cap = self.trigger_backoff_max if event.action == TRIGGER else self.resolve_backoff_max
        delay = self._backoff(lane.streak, retry_after, cap)
        lane.retry_id, lane.retry_at = item.id, time.monotonic() + delay
        lane.recoveries = self._signals.recoveries
        what = f"{event.action} {event.incident_key} (id {item.id})"
        if not is_delivery_error(exc):
            logger.error("sender bug sending %s; treating it as retryable", what, exc_info=True)
        logger.warning("retry %s: %s; retrying in %s (attempt %d)", what, error,
                       fmt_seconds(delay), item.attempts + 1)
        self._report(event, RETRY)

    def _accepted(self, lane: Lane, pacer: Pacer | None) -> None:
        """PagerDuty took an event: one more in its key's budget, and after failures every
        lane backing off retries now, from scratch."""
        if pacer is not None:
            pacer.accepted()
        if lane.streak:
            logger.info("sender lane %d: PagerDuty takes events again; all lanes retry now",
                        lane.index)
            self._signals.recovered()
        lane.streak = 0

    # ------------------------------------------------------------------ helpers

    def _note_failure(self, item_id: int, error: str) -> None:
        try:
            self.store.note_failure(item_id, error)
        except StoreError as exc:  # said by the store's trouble (or a fence): no bug
            logger.warning("cannot note the failure of outbox item %d: %s", item_id, exc)
        except Exception:
            logger.exception("cannot note the failure of outbox item %d", item_id)

    def _report(self, event: Event, outcome: str) -> None:
        if self.on_result is None:
            return
        try:
            self.on_result(event, outcome)
        except Exception:
            logger.exception("on_result callback failed for %s", outcome)

    def _backoff(self, attempts: int, retry_after: float | None, cap: float) -> float:
        """The wait after `attempts` failures in a row (1 or more)."""
        return backoff_delay(
            attempts - 1, self._random.uniform, base=self.backoff_base, cap=cap,
            retry_after=retry_after,
        )
