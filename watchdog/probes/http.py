"""HTTP probe: one request (plus redirects) per run, as an asyncio Protocol on the event loop.

This is the hot path of a runner with thousands of checks on one event loop thread, so
everything that can be done once is done in parse(): the request bytes and the TLS context
(shared between probes with the same trust settings). A run is: loop.create_connection
(IP literals need no lookup; host names go to the loop's resolver threads), TLS, write the
prepared bytes, parse the response as it arrives with the small HTTP/1.1 response parser
below (status line, the three header fields the probe acts on, RFC 9112 body framing:
http.client's header parsing was 18 % of the runner's CPU), keep at most 1 MiB of body.
The whole run, redirects included, is bounded by one deadline: a server that drips header
lines or trickles the body cannot stretch it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import os
import re
import ssl
import time
from http.client import BadStatusLine, HTTPException, LineTooLong, RemoteDisconnected
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from watchdog import __version__
from watchdog.model import ProbeResult
from watchdog.probes import net
from watchdog.probes._util import (
    fmt_seconds,
    parse_duration,
    scalar_text,
    unknown_keys,
)
from watchdog.probes.base import OptionError
from watchdog.probes.net import ip_literal, tls_context

KEYS = frozenset({"http"})
OPTIONS = frozenset(
    {
        "url", "method", "headers", "body", "json", "verify_tls", "ca_file",
        "follow_redirects", "expect_status", "body_contains", "body_regex",
        "max_response_time", "cert_min_days",
    }
)

USER_AGENT = f"pd-watchdog/{__version__}"
MAX_REDIRECTS = 5
BODY_CAP = 1024 * 1024
MAX_HEAD = 64 * 1024  # bytes of a response head (status line and fields), or a chunk-size line
MAX_HEADERS = 100  # header lines in one response head, as http.client allows
EXCERPT_CHARS = 200
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_HEADER_VALUE = re.compile(r"[\r\n\0]")
_MANAGED_HEADERS = {
    "content-length": "set automatically from body/json",
    "transfer-encoding": "the probe sends a fixed-length body",
    "connection": "the probe always sends Connection: close",
}
_CROSS_ORIGIN_DROP = frozenset({"authorization", "proxy-authorization", "cookie", "host"})
# RFC 3986 reserved + unreserved + "%": keep what the user wrote, quote only the rest
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~-._"


def parse(options: dict[str, Any], base_dir: str) -> HttpProbe:
    """Validate the check's `http:` mapping; raise OptionError listing every problem."""
    spec = options.get("http")
    if not isinstance(spec, dict):
        raise OptionError([("http", "must be a mapping with at least `url: https://...`")])
    problems = unknown_keys(spec, OPTIONS, "http.")

    def bad(key: str, message: str) -> None:
        problems.append((f"http.{key}", message))

    url = spec.get("url")
    target = None
    if url is None:
        bad("url", "required: the http:// or https:// address to request")
    elif not isinstance(url, str):
        bad("url", "must be a string such as https://example.com/health")
    else:
        try:
            target = _Target.from_url(url)
        except ValueError as exc:
            bad("url", str(exc))

    method = spec.get("method", "GET")
    if not isinstance(method, str) or not _TOKEN.fullmatch(method):
        bad("method", "must be an HTTP method name such as GET, HEAD or POST")
        method = "GET"
    method = method.upper()

    headers = _parse_headers(spec.get("headers"), bad)

    body: bytes | None = None
    if "body" in spec and "json" in spec:
        bad("json", "use either body or json, not both")
    elif "body" in spec:
        if isinstance(spec["body"], str):
            body = spec["body"].encode("utf-8")
        else:
            bad("body", "must be a string (use json: to send structured data)")
    elif "json" in spec:
        try:
            body = _json_dumps(spec["json"])
        except (TypeError, ValueError) as exc:
            bad("json", f"cannot be sent as JSON: {exc}")
        else:
            if not any(name.lower() == "content-type" for name, _ in headers):
                headers.append(("Content-Type", "application/json"))

    verify = _flag(spec, "verify_tls", True, bad)
    follow = _flag(spec, "follow_redirects", True, bad)

    ca_path = None
    ca_file = spec.get("ca_file")
    if ca_file is not None:
        if not isinstance(ca_file, str) or not ca_file:
            bad("ca_file", "must be the path of a PEM CA bundle")
        elif not verify:
            bad("ca_file", "has no effect with verify_tls: false; remove one of them")
        else:
            ca_path = os.path.normpath(os.path.join(base_dir, os.path.expanduser(ca_file)))
            if not os.path.isfile(ca_path):
                bad("ca_file", f"file not found: {ca_path}")
                ca_path = None

    expect, expect_text = _parse_expect(spec.get("expect_status"), bad)

    contains = spec.get("body_contains")
    contains_text = None
    if contains is not None:
        contains_text = scalar_text(contains)
        if not contains_text:
            bad("body_contains", "must be a non-empty string")

    regex = None
    pattern = spec.get("body_regex")
    if pattern is not None:
        if not isinstance(pattern, str) or not pattern:
            bad("body_regex", "must be a non-empty regular expression string")
        else:
            try:
                regex = re.compile(pattern)
            except re.error as exc:
                bad("body_regex", f"invalid regular expression: {exc}; quote it in YAML")

    max_time = None
    if spec.get("max_response_time") is not None:
        try:
            max_time = parse_duration(spec["max_response_time"])
        except ValueError as exc:
            bad("max_response_time", str(exc))

    cert_min_days = spec.get("cert_min_days")
    if cert_min_days is not None:
        if isinstance(cert_min_days, bool) or not isinstance(cert_min_days, int):
            bad("cert_min_days", "must be a whole number of days, 0 or more")
            cert_min_days = None
        elif cert_min_days < 0:
            bad("cert_min_days", "must be 0 or more")
            cert_min_days = None
        elif target is not None and not target.tls:
            bad("cert_min_days", "needs an https:// url (there is no certificate on http://)")

    context = None
    if target is not None and target.tls:
        try:
            context = tls_context(verify, ca_path)
        except (OSError, ssl.SSLError) as exc:
            bad("ca_file", f"cannot load CA bundle {ca_path}: {exc}")
    elif ca_path is not None:  # only redirects can use it; make sure it loads now
        try:
            tls_context(verify, ca_path)
        except (OSError, ssl.SSLError) as exc:
            bad("ca_file", f"cannot load CA bundle {ca_path}: {exc}")

    if problems:
        raise OptionError(problems)
    assert target is not None
    first = _Hop(target, method, headers, body, context)
    return HttpProbe(
        url=url,
        first=first,
        follow=follow,
        verify=verify,
        ca_path=ca_path,
        expect=expect,
        expect_text=expect_text,
        contains=contains_text,
        regex=regex,
        max_time=max_time,
        cert_min_days=cert_min_days,
    )


