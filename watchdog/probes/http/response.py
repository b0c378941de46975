"""One HTTP/1.1 exchange on one connection: send the prepared request, parse the response
as its bytes arrive, stop as soon as the probe has what it needs.

The response is parsed by llhttp (Node's parser, in httptools from the uvloop maintainers):
each read is fed to it and it calls back with each header field, the end of the head, each
piece of body and the end of the message, having framed the body per RFC 9112
(Content-Length, chunked, or to the close; none after 1xx, 204, 304). Left to this module:
HEAD (llhttp cannot be told that no body follows: the probe stops at the end of the head),
the limits (64 KiB of head, 100 fields, 1 MiB of body kept), `Transfer-Encoding: identity`
from old servers (Content-Length ends the body, as before), the end of the connection, and
the wording of a first line that is not an HTTP/1.x status line.

Leniencies: the probe reads one response per connection and closes it, so the ambiguities
llhttp's strictness guards against (request smuggling, response splitting between two
parsers) cannot arise here. It accepts what RFC 9112 lets a client accept: a bare LF ending
the status line and fields (2.2), obsolete line folding (5.2; llhttp then no longer checks
the characters of field values), Transfer-Encoding beside Content-Length (6.3: the coding
wins), and HTTP/1.x minor versions above 1 (2.3). Strict, as the RFC asks: an invalid or
repeated Content-Length and a chunked body whose lines do not end in CRLF are bad responses.
"""

from __future__ import annotations

import asyncio
import functools
import re
from http.client import BadStatusLine, HTTPException, LineTooLong, RemoteDisconnected

from httptools import HttpParserCallbackError, HttpResponseParser

from watchdog.probes import net
from watchdog.probes.http.request import _Hop

BODY_CAP = 1024 * 1024
MAX_HEAD = 64 * 1024  # bytes of the response heads, interim ones included
MAX_HEADERS = 100  # header fields in one response head, as http.client allows
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


async def _exchange(
    hop: _Hop, addresses: list[tuple[str, int]], follow: bool, need_cert: bool
) -> tuple[int, str | None, bytes, bool, net.Certificate | None]:
    """One request/response on a new connection to the first address that accepts one.
    Returns (status, redirect location or None, body prefix, truncated, the server's
    certificate when asked for and on TLS)."""
    # a partial, not a closure: fewer objects per probe in flight (they are GC-tracked)
    factory = functools.partial(_new_response, hop.request, hop.method == "HEAD", follow)
    transport, response = await net.connect(factory, addresses, hop.context, hop.target.host)
    try:
        cert = net.peer_certificate(transport) if need_cert else None
        await response.done
    finally:
        # on every path, timeout and cancellation included; abort, not close: a TLS close
        # waits for the server's close_notify (up to 30 s), holding the socket past the result
        transport.abort()
    if response.error is not None:
        raise response.error
    return response.status, response.redirect, response.body, response.truncated, cert


def _new_response(request: bytes, head_only: bool, follow: bool) -> _Response:
    """A protocol for one connection attempt, with a future of its own."""
    return _Response(request, head_only, follow, asyncio.get_running_loop().create_future())


# _Response's states: before the first status line has ended, in the heads, in the body
_START, _HEAD, _BODY, _DONE = range(4)
_STATUS_LINE = re.compile(rb"HTTP/1\.\d[ \t]+(\d{3})(?:[ \t].*)?")
_NO_BODY = frozenset({204, 304})
_LENIENT = {
    "lenient_optional_cr_before_lf": True,
    "lenient_headers": True,
    "lenient_chunked_length": True,
    "lenient_version": True,
}


