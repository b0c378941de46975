"""One HTTP/1.x connection of the /metrics listener: one request head, one answer.

A request head must arrive within the listener's read_timeout (else 408) and MAX_HEAD bytes
(else 431); httptools (llhttp) parses it. The answer is written a CHUNK per loop iteration as
the transport drains, and must be taken within write_timeout or the connection is aborted.
What to answer is the listener's business (watchdog.httpserve); this module only speaks HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Protocol

import httptools

MAX_HEAD = 8192  # bytes of request line and headers
LINGER = 1.0  # seconds a stalled or refused client has to take its 408 or 503
CHUNK = 64 * 1024  # bytes handed to the transport at a time (measured: 256 KiB no better)

TEXT_PLAIN = b"text/plain; charset=utf-8"


class Listener(Protocol):
    """What a connection asks of the listener that accepted it."""

    read_timeout: float
    write_timeout: float

    def opened(self, conn: Connection) -> bool:
        """Count the connection in; False if it was refused (and answered) at once."""

    def closed(self, conn: Connection) -> None:
        """Count the connection out."""

    def serve(self, conn: Connection, method: bytes, version: str, target: bytes) -> None:
        """Answer the request head, now or later, with conn.reply()."""


def response_head(status: int, length: int, content_type: bytes, extra: bytes = b"") -> bytes:
    """The status line and headers of a one-shot answer (the connection closes after it)."""
    return (
        b"HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nCache-Control: no-store"
        b"\r\nConnection: close\r\nDate: %s\r\n%s\r\n"
        % (status, HTTPStatus(status).phrase.encode(), content_type, length,
           formatdate(usegmt=True).encode(), extra)
    )


class Connection(asyncio.Protocol):
    """One client: one request head read under a deadline and a size cap, one answer."""

    def __init__(self, listener: Listener) -> None:
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

    def reply(self, status: int, payload: bytes, content_type: bytes = TEXT_PLAIN, *,
              body: bool = True, extra: bytes = b"", deadline: float | None = None) -> None:
        """Write one answer, then shut our side; the client has `deadline` (write_timeout
        by default) to take it before the connection is aborted."""
        if self.done or self.transport.is_closing():
            return
        self.done = True
        self._arm(self.listener.write_timeout if deadline is None else deadline,
                  self.transport.abort)
        self.transport.write(response_head(status, len(payload), content_type, extra))
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