def _flag(spec: dict, key: str, default: bool, bad) -> bool:
    value = spec.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        bad(key, "must be true or false")
        return default
    return value


def _parse_headers(raw: Any, bad) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    if raw is None:
        return headers
    if not isinstance(raw, dict):
        bad("headers", "must be a mapping of Header-Name: value")
        return headers
    for name, value in raw.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            bad(f"headers.{name}", "is not a valid header name (letters, digits, -)")
            continue
        if name.lower() in _MANAGED_HEADERS:
            bad(f"headers.{name}", f"cannot be set: {_MANAGED_HEADERS[name.lower()]}")
            continue
        text = scalar_text(value)
        if text is None:
            bad(f"headers.{name}", "must be a string or number; quote it")
        elif _BAD_HEADER_VALUE.search(text):
            bad(f"headers.{name}", "must not contain line breaks or NUL")
        else:
            try:
                text.encode("latin-1")
            except UnicodeEncodeError:
                bad(f"headers.{name}", "must be Latin-1 text (percent-encode other characters)")
                continue
            headers.append((name, text))
    return headers


def _parse_expect(raw: Any, bad) -> tuple[frozenset[int] | None, str]:
    if raw is None:
        return None, "2xx"
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        bad("expect_status", "must list at least one status code")
        return None, "2xx"
    codes = []
    for i, item in enumerate(items):
        where = f"expect_status[{i}]" if isinstance(raw, list) else "expect_status"
        if isinstance(item, bool) or not isinstance(item, int) or not 100 <= item <= 599:
            bad(where, "must be a status code from 100 to 599, or a list of them")
        else:
            codes.append(item)
    return frozenset(codes), ", ".join(str(c) for c in sorted(set(codes)))


def _json_dumps(value: Any) -> bytes:
    import json  # only checks that send JSON pay for the import

    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