class _Response(asyncio.Protocol):
    """One exchange on one connection: writes the prepared request, parses the response as
    its bytes arrive, and resolves `done` as soon as the probe has what it needs. It does not
    wait for the server to close: a kept-alive connection or a body past the cap must not
    hold the probe until its deadline. The outcome is status, redirect, body and truncated,
    or `error` (raised by _exchange, worded by the probe).
    """

    __slots__ = (
        "request", "head_only", "follow", "done", "parser", "state", "start", "head_size",
        "last", "fields", "status", "location", "coding", "length", "left", "redirect",
        "chunks", "size", "full", "dropped", "truncated", "error",
    )

    def __init__(
        self, request: bytes, head_only: bool, follow: bool, done: asyncio.Future[None]
    ) -> None:
        self.request = request
        self.head_only = head_only
        self.follow = follow
        self.done = done
        # made when the first line has come (and dropped when done): a probe waiting for
        # its answer holds no parser, so a thousand in flight add no objects for the GC
        self.parser: HttpResponseParser | None = None
        self.state = _START
        self.start = b""  # the first line, while its end has not arrived (a bytearray)
        self.head_size = 0  # bytes fed to the parser before the final head ended
        self.last = b""  # the latest bytes fed in the heads (to end a head cut short)
        self.fields = 0  # header fields so far in this head
        self.status = 0
        self.location: bytes | None = None  # this head's first Location
        self.coding: bytes | None = None  # its Transfer-Encoding, repeats joined
        self.length: bytes | None = None  # its Content-Length (llhttp checked it)
        self.left = -1  # body bytes still to come when this module counts them, else -1
        self.redirect: str | None = None
        self.chunks: list[bytes] = []
        self.size = 0
        self.full = False  # BODY_CAP bytes kept
        self.dropped = False  # ... and more arrived, not kept
        self.truncated = False
        self.error: Exception | None = None

    @property
    def body(self) -> bytes:
        return self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        state = self.state
        if state == _DONE:
            return
        try:
            if state == _BODY:
                self.parser.feed_data(data)  # type: ignore[union-attr]
            elif state == _HEAD:
                self._head(data)
            else:
                self._first_line(data)
        except Exception as exc:  # a malformed response is an outcome, not a crash
            if self.state != _DONE:  # (what follows a complete response is of no interest)
                self._finish(_cause(exc))
            return
        if self.full and self.state != _DONE:
            self._finish(None, truncated=True)  # stop reading: the rest is not kept

    def eof_received(self) -> None:
        self._closed(None)  # returns None: the transport then closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed(exc)

    def _first_line(self, data: bytes) -> None:
        """Hold the bytes until the first line has ended; refuse it unless it is an HTTP/1.x
        status line (saying what came instead), else hand everything to the parser."""
        if b"\n" not in data:
            if self.start:
                self.start += data
            else:
                self.start = bytearray(data)
            if len(self.start) > MAX_HEAD:
                raise LineTooLong("the response head")
            return
        if self.start:
            data = bytes(self.start + data)
        line = data[: data.index(b"\n")].rstrip(b"\r")
        match = _STATUS_LINE.fullmatch(line)
        if match is None or int(match[1]) < 100:
            raise BadStatusLine(repr(line.decode("latin-1")))
        self.state = _HEAD
        self.parser = HttpResponseParser(self)
        self.parser.set_dangerous_leniencies(**_LENIENT)
        self._head(data)

    def _head(self, data: bytes) -> None:
        """Feed bytes of the heads, at most MAX_HEAD in all before the final head ends."""
        self.last = data
        room = MAX_HEAD - self.head_size
        if len(data) <= room:
            self.head_size += len(data)
            self.parser.feed_data(data)  # type: ignore[union-attr]
            return
        self.parser.feed_data(data[:room])  # type: ignore[union-attr]
        if self.state == _HEAD:
            raise LineTooLong("the response head")
        if self.state == _BODY:
            self.parser.feed_data(data[room:])  # type: ignore[union-attr]

    # llhttp's callbacks (httptools calls the ones the protocol has)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.state != _HEAD:
            return  # a chunked body's trailer fields, or what follows the response
        self.fields += 1
        if self.fields > MAX_HEADERS:
            raise HTTPException(f"got more than {MAX_HEADERS} headers")
        name = name.lower()
        if name == b"location":
            if self.location is None:
                self.location = value
        elif name == b"transfer-encoding":
            self.coding = value if self.coding is None else self.coding + b", " + value
        elif name == b"content-length":
            self.length = value

    def on_headers_complete(self) -> None:
        if self.state != _HEAD:
            return
        status = self.parser.get_status_code()  # type: ignore[union-attr]
        if status < 200 and status != 101:
            if status < 100:  # llhttp takes 000-099; only after an interim response here
                raise BadStatusLine(f"status {status:03d}")
            self.fields = 0  # interim (100 Continue, 103 Early Hints): the final follows
            self.location = self.coding = self.length = None
            return
        self.status = status
        location = self.location.strip() if self.location is not None else b""
        if self.follow and location and status in REDIRECT_CODES:
            self.redirect = location.decode("latin-1")
            self._finish(None)  # the body of a redirect is not read
        elif self.head_only or status < 200 or status in _NO_BODY:
            self._finish(None)  # no body, whatever Content-Length says (RFC 9112 6.3)
        elif self._identity() and self.length is not None:
            self.left = int(self.length)  # llhttp reads to the close; the length ends it
            if self.left:
                self.state = _BODY
            else:
                self._finish(None)
        else:
            self.state = _BODY

    def on_body(self, body: bytes) -> None:
        if self.state != _BODY:
            return
        if self.left >= 0:
            body = body[: self.left]
            self.left -= len(body)
        room = BODY_CAP - self.size
        if len(body) >= room:
            self.full = True
            if len(body) > room:
                self.dropped = True
                body = body[:room]
        if body:
            self.chunks.append(body)
            self.size += len(body)
        if not self.left:
            self._finish(None, truncated=self.dropped)

    def on_message_complete(self) -> None:
        if self.state == _BODY:  # (interim responses end in _HEAD)
            self._finish(None, truncated=self.dropped)  # complete, even if BODY_CAP long

    # the end

    def _closed(self, exc: Exception | None) -> None:
        """The server ended the connection: cleanly (exc None) or with an error."""
        if self.state == _DONE:
            return
        if exc is not None:
            self._finish(exc)
            return
        try:
            self._end_cut_short_head()
        except Exception as error:
            if self.state != _DONE:
                self._finish(_cause(error))
            return
        if self.state == _DONE:
            return
        if self.state != _BODY:  # nothing, or only interim (1xx) responses
            self._finish(RemoteDisconnected("Remote end closed connection without response"))
        elif self.left < 0 and self._to_close():
            self._finish(None, truncated=self.dropped)
        else:
            self._finish(net.Failure(f"incomplete body: connection closed after {self.size} bytes"))

    def _end_cut_short_head(self) -> None:
        """A head cut short ends where its bytes end, as http.client reads it."""
        if self.state == _START and self.start:
            start, self.start = bytes(self.start), b""
            self._first_line(start.rstrip(b"\r\n") + b"\r\n\r\n")
        elif self.state == _HEAD:
            tail = self.last[-1:]
            self._head(b"\r\n" if tail == b"\n" else b"\n\r\n" if tail == b"\r" else b"\r\n\r\n")

    def _identity(self) -> bool:
        return self.coding is not None and self.coding.strip().lower() == b"identity"

    def _to_close(self) -> bool:
        """Whether the body runs to the close: a coding other than chunked last, or neither
        a coding nor a length (as llhttp framed it)."""
        if self.coding is None:
            return self.length is None
        return self.coding.rsplit(b",", 1)[-1].strip().lower() != b"chunked"

    def _finish(self, error: Exception | None, truncated: bool = False) -> None:
        self.state = _DONE
        self.error = error
        self.truncated = truncated
        self.parser = None  # it refers back to this protocol (its callbacks): no cycle
        if not self.done.done():  # it is cancelled when the run was
            self.done.set_result(None)


def _cause(exc: Exception) -> Exception:
    """The error to report: the one a callback raised, not httptools' wrapper around it."""
    if isinstance(exc, HttpParserCallbackError) and isinstance(exc.__context__, Exception):
        return exc.__context__
    return exc
