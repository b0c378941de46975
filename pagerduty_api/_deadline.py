"""One deadline per request: connect, send and the whole answer within `timeout` seconds.

urllib3's timeouts bound each socket operation, so a server that trickles a byte at a time
holds a request (and the sender lane behind it) for as long as it likes. A `Deadline` is a
urllib3 `Timeout` whose connect and read timeouts are the time left; when the time is up, one
shared thread shuts the request's socket down, which ends any read in progress at once.

It reaches the socket through the pools of `DeadlineAdapter` while the status line and headers
arrive, and through the answer (urllib3's `HTTPResponse.shutdown()`) once it has begun, so the
body is cut on any adapter. Not cut: a TLS handshake and a proxy's CONNECT answer, whose reads
are each bounded by the time left when connecting; name lookups are the system resolver's.
"""

from __future__ import annotations

# Standard library imports
import contextlib
import functools
import heapq
import itertools
import math
import socket
import threading
import time
from types import TracebackType
from typing import Any

# Third party package imports
import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Timeout

MIN_SOCKET_TIMEOUT = 0.001  # seconds: a socket timeout of 0 would mean "non-blocking"
ANSWER_BYTES_LIMIT = 65_536  # PagerDuty answers in ~100 bytes; more is not worth holding
CHUNK_BYTES = 8192


class Deadline(Timeout):
    """`seconds` from now for the whole request; use as a context manager around it.

    urllib3 clones its timeout for each use: clones share the end time and the cutter.
    """

    def __init__(
        self, seconds: float, *, _end: float | None = None, _cutter: _Cutter | None = None
    ) -> None:
        super().__init__(connect=seconds, read=seconds)
        self.seconds = seconds
        self.end = time.monotonic() + seconds if _end is None else _end
        self._cutter = _Cutter(self.end, _REAPER) if _cutter is None else _cutter

    def clone(self) -> Deadline:
        return Deadline(self.seconds, _end=self.end, _cutter=self._cutter)

    def remaining(self) -> float:
        """Seconds left, never below 0."""
        return max(0.0, self.end - time.monotonic())

    @property
    def connect_timeout(self) -> float:  # type: ignore[override]
        return max(self.remaining(), MIN_SOCKET_TIMEOUT)

    @property
    def read_timeout(self) -> float:  # type: ignore[override]
        return self.remaining()  # 0 once passed: urllib3 then raises its read timeout itself

    @property
    def cut(self) -> bool:
        """The deadline passed in flight: the socket was shut down, the answer may be partial."""
        return self._cutter.fired

    @property
    def expired(self) -> bool:
        """Cut, or out of time (a socket timeout may beat the cut to it)."""
        return self.cut or self.remaining() == 0

    def watch_connection(self, connection: Any) -> None:
        """Cut this urllib3 connection's socket at the end (while sending and reading headers)."""
        self._cutter.watch(connection=connection)

    def watch_answer(self, answer: Any) -> None:
        """Cut through this urllib3 answer from now on (while reading the body)."""
        self._cutter.watch(answer=answer)

    def forget(self) -> None:
        """Stop watching: the connection may go back to the pool and serve another request."""
        self._cutter.watch()

    def timeout_error(self) -> requests.Timeout:
        return requests.Timeout(
            f"no complete answer within the {self.seconds} s timeout "
            "(connect, send and read it all)"
        )

    def __enter__(self) -> Deadline:
        self._cutter.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._cutter.stop()