class _Target:
    """Where one request goes, split once: scheme, host, port, request target, Host header."""

    __slots__ = ("url", "tls", "host", "port", "path", "host_header", "literal")

    def __init__(self, url: str, tls: bool, host: str, port: int, path: str, host_header: str):
        self.url = url
        self.tls = tls
        self.host = host
        self.port = port
        self.path = path
        self.host_header = host_header
        self.literal = ip_literal(host) is not None  # an IP address: no lookup needed

    @classmethod
    def from_url(cls, url: str) -> _Target:
        """Raise ValueError with a message that says what to fix."""
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"is not a valid URL ({exc})") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise ValueError("must start with http:// or https://")
        host = parts.hostname
        if not host:
            raise ValueError("has no host name (write it as https://host/path)")
        if parts.username is not None or parts.password is not None:
            raise ValueError("credentials in the URL are not supported; use headers.Authorization")
        literal = ip_literal(host)
        if literal is None:
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError:
                raise ValueError(f"has an invalid host name: {host}") from None
        tls = scheme == "https"
        if port is None:
            port = 443 if tls else 80
        path = quote(parts.path or "/", safe=_URL_SAFE)
        if parts.query:
            path += "?" + quote(parts.query, safe=_URL_SAFE)
        shown = f"[{host}]" if literal is not None and literal.version == 6 else host
        host_header = shown if port == (443 if tls else 80) else f"{shown}:{port}"
        return cls(url, tls, host, port, path, host_header)

    @property
    def origin(self) -> tuple[bool, str, int]:
        return self.tls, self.host, self.port


class _Hop:
    """One request ready to send: target, the exact bytes, and the TLS context."""

    __slots__ = ("target", "method", "headers", "body", "context", "request")

    def __init__(
        self,
        target: _Target,
        method: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        context: ssl.SSLContext | None,
    ):
        self.target = target
        self.method = method
        self.headers = headers
        self.body = body
        self.context = context
        lines = [f"{method} {target.path} HTTP/1.1"]
        names = {name.lower() for name, _ in headers}
        if "host" not in names:
            lines.append(f"Host: {target.host_header}")
        if "user-agent" not in names:
            lines.append(f"User-Agent: {USER_AGENT}")
        if "accept" not in names:
            lines.append("Accept: */*")
        lines.extend(f"{name}: {value}" for name, value in headers)
        lines.append("Connection: close")
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        elif method in ("POST", "PUT", "PATCH"):
            lines.append("Content-Length: 0")
        self.request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


