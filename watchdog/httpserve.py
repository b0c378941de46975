"""The /metrics and /healthz listener: an event loop of its own, in one thread.

Why not http.server, as before: ThreadingHTTPServer spent a thread per client and listened
with a backlog of 5, so 1,000 simultaneous scrapes left 18 % timing out after 30 s, and each
client stalling mid-request held a thread for 10 s. Why not the scheduler's loop: a render
is CPU (~26 ms at 5,000 checks), and a burst of scrapes there would hold probes up.

How it bounds what a client costs (limits and answers: docs/service.md, "Many or slow
/metrics clients"): one asyncio.Protocol per connection on this thread's loop (uvloop where
installed); at most `max_connections` open, past that a canned 503 at once; a request head
within `read_timeout` (408) and MAX_HEAD bytes (431), parsed by httptools (llhttp) in
watchdog.httpconn, which speaks the HTTP while this module decides the answers; the
answer taken within `write_timeout` or the connection is aborted, written a CHUNK per loop
iteration as the transport drains, out of the one page all waiting clients share. So a slow
client costs a socket, never a thread, a copy of the page, or anyone else's time.
/metrics requests arriving within COALESCE of each other share one render, each still seeing
a page rendered after it arrived: 1,000 simultaneous scrapes cost a few renders, not 1,000.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from watchdog import aio
from watchdog.httpconn import LINGER, TEXT_PLAIN, Connection
from watchdog.metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from watchdog.metrics import Metrics

log = logging.getLogger("watchdog.metrics")

BACKLOG = 1024  # connections the kernel queues before we accept them (somaxconn caps it)
MAX_CONNECTIONS = 2048  # open at once at most (fewer with a low open-files limit)
READ_TIMEOUT = 5.0  # seconds from the connect to a complete request head
WRITE_TIMEOUT = 30.0  # seconds for the client to take the whole answer
COALESCE = 0.005  # seconds a /metrics request waits for others to share its render
START_TIMEOUT = STOP_TIMEOUT = 5.0
FULL_WARNING_EVERY = 60.0  # seconds between two "connection cap reached" warnings

_BUSY = b"too many connections to the %s listener; retry shortly\n"


class Bounded:
    """What any listener's connections share: the count and its cap (past it, a canned 503
    at once), on the listener's loop."""

    what = "metrics"  # for the log lines

    def __init__(self, *, max_connections: int, read_timeout: float,
                 write_timeout: float) -> None:
        self.max_connections = max_connections
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.connections: set[Connection] = set()
        self.refused = 0
        self._warned_at = -FULL_WARNING_EVERY

    def opened(self, conn: Connection) -> bool:
        full = len(self.connections) >= self.max_connections
        self.connections.add(conn)
        if full:
            self.refused += 1
            conn.reply(503, _BUSY % self.what.encode(), deadline=LINGER)
            now = time.monotonic()
            if now - self._warned_at >= FULL_WARNING_EVERY:
                self._warned_at = now
                log.warning("%s: %d connections open, the most allowed; answering 503 "
                            "to new ones (%d so far)", self.what, self.max_connections,
                            self.refused)
        return not full

    def closed(self, conn: Connection) -> None:
        self.connections.discard(conn)

    def abort_all(self) -> None:
        for conn in list(self.connections):
            conn.transport.abort()


class _Listener(Bounded):
    """The /metrics and /healthz answers, and the render batch."""

    def __init__(self, metrics: Metrics, healthy: Callable[[], tuple[bool, str]], *,
                 max_connections: int, read_timeout: float, write_timeout: float) -> None:
        super().__init__(max_connections=max_connections, read_timeout=read_timeout,
                         write_timeout=write_timeout)
        self.metrics = metrics
        self.healthy = healthy
        self.waiting: list[tuple[Connection, bool]] = []  # (connection, send the body?)
        self.batch: asyncio.TimerHandle | None = None

    def serve(self, conn: Connection, method: bytes, version: str, target: bytes) -> None:
        if version not in ("1.0", "1.1"):
            conn.reply(505, b"HTTP/1.0 or HTTP/1.1 only\n")
            return
        if method not in (b"GET", b"HEAD"):
            conn.reply(405, b"GET or HEAD only\n", extra=b"Allow: GET, HEAD\r\n")
            return
        body = method == b"GET"
        path = target.split(b"?", 1)[0]
        if path == b"/metrics":
            self.waiting.append((conn, body))
            if self.batch is None:
                self.batch = asyncio.get_running_loop().call_later(COALESCE, self._render)
        elif path == b"/healthz":
            self._health(conn, body)
        else:
            conn.reply(404, b"not found; try /metrics or /healthz\n", body=body)

    def _render(self) -> None:
        """One render for every /metrics request waiting."""
        self.batch = None
        waiting, self.waiting = self.waiting, []
        try:
            page, status, content_type = self.metrics.render(), 200, CONTENT_TYPE.encode()
        except Exception:
            log.exception("metrics: collecting failed")
            page, status, content_type = b"collecting metrics failed\n", 500, TEXT_PLAIN
        for conn, body in waiting:
            conn.reply(status, page, content_type, body=body)

    def _health(self, conn: Connection, body: bool) -> None:
        try:
            ok, message = self.healthy()
        except Exception as exc:
            log.exception("metrics: health check raised")
            ok, message = False, f"health check failed: {type(exc).__name__}"
        text = "ok\n" if ok else (message.rstrip("\n") + "\n")
        conn.reply(200 if ok else 503, text.encode("utf-8", "replace"), body=body)

    def abort_all(self) -> None:
        if self.batch is not None:
            self.batch.cancel()
        super().abort_all()


