"""The runner's one way to write state: to the store, or into memory while the store fails.

The rule "a state change and its events are stored together before anything is sent" is
what makes a page survive kill -9. But when the state file cannot be written (the disk is
full, the file system went read-only) that rule would hold every page back, and the disk
filling up is often the very thing someone should be paged for. So a change the store
refuses is kept here, its events go out from memory (watchdog.memqueue), and the change is
written later, in order, with what became of each event (Store.replay): nothing is lost,
nothing recorded is sent twice. While anything is kept here, new changes queue behind it,
so the store never sees a newer change of a key before an older one.

What memory cannot give is durability: a kill -9 or a power cut while changes are kept here
loses them (docs/service.md "Failure modes" says what that means).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from watchdog import memqueue
from watchdog.memqueue import MemoryItem
from watchdog.model import CheckState, Event, ProbeResult
from watchdog.sender import Sender
from watchdog.store import Deferred, Store, StoreError, StoreLocked
from watchdog.trouble import Trouble

log = logging.getLogger("watchdog.runner")

class _Held:
    """A change kept in memory, and the events it handed to the sender."""

    __slots__ = ("name", "fingerprint", "incident_key", "state", "result", "at", "items",
                 "superseded")

    def __init__(self, name: str, fingerprint: str, incident_key: str,
                 state: CheckState | None, result: ProbeResult | None, at: float,
                 items: list[MemoryItem]) -> None:
        self.name, self.fingerprint, self.incident_key = name, fingerprint, incident_key
        self.state, self.result, self.at, self.items = state, result, at, items
        self.superseded = False  # a later change of the same check makes this row moot

    def deferred(self) -> Deferred:
        """As the store takes it; call only once its items are claimed or settled."""
        by_status: dict[str, list[MemoryItem]] = {}
        for item in self.items:
            by_status.setdefault(item.status, []).append(item)
        return Deferred(
            self.name, self.fingerprint, self.incident_key, self.state, self.result, self.at,
            queue=tuple(item.event for item in by_status.get(memqueue.CLAIMED, [])),
            sent=tuple(item.event.action for item in by_status.get(memqueue.SENT, [])),
            dry_run=tuple(item.event.action for item in by_status.get(memqueue.DRY_RUN, [])),
            dead=tuple((item.event, item.reason or "refused")
                       for item in by_status.get(memqueue.DEAD, [])),
        )


class Recorder:
    """Writes the runner's state changes; call with the runner's lock held."""

    def __init__(self, store: Store, sender: Sender, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.sender = sender
        self._clock = clock
        self._held: list[_Held] = []
        self._latest: dict[str, _Held] = {}
        self.writes = Trouble("state store", clock)  # writes refused (full disk, read-only)
        self.files = Trouble("state file", clock)  # deleted/read-only and not written anew

    # --- writing ------------------------------------------------------------------------

    def record(self, name: str, fingerprint: str, incident_key: str, state: CheckState,
               result: ProbeResult | None, at: float, events: Sequence[Event]) -> None:
        """Store a check's new state and queue its events, or keep both in memory."""
        error = self._write(lambda: self.store.record(
            name, fingerprint, incident_key, state, result, at, events
        ))
        if error is not None:
            self._hold(_Held(name, fingerprint, incident_key, state, result, at,
                             self._send_from_memory(events)), error)
        elif events:
            self.sender.wake()

    def record_many(self, changes: Sequence[Deferred]) -> None:
        """record() for many checks in one transaction: a start or a reload that adds
        thousands of checks commits once, not once a check. Refused, each change is kept
        in memory as record() would keep it."""
        if not changes:
            return
        error = self._write(lambda: self.store.replay(changes))
        if error is not None:
            for change in changes:
                self._hold(_Held(change.name, change.fingerprint, change.incident_key,
                                 change.state, change.result, change.at,
                                 self._send_from_memory(change.queue)), error)
        elif any(change.queue for change in changes):
            self.sender.wake()

    def forget(self, name: str, events: Sequence[Event]) -> None:
        """Drop a removed check and queue its last events, or keep both in memory."""
        error = self._write(lambda: self.store.forget(name, events))
        if error is not None:
            self._hold(_Held(name, "", "", None, None, time.time(),
                             self._send_from_memory(events)), error)
        elif events:
            self.sender.wake()

    def queue(self, events: Sequence[Event], meta: dict[str, str] | None = None) -> bool:
        """Queue events of no check's state (change events), with the meta that notes them,
        in one transaction; False when the store refuses: nothing was written, nothing goes
        from memory (they page nobody), and the caller tries again later or lets them go."""
        error = self._write(lambda: self.store.queue(events, meta))
        if error is not None:
            self._failing(error)
            return False
        self.sender.wake()
        return True

    def write(self, what: Callable[[], Any]) -> bool:
        """Any other write (batched results, meta): True if the store took it."""
        error = self._write(what, hold_first=False)
        if error is not None:
            self._failing(error)
        return error is None

    def _write(self, what: Callable[[], Any], *, hold_first: bool = True) -> str | None:
        """None when the store took it, else why not."""
        if hold_first and self._held and not self.flush():
            return self.writes.reason or "older changes are still waiting in memory"
        try:
            what()
        except StoreError as exc:
            return str(exc)
        if not self._held and self.writes.since is not None:
            self.writes.clear("")
        return None

    def _send_from_memory(self, events: Sequence[Event]) -> list[MemoryItem]:
        return self.sender.send_from_memory(list(events)) if events else []

    def _hold(self, held: _Held, error: str) -> None:
        previous = self._latest.get(held.name)
        if previous is not None and not previous.items:
            previous.superseded = True  # only its row was new, and this row replaces it
        self._latest[held.name] = held
        self._held.append(held)
        self._failing(error)

    def flush(self) -> bool:
        """Write what is kept in memory, in order, in one transaction; True when none is left.

        Waits (returns False) while a lane is sending one of its events: what became of that
        event decides whether it joins the outbox or is counted as sent."""
        if not self._held:
            return True
        items = [item for held in self._held for item in held.items]
        if not self.sender.memory.claim(items):
            return False
        changes = [held.deferred() for held in self._held if not held.superseded]
        try:
            self.store.replay(changes)
        except StoreError as exc:
            self.sender.memory.release(items)
            self.sender.wake()  # lanes may have found them claimed, and gone to sleep
            self._failing(str(exc))
            return False
        self.sender.memory.drop(items)
        if any(change.queue for change in changes):
            self.sender.wake()  # their events are in the outbox now
        self._held.clear()
        self._latest.clear()
        self.writes.clear(f"; recorded the {len(changes)} changes kept in memory")
        return True

    # --- the files ----------------------------------------------------------------------

    def check_files(self) -> None:
        """Notice a state file deleted, replaced or made read-only, and write it anew."""
        problems = self.store.file_problems()
        if not problems:
            if self.files.since is not None:
                self.files.clear("")
            return
        try:
            self.store.rebuild()
        except StoreLocked as exc:
            self.files.fail(f"{problems[0]}, and {exc}")
            return
        except StoreError as exc:
            self.files.fail(f"{problems[0]}; {exc}")
            return
        log.warning("%s; wrote it again from the open database: nothing was lost",
                    "; ".join(problems))
        self.files.clear("")

    # --- reporting ----------------------------------------------------------------------

    @property
    def held(self) -> int:
        """State changes kept in memory, not yet in the store."""
        return len(self._held)

    def held_states(self) -> dict[str, dict[str, Any]]:
        """The newest kept state of each check, for `status` (the store has older ones)."""
        out: dict[str, dict[str, Any]] = {}
        for name, held in self._latest.items():
            out[name] = {
                "removed": held.state is None,
                "state": held.state.to_dict() if held.state is not None else None,
                "summary": held.result.summary if held.result is not None else None,
                "ok": held.result.ok if held.result is not None else None,
                "at": held.at,
            }
        return out

    @property
    def trouble(self) -> str | None:
        """Why the runner cannot trust its state file right now; None while all is well."""
        return self.writes.reason or self.files.reason

    def degraded_for(self) -> float | None:
        """Seconds the longest current trouble has lasted, or None while all is well."""
        spans = [span for span in (self.writes.seconds(), self.files.seconds()) if span is not None]
        return max(spans) if spans else None

    def _failing(self, reason: str) -> None:
        counts = self.sender.memory.counts()
        waiting = counts[memqueue.QUEUED] + counts[memqueue.SENDING]
        self.writes.fail(reason, f" ({len(self._held)} changes kept in memory, "
                                 f"{counts[memqueue.SENT]} events sent from memory, {waiting} "
                                 "waiting; pages still go out)")
