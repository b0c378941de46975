"""The /metrics and /healthz listener: an event loop of its own, in one thread.

Why not http.server, as before: ThreadingHTTPServer spent a thread per client and listened
with a backlog of 5, so 1,000 simultaneous scrapes left 18 % timing out after 30 s, and each
client stalling mid-request held a thread for 10 s. Why not the scheduler's loop: a render
is CPU (~26 ms at 5,000 checks), and a burst of scrapes there would hold probes up.

How it bounds what a client costs (limits and answers: docs/service.md, "Many or slow
/metrics clients"): one asyncio.Protocol per connection on this thread's loop (uvloop where
installed); at most `max_connections` open, past that a canned 503 at once; a request head
within `read_timeout` (408) and MAX_HEAD bytes (431), parsed by httptools (llhttp); the
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
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import httptools

from watchdog import aio
from watchdog.metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from watchdog.metrics import Metrics

log = logging.getLogger("watchdog.metrics")

BACKLOG = 1024  # connections the kernel queues before we accept them (somaxconn caps it)
MAX_CONNECTIONS = 2048  # open at once at most (fewer with a low open-files limit)
READ_TIMEOUT = 5.0  # seconds from the connect to a complete request head
WRITE_TIMEOUT = 30.0  # seconds for the client to take the whole answer
MAX_HEAD = 8192  # bytes of request line and headers
LINGER = 1.0  # seconds a stalled or refused client has to take its 408 or 503
COALESCE = 0.005  # seconds a /metrics request waits for others to share its render
CHUNK = 64 * 1024  # bytes handed to the transport at a time (measured: 256 KiB no better)
START_TIMEOUT = STOP_TIMEOUT = 5.0
FULL_WARNING_EVERY = 60.0  # seconds between two "connection cap reached" warnings

_TEXT = b"text/plain; charset=utf-8"


def _head(status: int, length: int, content_type: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nCache-Control: no-store"
        b"\r\nConnection: close\r\nDate: %s\r\n%s\r\n"
        % (status, HTTPStatus(status).phrase.encode(), content_type, length,
           formatdate(usegmt=True).encode(), extra)
    )


class _Connection(asyncio.Protocol):
    """One client: one request head read under a deadline and a size cap, one answer."""

    def __init__(self, listener: _Listener) -> None:
        self.listener = listener
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = bytearray()
        self.received = 0  # bytes fed to the parser
        self.head_size = 0  # bytes of request line and headers, as the parser saw them
        self.request: tuple[bytes, str, bytes] | None = None  # method, version, target
        self.timer: asyncio.TimerHandle | None = None
        self.out: memoryview | None = None  # the body still to be handed to the transport
        self.paused = False
        self.next_chunk: asyncio.Handle | None = None
        self.done = False  # answered (or refused, or lost): read nothing more
        self.eof = False  # the client has shut its side

    # --- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.listener.opened(self):
            self._arm(self.listener.read_timeout, self._read_timed_out)

    def data_received(self, data: bytes) -> None:
        if self.done or self.request is not None:
            return  # a body, pipelined requests, bytes after the answer: read and dropped
        self.received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # the head is complete; the upgrade is declined by answering and closing
        except httptools.HttpParserError as exc:
            if self.request is None:
                self.reply(400, f"bad request: {exc}\n".encode("ascii", "replace"))
                return
        if self.request is not None:
            if self.timer is not None:
                self.timer.cancel()
            if self.head_size > MAX_HEAD:
                self.reply(431, b"request head over %d bytes\n" % MAX_HEAD)
            else:
                self.listener.serve(self, *self.request)
        elif self.received > MAX_HEAD:
            self.reply(431, b"request head over %d bytes\n" % MAX_HEAD)

    def eof_received(self) -> bool | None:
        # A client may half-close once its request is sent: keep the way back open until
        # the answer is out. Returning None closes the transport (after what is buffered).
        self.eof = True
        owed = self.request is not None and not self.done
        return True if owed or self.out is not None else None

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._pump_soon()

    def connection_lost(self, exc: Exception | None) -> None:
        self.done = True
        self.out = None
        for handle in (self.timer, self.next_chunk):
            if handle is not None:
                handle.cancel()
        self.listener.closed(self)

    # --- httptools callbacks (only the first request head counts)

    def on_url(self, url: bytes) -> None:
        if self.request is None:
            self.url += url
            self.head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.request is None:
            self.head_size += len(name) + len(value) + 4  # ": " and CRLF

    def on_headers_complete(self) -> None:
        if self.request is None:
            self.request = (self.parser.get_method(), self.parser.get_http_version(),
                            bytes(self.url))

    # --- answering

    def reply(self, status: int, payload: bytes, content_type: bytes = _TEXT, *,
              body: bool = True, extra: bytes = b"", deadline: float | None = None) -> None:
        """Write one answer, then shut our side; the client has `deadline` (write_timeout
        by default) to take it before the connection is aborted."""
        if self.done or self.transport.is_closing():
            return
        self.done = True
        self._arm(self.listener.write_timeout if deadline is None else deadline,
                  self.transport.abort)
        self.transport.write(_head(status, len(payload), content_type, extra))
        self.out = memoryview(payload) if body and payload else memoryview(b"")
        self._pump()

    def _pump(self) -> None:
        """One CHUNK, then the rest a CHUNK per loop iteration while the transport takes
        it: a thousand answers written in one go would stall the loop for a second."""
        self.next_chunk = None
        out = self.out
        if out is None or self.paused or self.transport.is_closing():
            return
        self.transport.write(out[:CHUNK])
        out = out[CHUNK:]
        if out:
            self.out = out
            if not self.paused:
                self._pump_soon()
            return
        self.out = None
        # Not close(): unread bytes from the client (a body, a long head) would turn it into
        # a reset that can destroy the answer in flight. Shut our side; the client's EOF, or
        # the deadline, closes the connection.
        if self.eof or not self.transport.can_write_eof():
            self.transport.close()
        else:
            self.transport.write_eof()

    def _pump_soon(self) -> None:
        if self.next_chunk is None:
            self.next_chunk = asyncio.get_running_loop().call_soon(self._pump)

    def _arm(self, delay: float, callback: Callable[[], Any]) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(delay, callback)

    def _read_timed_out(self) -> None:
        if self.request is None:
            wait = self.listener.read_timeout
            self.reply(408, b"no complete request head within %gs\n" % wait, deadline=LINGER)


_BUSY = b"too many connections to the metrics listener; retry shortly\n"


class _Listener:
    """What the connections share, on the listener's loop: the count, the render batch."""

    def __init__(self, metrics: Metrics, healthy: Callable[[], tuple[bool, str]], *,
                 max_connections: int, read_timeout: float, write_timeout: float) -> None:
        self.metrics = metrics
        self.healthy = healthy
        self.max_connections = max_connections
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.connections: set[_Connection] = set()
        self.waiting: list[tuple[_Connection, bool]] = []  # (connection, send the body?)
        self.batch: asyncio.TimerHandle | None = None
        self.refused = 0
        self._warned_at = -FULL_WARNING_EVERY

    def opened(self, conn: _Connection) -> bool:
        full = len(self.connections) >= self.max_connections
        self.connections.add(conn)
        if full:
            self.refused += 1
            conn.reply(503, _BUSY, deadline=LINGER)
            now = time.monotonic()
            if now - self._warned_at >= FULL_WARNING_EVERY:
                self._warned_at = now
                log.warning("metrics: %d connections open, the most allowed; answering 503 "
                            "to new ones (%d so far)", self.max_connections, self.refused)
        return not full

    def closed(self, conn: _Connection) -> None:
        self.connections.discard(conn)

    def serve(self, conn: _Connection, method: bytes, version: str, target: bytes) -> None:
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
            page, status, content_type = b"collecting metrics failed\n", 500, _TEXT
        for conn, body in waiting:
            conn.reply(status, page, content_type, body=body)

    def _health(self, conn: _Connection, body: bool) -> None:
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
        for conn in list(self.connections):
            conn.transport.abort()


