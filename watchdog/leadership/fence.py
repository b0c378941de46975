"""Fencing: a leader that cannot commit must neither record nor page.

Fence latches the first reason this term may no longer write or send. FencedStore is the
term's store: once fenced every call but close() fails, and any failure of the real store
(a statement that fails, a lost connection file_problems() reports) fences. Tripping it
halts the term's sender (Sender.halt: every lane stops before its next attempt), so no
event goes out after the connection is known lost. LeaseWatch asks the server every few
seconds whether the lock is still ours, so a connection that died quietly is noticed even
while nothing else is written, and within its own deadline if the server stops answering.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from watchdog.store import StoreError

log = logging.getLogger("watchdog.leadership")

# What a fenced store still answers: closing it, and plain attributes.
_UNGUARDED = frozenset({"close"})


class Fence:
    """The first reason this term must stop; `on_trip` runs once, on the tripping thread."""

    def __init__(self, on_trip: Callable[[str], None]) -> None:
        self._reason: str | None = None
        self._lock = threading.Lock()
        self._on_trip = on_trip

    def reason(self) -> str | None:
        """Why this term may no longer record or send; None while it may."""
        return self._reason

    def trip(self, reason: str) -> None:
        with self._lock:
            if self._reason is not None:
                return
            self._reason = reason
        self._on_trip(reason)


class FencedStore:
    """A Store whose every call fails once the fence tripped, and trips it on any failure."""

    def __init__(self, store: Any, fence: Fence) -> None:
        self._store = store
        self._fence = fence

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._store, name)
        if name in _UNGUARDED or not callable(value):
            return value
        fence = self._fence

        def guarded(*args: Any, **kwargs: Any) -> Any:
            reason = fence.reason()
            if reason:
                raise StoreError(f"not leading any more: {reason}")
            try:
                result = value(*args, **kwargs)
            except Exception as exc:
                fence.trip(f"a statement failed ({exc})")
                raise
            if name == "file_problems" and result:
                fence.trip("; ".join(result))
            return result

        return guarded


class LeaseWatch:
    """Every `period` seconds, whether the store still holds the group's lock; else fence.

    Each question has a deadline of our own (`deadline` seconds): a server that stops
    answering while its kernel still acknowledges (the process stopped, its storage hung)
    defeats TCP's timeouts, and the statement timeout is the server's to enforce, so
    without one a leader would wait on it forever, still leading in its own eyes."""

    def __init__(self, store: Any, fence: Fence, period: float, deadline: float) -> None:
        self._store = store
        self._fence = fence
        self.period = period
        self.deadline = deadline
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pd-lease", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=self.period + 1.0)

    def _run(self) -> None:
        while not self._stopped.wait(self.period) and self._fence.reason() is None:
            overdue = threading.Timer(self.deadline, self._overdue)
            overdue.daemon = True
            overdue.start()
            try:
                problems = self._store.file_problems()
                held = not problems and self._store.holds_lock()
            except Exception as exc:
                self._fence.trip(f"lost the connection to PostgreSQL ({exc})")
                return
            finally:
                overdue.cancel()
            if problems:
                self._fence.trip("; ".join(problems))
            elif not held:
                self._fence.trip("the group's lock is no longer held by this session")

    def _overdue(self) -> None:
        self._fence.trip(f"PostgreSQL has not answered for {self.deadline:g}s")