class LoopServer:
    """A listener served from a thread of its own running its own event loop; subclasses
    say what listens (make_listener) and what is served (announce)."""

    thread_name = "http"
    connection: type[Connection] = Connection  # the protocol of each client

    def __init__(self, host: str, port: int, *, max_connections: int | None = None,
                 read_timeout: float = READ_TIMEOUT, write_timeout: float = WRITE_TIMEOUT
                 ) -> None:
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.listener: Bounded | None = None
        self._bound: tuple[str, int] | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    def start(self) -> None:
        """Bind (raises OSError if the address is taken or invalid) and serve in the background."""
        if self._thread is not None:
            return
        sock = _listen(self.host, self.port)
        bound = sock.getsockname()
        self._bound = (str(bound[0]), int(bound[1]))
        self.listener = self.make_listener(self.max_connections or _default_cap())
        self._ready.clear()
        self._failure = None
        self._thread = threading.Thread(target=self._run, args=(sock, self.listener),
                                        name=self.thread_name, daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT) or self._failure is not None:
            failure = self._failure
            self.stop()
            sock.close()
            raise OSError(f"{self.listener.what} listener did not start: "
                          f"{failure or 'timed out'}")
        host, port = self._bound
        self.announce(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")

    def make_listener(self, max_connections: int) -> Bounded:
        raise NotImplementedError

    def announce(self, address: str) -> None:
        raise NotImplementedError

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) actually bound, e.g. the real port when asked for port 0."""
        if self._thread is None or self._bound is None:
            return self.host, self.port
        return self._bound

    def stop(self) -> None:
        """Stop serving: close the socket and every connection, end the thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(stopping.set)
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            log.warning("%s: the listener thread did not stop within %gs",
                        self.listener.what if self.listener else "http", STOP_TIMEOUT)

    def _run(self, sock: socket.socket, listener: Bounded) -> None:
        loop = aio.new_event_loop()
        try:
            loop.run_until_complete(self._serve(loop, sock, listener))
        except BaseException as exc:  # reported by start(); nothing else is listening
            self._failure = exc
            self._ready.set()
        finally:
            self._loop = None
            loop.close()

    async def _serve(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                     listener: Bounded) -> None:
        self._stopping = asyncio.Event()
        server = await loop.create_server(lambda: self.connection(listener), sock=sock,
                                          backlog=BACKLOG)
        self._loop = loop
        self._ready.set()
        await self._stopping.wait()
        server.close()
        listener.abort_all()
        for _ in range(3):  # connection_lost callbacks, and the handles' closing
            await asyncio.sleep(0)


class MetricsServer(LoopServer):
    """Serves /metrics and /healthz."""

    thread_name = "metrics-http"

    def __init__(self, metrics: Metrics, host: str, port: int,
                 healthy: Callable[[], tuple[bool, str]], **limits: Any) -> None:
        super().__init__(host, port, **limits)
        self.metrics = metrics
        self.healthy = healthy

    def make_listener(self, max_connections: int) -> _Listener:
        return _Listener(self.metrics, self.healthy, max_connections=max_connections,
                         read_timeout=self.read_timeout, write_timeout=self.write_timeout)

    def announce(self, address: str) -> None:
        log.info("metrics: serving http://%s/metrics", address)


def _default_cap() -> int:
    """A quarter of the open-files limit, so scrapes never take the sockets probes need."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(16, min(MAX_CONNECTIONS, soft // 4))


def _listen(host: str, port: int) -> socket.socket:
    """A listening, non-blocking socket for host ("" means all interfaces; IPv6 literals
    work, and "::" takes IPv4 too, like most daemons)."""
    family, _, _, _, sockaddr = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # restart while old connections linger in TIME_WAIT; never SO_REUSEPORT (no sharing)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(sockaddr)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