class MetricsServer:
    """Serves /metrics and /healthz from a thread of its own running its own event loop."""

    def __init__(self, metrics: Metrics, host: str, port: int,
                 healthy: Callable[[], tuple[bool, str]], *, max_connections: int | None = None,
                 read_timeout: float = READ_TIMEOUT, write_timeout: float = WRITE_TIMEOUT
                 ) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self.healthy = healthy
        self.max_connections = max_connections
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.listener: _Listener | None = None
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
        self.listener = _Listener(
            self.metrics, self.healthy, max_connections=self.max_connections or _default_cap(),
            read_timeout=self.read_timeout, write_timeout=self.write_timeout,
        )
        self._ready.clear()
        self._failure = None
        self._thread = threading.Thread(target=self._run, args=(sock, self.listener),
                                        name="metrics-http", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT) or self._failure is not None:
            failure = self._failure
            self.stop()
            sock.close()
            raise OSError(f"metrics listener did not start: {failure or 'timed out'}")
        host, port = self._bound
        log.info("metrics: serving http://%s/metrics", f"[{host}]:{port}" if ":" in host
                 else f"{host}:{port}")

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
            log.warning("metrics: the listener thread did not stop within %gs", STOP_TIMEOUT)

    def _run(self, sock: socket.socket, listener: _Listener) -> None:
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
                     listener: _Listener) -> None:
        self._stopping = asyncio.Event()
        server = await loop.create_server(lambda: _Connection(listener), sock=sock,
                                          backlog=BACKLOG)
        self._loop = loop
        self._ready.set()
        await self._stopping.wait()
        server.close()
        listener.abort_all()
        for _ in range(3):  # connection_lost callbacks, and the handles' closing
            await asyncio.sleep(0)


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