class HttpProbe:
    """A parsed HTTP check. run() is the hot path: no parsing, no allocation it can avoid."""

    __slots__ = (
        "url", "first", "follow", "verify", "ca_path", "expect", "expect_text", "contains",
        "contains_bytes", "regex", "max_time", "cert_min_days", "_redirects",
    )

    def __init__(
        self,
        url: str,
        first: _Hop,
        follow: bool,
        verify: bool,
        ca_path: str | None,
        expect: frozenset[int] | None,
        expect_text: str,
        contains: str | None,
        regex: re.Pattern | None,
        max_time: float | None,
        cert_min_days: int | None,
    ):
        self.url = url
        self.first = first
        self.follow = follow
        self.verify = verify
        self.ca_path = ca_path
        self.expect = expect
        self.expect_text = expect_text
        self.contains = contains
        self.contains_bytes = contains.encode("utf-8") if contains else None
        self.regex = regex
        self.max_time = max_time
        self.cert_min_days = cert_min_days
        self._redirects: dict[tuple, _Hop] = {}

    def __repr__(self) -> str:
        return f"HttpProbe({self.first.method} {self.url})"

    async def run(self, timeout: float) -> ProbeResult:
        """Request the URL once within `timeout` seconds in all, redirects included.

        Never raises, except asyncio.CancelledError when the caller cancels the run (the
        runner shutting down): that is not the probe's failure to report.
        """
        start = time.monotonic()
        details: dict[str, Any] = {"url": self.url, "status_code": None}
        try:
            ok, summary = await self._run(start, timeout, details)
        except Exception as exc:  # the runner must survive anything a probe hits
            ok, summary = False, f"probe error: {type(exc).__name__}: {exc}"
        latency = time.monotonic() - start
        details.setdefault("latency_ms", round(latency * 1000, 1))
        return ProbeResult(ok, summary, None, details, latency)

    async def _run(
        self, start: float, timeout: float, details: dict[str, Any]
    ) -> tuple[bool, str]:
        deadline = net.deadline_in(timeout)
        hop = self.first
        for redirects in range(MAX_REDIRECTS + 1):
            target = hop.target
            try:
                addresses = await net.addresses(
                    target.host, target.port, target.literal, deadline, timeout
                )
                status, location, body, truncated, days = await net.within(
                    deadline,
                    _exchange(hop, addresses, self.follow, need_days=redirects == 0 and target.tls),
                )
            except Exception as exc:
                summary = _describe(exc, hop.target, timeout)
                if redirects:
                    details["final_url"] = hop.target.url
                    summary += f" (at {hop.target.url})"
                return False, summary
            if redirects == 0 and hop.target.tls:
                details["cert_days_left"] = days
            if location is None:
                break
            if redirects == MAX_REDIRECTS:
                details["status_code"] = status
                details["final_url"] = hop.target.url
                return False, f"too many redirects (more than {MAX_REDIRECTS})"
            try:
                hop = self._next_hop(hop, status, location)
            except ValueError as exc:
                details["status_code"] = status
                return False, f"bad redirect from {hop.target.url}: {exc}"

        elapsed = time.monotonic() - start
        ms = elapsed * 1000
        details["status_code"] = status
        details["latency_ms"] = round(ms, 1)
        if hop is not self.first:
            details["final_url"] = hop.target.url
        if truncated:
            details["body_truncated"] = True

        failure = self._assess(status, body, truncated, elapsed, details.get("cert_days_left"))
        if failure:
            excerpt = body[: EXCERPT_CHARS * 4].decode("utf-8", "replace")
            details["body_excerpt"] = excerpt[:EXCERPT_CHARS]
            return False, failure
        shown = f"{ms:.0f}" if ms >= 10 else f"{ms:.1f}"
        return True, f"HTTP {status} in {shown} ms"

    def _assess(
        self, status: int, body: bytes, truncated: bool, elapsed: float, days: int | None
    ) -> str | None:
        """The first failed assertion as a summary, or None when all pass."""
        expected = 200 <= status < 300 if self.expect is None else status in self.expect
        if not expected:
            return f"status {status} (expected {self.expect_text})"
        where = " in the first 1 MiB" if truncated else ""
        if self.contains_bytes is not None and self.contains_bytes not in body:
            shown = self.contains if len(self.contains) <= 80 else self.contains[:77] + "..."
            return f"body does not contain {shown!r}{where}"
        if self.regex is not None and not self.regex.search(body.decode("utf-8", "replace")):
            return f"body does not match /{self.regex.pattern}/{where}"
        if self.max_time is not None and elapsed > self.max_time:
            return f"response took {fmt_seconds(elapsed)} (max {fmt_seconds(self.max_time)})"
        if self.cert_min_days is not None:
            if days is None:
                return "cannot read the certificate's expiry date"
            if days < self.cert_min_days:
                if days < 0:
                    return f"certificate expired {-days} days ago (min {self.cert_min_days})"
                return f"certificate expires in {days} days (min {self.cert_min_days})"
        return None

    def _next_hop(self, hop: _Hop, status: int, location: str) -> _Hop:
        """The request a redirect asks for; remembered, since most redirects are stable."""
        key = (hop.target.url, hop.method, status, location)
        cached = self._redirects.get(key)
        if cached is not None:
            return cached
        target = _Target.from_url(urljoin(hop.target.url, location))
        method, body, headers = hop.method, hop.body, hop.headers
        if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
            method, body = "GET", None
            headers = [(n, v) for n, v in headers if n.lower() != "content-type"]
        if target.origin != hop.target.origin:  # never leak credentials to another origin
            headers = [(n, v) for n, v in headers if n.lower() not in _CROSS_ORIGIN_DROP]
        context = tls_context(self.verify, self.ca_path) if target.tls else None
        nxt = _Hop(target, method, headers, body, context)
        if len(self._redirects) >= 16:
            self._redirects.clear()
        self._redirects[key] = nxt
        return nxt


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


def _describe(exc: BaseException, target: _Target, timeout: float) -> str:
    """A failure in words an on-call engineer can act on: HTTP's own here, the rest as
    any network probe words them."""
    if isinstance(exc, RemoteDisconnected):
        return "server closed the connection without a response"
    if isinstance(exc, HTTPException):
        return f"bad HTTP response: {type(exc).__name__}: {str(exc)[:200]}"
    return net.describe(exc, target.host, target.host_header, timeout)


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