class _Cutter:
    """Shuts down the watched socket when the deadline passes, unless stopped first."""

    def __init__(self, end: float, reaper: _Reaper) -> None:
        self.end = end
        self._reaper = reaper
        self._lock = threading.Lock()
        self._connection: Any = None
        self._answer: Any = None
        self.stopped = False
        self.fired = False

    def start(self) -> None:
        self._reaper.add(self)

    def stop(self) -> None:
        with self._lock:
            self.stopped = True
            self._connection = self._answer = None
        self._reaper.done()

    def watch(self, connection: Any = None, answer: Any = None) -> None:
        with self._lock:
            self._connection, self._answer = connection, answer
            if self.fired:  # already late: whatever comes next must not wait
                self._shut()

    def fire(self) -> None:
        with self._lock:
            if self.stopped:
                return
            self.fired = True
            self._shut()

    def _shut(self) -> None:
        if self._answer is not None:
            # urllib3 >= 2.3; it refuses (RuntimeError) once the connection went back to the
            # pool, so a connection serving another request is never cut.
            with contextlib.suppress(AttributeError, ValueError, RuntimeError, OSError):
                self._answer.shutdown()
            return
        sock = getattr(self._connection, "sock", None)
        if sock is not None:
            # The plain socket's shutdown, also under TLS: it only touches the descriptor.
            with contextlib.suppress(OSError):  # already closed
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Reaper:
    """One thread for every deadline: it sleeps until the earliest and cuts it if still live.

    A thread per request would cost more than the request (~1.5 ms on a 2-core machine);
    this one starts on demand and ends once no request has been in flight for IDLE_SECONDS
    (noticed at the next deadline it wakes for, so at most one timeout after the last one).
    """

    IDLE_SECONDS = 1.0

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Cutter]] = []
        self._order = itertools.count()  # ties in the heap never compare cutters
        self._live = 0  # started and not stopped
        self._wakes_at = math.inf
        self._thread: threading.Thread | None = None
        self.idling = False  # nothing in flight: the thread ends unless a deadline comes

    def add(self, cutter: _Cutter) -> None:
        with self._cond:
            heapq.heappush(self._heap, (cutter.end, next(self._order), cutter))
            self._live += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="pagerduty-deadline", daemon=True
                )
                self._thread.start()
            elif cutter.end < self._wakes_at:
                self._cond.notify()

    def done(self) -> None:
        # No wake-up here: that would cost each request a thread switch (~0.3 ms). Stopped
        # cutters leave the heap when the thread next wakes, at most one timeout later.
        with self._cond:
            self._live -= 1

    def _run(self) -> None:
        while True:
            with self._cond:
                due = self._pop_due()
                if not due and self._live == 0:
                    self._heap.clear()  # only stopped cutters are left in it
                    self.idling = True
                    self._wait(time.monotonic() + self.IDLE_SECONDS)
                    self.idling = False
                    if self._live == 0:
                        self._thread = None
                        return
                elif not due:  # an empty heap: only cutters that fired and are not stopped yet
                    now = time.monotonic()
                    self._wait(self._heap[0][0] if self._heap else now + self.IDLE_SECONDS)
            for cutter in due:
                cutter.fire()

    def _pop_due(self) -> list[_Cutter]:
        now = time.monotonic()
        due = []
        while self._heap and (self._heap[0][2].stopped or self._heap[0][0] <= now):
            cutter = heapq.heappop(self._heap)[2]
            if not cutter.stopped:
                due.append(cutter)
        return due

    def _wait(self, until: float) -> None:
        self._wakes_at = until
        self._cond.wait(min(max(0.0, until - time.monotonic()), threading.TIMEOUT_MAX))
        self._wakes_at = math.inf


_REAPER = _Reaper()


class _WatchedPool:
    """Mixed into urllib3's pool classes: a Deadline watches the connection of its request."""

    def _make_request(self, conn: Any, *args: Any, **kwargs: Any) -> Any:
        deadline = kwargs.get("timeout")
        if not isinstance(deadline, Deadline):
            return super()._make_request(conn, *args, **kwargs)  # type: ignore[misc]
        deadline.watch_connection(conn)
        try:
            answer = super()._make_request(conn, *args, **kwargs)  # type: ignore[misc]
        except BaseException:
            deadline.forget()
            raise
        deadline.watch_answer(answer)
        return answer


@functools.cache
def _watched(pool_class: type) -> type:
    if issubclass(pool_class, _WatchedPool):
        return pool_class
    return type(f"Watched{pool_class.__name__}", (_WatchedPool, pool_class), {})


def _watch_pools(manager: Any) -> Any:
    manager.pool_classes_by_scheme = {
        scheme: _watched(cls) for scheme, cls in manager.pool_classes_by_scheme.items()
    }
    return manager


class DeadlineAdapter(HTTPAdapter):
    """An HTTPAdapter whose pools (direct or through a proxy) let a Deadline cut the socket
    while the status line and headers arrive; with other adapters only the body is cut."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _watch_pools(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        return _watch_pools(super().proxy_manager_for(proxy, **proxy_kwargs))


def deadline_session() -> requests.Session:
    """A Session whose http:// and https:// requests go through DeadlineAdapter."""
    session = requests.Session()
    for prefix in ("https://", "http://"):
        session.mount(prefix, DeadlineAdapter())
    return session


def read_answer(response: requests.Response) -> bytes:
    """The answer's body, at most ANSWER_BYTES_LIMIT bytes (the rest is left unread)."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(CHUNK_BYTES):
        chunks.append(chunk)
        size += len(chunk)
        if size >= ANSWER_BYTES_LIMIT:
            break
    return b"".join(chunks)[:ANSWER_BYTES_LIMIT]
