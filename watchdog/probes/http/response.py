"""One HTTP/1.1 exchange on one connection: send the prepared request, parse the response
as its bytes arrive, stop as soon as the probe has what it needs."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import re
import ssl
import time
from http.client import BadStatusLine, HTTPException, LineTooLong, RemoteDisconnected

from watchdog.probes import net
from watchdog.probes.http.request import _Hop

BODY_CAP = 1024 * 1024
MAX_HEAD = 64 * 1024  # bytes of a response head (status line and fields), or a chunk-size line
MAX_HEADERS = 100  # header lines in one response head, as http.client allows
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


async def _exchange(
    hop: _Hop, addresses: list[tuple[str, int]], follow: bool, need_days: bool
) -> tuple[int, str | None, bytes, bool, int | None]:
    """One request/response on a new connection to the first address that accepts one.
    Returns (status, redirect location or None, body prefix, truncated, certificate days
    left)."""
    loop = asyncio.get_running_loop()
    head_only = hop.method == "HEAD"
    transport, response = await net.connect(
        lambda: _Response(hop.request, head_only, follow, loop.create_future()),
        addresses,
        hop.context,
        hop.target.host,
    )
    try:
        days = _cert_days_left(transport.get_extra_info("ssl_object")) if need_days else None
        await response.done
    finally:
        # on every path, timeout and cancellation included; abort, not close: a TLS close
        # waits for the server's close_notify (up to 30 s), holding the socket past the result
        transport.abort()
    if response.error is not None:
        raise response.error
    return response.status, response.location, response.body, response.truncated, days


# _Response's parser states
_HEAD, _COUNTED, _TO_EOF, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _DONE = range(7)
_STATUS_LINE = re.compile(rb"HTTP/1\.\d[ \t]+(\d{3})(?:[ \t].*)?")
_CHUNK_SIZE_DIGITS = re.compile(rb"[0-9A-Fa-f]+")
_FIELDS = frozenset({b"content-length", b"transfer-encoding", b"location"})
_FOLD = (b" ", b"\t")
_NO_BODY = frozenset({204, 304})


class _Response(asyncio.Protocol):
    """One exchange on one connection: writes the prepared request, parses the response as
    its bytes arrive, and resolves `done` as soon as the probe has what it needs. It does not
    wait for the server to close: a kept-alive connection or a body past the cap must not
    hold the probe until its deadline. The outcome is status, location, body and truncated,
    or `error` (raised by _exchange, worded by _describe).
    """

    __slots__ = (
        "request", "head_only", "follow", "done", "state", "buffer", "scanned", "status",
        "location", "chunks", "size", "left", "truncated", "error",
    )

    def __init__(
        self, request: bytes, head_only: bool, follow: bool, done: asyncio.Future[None]
    ) -> None:
        self.request = request
        self.head_only = head_only
        self.follow = follow
        self.done = done
        self.state = _HEAD
        self.buffer = b""  # bytes received and not consumed yet
        self.scanned = 0  # where in `buffer` to go on looking for the end of the head
        self.status = 0
        self.location: str | None = None
        self.chunks: list[bytes] = []
        self.size = 0
        self.left = 0  # bytes still to come of the Content-Length body or of this chunk
        self.truncated = False
        self.error: Exception | None = None

    @property
    def body(self) -> bytes:
        return self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.state == _DONE:
            return
        try:
            self._parse(self.buffer + data if self.buffer else data)
        except Exception as exc:  # a malformed response is an outcome, not a crash
            self._finish(exc)

    def eof_received(self) -> None:
        self._closed(None)  # returns None: the transport then closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed(exc)

    def _closed(self, exc: Exception | None) -> None:
        """The server ended the connection: cleanly (exc None) or with an error."""
        if self.state == _DONE:
            return
        if exc is not None:
            self._finish(exc)
            return
        if self.state == _HEAD and self.buffer:
            # a head cut short ends where its bytes end, as http.client reads it
            self.scanned = 0
            try:
                self._parse(self.buffer.rstrip(b"\r\n") + b"\r\n\r\n")
            except Exception as error:
                self._finish(error)
                return
        if self.state == _DONE:
            return
        if self.state == _HEAD:  # nothing, or only interim (1xx) responses
            self._finish(RemoteDisconnected("Remote end closed connection without response"))
        elif self.state == _TO_EOF:
            self._finish(None)
        else:
            self._finish(net.Failure(f"incomplete body: connection closed after {self.size} bytes"))

    def _finish(self, error: Exception | None, truncated: bool = False) -> None:
        self.state = _DONE
        self.error = error
        self.truncated = truncated
        if not self.done.done():  # it is cancelled when the run was
            self.done.set_result(None)

    def _keep(self, data: bytes) -> bool:
        """Add `data` to the body, up to BODY_CAP; True once the body is that long."""
        room = BODY_CAP - self.size
        if len(data) > room:
            data = data[:room]
        self.chunks.append(data)
        self.size += len(data)
        return self.size >= BODY_CAP

    def _parse(self, buf: bytes) -> None:
        """Consume the unparsed bytes `buf` as far as they go; keep the rest for later."""
        while buf:
            state = self.state
            if state == _HEAD:
                end = _head_end(buf, self.scanned)
                if end > MAX_HEAD or (end < 0 and len(buf) > MAX_HEAD):
                    raise LineTooLong("the response head")
                if end < 0:
                    self.scanned = max(0, len(buf) - 2)  # the blank line may span two reads
                    break
                self.scanned = 0
                self._head(buf[:end])
                buf = buf[end:]
            elif state == _TO_EOF:
                if self._keep(buf):
                    self._finish(None, truncated=True)  # stop reading: the rest is not kept
                buf = b""
            elif state in (_COUNTED, _CHUNK_DATA):
                piece = buf if len(buf) <= self.left else buf[: self.left]
                buf = buf[len(piece) :]
                self.left -= len(piece)
                full = self._keep(piece)
                if state == _COUNTED and not self.left:
                    self._finish(None)  # complete, even if exactly BODY_CAP long
                elif full:
                    self._finish(None, truncated=True)
                elif not self.left:
                    self.state = _CHUNK_END
            elif state == _CHUNK_SIZE:
                eol = buf.find(b"\n")
                if eol < 0:
                    if len(buf) > MAX_HEAD:
                        raise LineTooLong("a chunk size line")
                    break
                line, buf = buf[:eol], buf[eol + 1 :]
                digits = line.split(b";", 1)[0].strip()  # chunk extensions are ignored
                if not _CHUNK_SIZE_DIGITS.fullmatch(digits):
                    raise HTTPException(f"invalid chunk size {line.decode('latin-1').strip()!r}")
                self.left = int(digits, 16)
                if not self.left:
                    self._finish(None)  # the last chunk; trailer fields are of no use here
                    return
                self.state = _CHUNK_DATA
            elif state == _CHUNK_END:  # the line break after a chunk's data
                eol = buf.find(b"\n")
                if eol > 1 or (eol == 1 and buf[0] != 13) or (eol < 0 and buf != b"\r"):
                    raise HTTPException("chunk data not followed by a line break")
                if eol < 0:
                    break
                buf = buf[eol + 1 :]
                self.state = _CHUNK_SIZE
            else:  # _DONE
                return
        self.buffer = buf

    def _head(self, head: bytes) -> None:
        """One response head, blank line included: status line and body framing."""
        lines = head.split(b"\n")  # the status line, the fields, then two empty items
        if len(lines) - 3 > MAX_HEADERS:
            raise HTTPException(f"got more than {MAX_HEADERS} headers")
        line = lines[0].rstrip(b"\r")
        match = _STATUS_LINE.fullmatch(line)
        status = int(match[1]) if match else 0
        if status < 100:
            raise BadStatusLine(repr(line.decode("latin-1")))
        if status < 200 and status != 101:
            return  # interim (100 Continue, 103 Early Hints): the final response follows
        self.status = status
        fields = _fields(lines)
        if self.follow and status in REDIRECT_CODES:
            location = fields.get(b"location")
            if location:
                self.location = location.decode("latin-1")
                self._finish(None)  # the body of a redirect is not read
                return
        if self.head_only or status < 200 or status in _NO_BODY:
            self._finish(None)  # no body, whatever Content-Length says (RFC 9112 6.3)
            return
        coding = fields.get(b"transfer-encoding")
        # Transfer-Encoding overrides Content-Length, and chunked must come last;
        # `identity` (from old servers) means no transfer coding at all
        if coding is not None and coding.strip().lower() != b"identity":
            chunked = coding.rsplit(b",", 1)[-1].strip().lower() == b"chunked"
            self.state = _CHUNK_SIZE if chunked else _TO_EOF
            return
        length = _content_length(fields.get(b"content-length"))
        if length is None:
            self.state = _TO_EOF
        elif length:
            self.left = length
            self.state = _COUNTED
        else:
            self._finish(None)


def _head_end(buf: bytes, start: int) -> int:
    """Index just past the first empty line (CRLF or bare LF) from `start` on, or -1."""
    crlf = buf.find(b"\n\r\n", start)
    lf = buf.find(b"\n\n", start, crlf + 1 if crlf >= 0 else len(buf))
    if lf >= 0:
        return lf + 2
    return crlf + 3 if crlf >= 0 else -1


def _fields(lines: list[bytes]) -> dict[bytes, bytes]:
    """The header fields the probe acts on, by lower-case name: Content-Length and
    Transfer-Encoding (repeats joined with commas), Location (the first one). A line that
    starts with a space or tab continues the previous field (obsolete line folding)."""
    fields: dict[bytes, bytes] = {}
    name = b""
    for line in lines[1:-2]:
        if line[:1] in _FOLD:
            if name in fields:
                fields[name] += b" " + line.strip()
            continue
        name, colon, value = line.partition(b":")
        name = name.rstrip().lower()
        if not colon or name not in _FIELDS:
            name = b""
        elif name not in fields:
            fields[name] = value.strip()
        elif name != b"location":
            fields[name] += b", " + value.strip()
    return fields


def _content_length(value: bytes | None) -> int | None:
    """Content-Length as a number; None when absent or invalid, and the body then runs to
    the close (as http.client reads it). Repeats of one value count once (RFC 9110 8.6)."""
    if value is None:
        return None
    values = {item.strip() for item in value.split(b",")}
    if len(values) != 1:
        return None
    text = values.pop()
    return int(text) if text.isdigit() else None


def _cert_days_left(tls: ssl.SSLObject | None) -> int | None:
    """Whole days until the peer certificate's notAfter (negative once expired)."""
    if tls is None:
        return None
    not_after = cert_not_after(tls.getpeercert(binary_form=True) or b"")
    if not_after is None:  # unusual encoding: let OpenSSL's decoder try (verified only)
        try:
            not_after = ssl.cert_time_to_seconds(tls.getpeercert()["notAfter"])
        except (KeyError, ValueError, TypeError):
            return None
    return math.floor((not_after - time.time()) / 86400)


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """One DER element at `pos`: (tag, content start, content end)."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    end = pos + length
    if end > len(data):
        raise ValueError("DER element runs past the end")
    return tag, pos, end


def cert_not_after(der: bytes) -> float | None:
    """notAfter of an X.509 certificate in DER, as a Unix time; None if it does not parse.

    Needed because getpeercert() is empty when verification is off. Walks
    Certificate > TBSCertificate > [version] serial signature issuer validity.
    """
    try:
        tag, start, _ = _tlv(der, 0)
        if tag != 0x30:
            return None
        tag, pos, _ = _tlv(der, start)  # TBSCertificate
        if tag != 0x30:
            return None
        tag, _, end = _tlv(der, pos)
        if tag == 0xA0:  # [0] EXPLICIT version
            pos = end
            tag, _, end = _tlv(der, pos)
        for expected in (0x02, 0x30, 0x30):  # serialNumber, signature, issuer
            if tag != expected:
                return None
            pos = end
            tag, _, end = _tlv(der, pos)
        if tag != 0x30:  # validity
            return None
        _, before_start, _ = _tlv(der, pos)
        _, _, before_end = _tlv(der, before_start)
        tag, start, end = _tlv(der, before_end)  # notAfter
        return _der_time(tag, der[start:end].decode("ascii"))
    except (IndexError, ValueError, UnicodeDecodeError):
        return None


_UTC_TIME = re.compile(r"(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z")
_GENERALIZED_TIME = re.compile(r"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.\d+)?Z")


def _der_time(tag: int, text: str) -> float:
    """UTCTime (YYMMDDHHMMSSZ, 1950-2049) or GeneralizedTime (YYYYMMDDHHMMSSZ)."""
    if tag == 0x17:
        match = _UTC_TIME.fullmatch(text)
        if not match:
            raise ValueError("bad UTCTime")
        year = int(match.group(1))
        year += 1900 if year >= 50 else 2000
        rest = match.groups()[1:]
    elif tag == 0x18:
        match = _GENERALIZED_TIME.fullmatch(text)
        if not match:
            raise ValueError("bad GeneralizedTime")
        year = int(match.group(1))
        rest = match.groups()[1:]
    else:
        raise ValueError("not a time")
    month, day, hour, minute, second = (int(x) for x in rest)
    when = dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.timezone.utc)
    return when.timestamp()
