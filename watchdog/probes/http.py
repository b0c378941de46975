"""HTTP probe: one request (plus redirects) per run, on the standard library's http.client.

This is the hot path of a runner with thousands of checks, so everything that can be
done once is done in parse(): the request bytes, the TLS context (shared between probes
with the same trust settings), IP-literal addresses. A run is: connect, TLS, send the
prepared bytes, parse the response with http.client.HTTPResponse, read at most 1 MiB,
each blocking step bounded by what is left of one deadline.
"""

from __future__ import annotations

import datetime as dt
import io
import ipaddress
import math
import os
import re
import socket
import ssl
import threading
import time
from http.client import HTTPException, HTTPResponse, RemoteDisconnected
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from watchdog import __version__
from watchdog.model import ProbeResult
from watchdog.probes._util import (
    DURATION_HELP,
    fmt_seconds,
    parse_duration,
    scalar_text,
    unknown_keys,
)
from watchdog.probes.base import OptionError

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
READ_CHUNK = 64 * 1024
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
        else:
            target.resolve_literal()

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
        except ValueError:
            bad("max_response_time", DURATION_HELP)

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


_contexts: dict[tuple, ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def tls_context(verify: bool, ca_path: str | None) -> ssl.SSLContext:
    """One SSLContext per trust setting, shared by all probes (loading the system CA
    store costs milliseconds and ~1 MB each; contexts are safe to share between threads).
    A ca_file is keyed by its mtime and size so an edited bundle is reloaded on re-parse.
    """
    key: tuple = (verify, ca_path)
    if ca_path is not None:
        stat = os.stat(ca_path)
        key += (stat.st_mtime_ns, stat.st_size)
    with _contexts_lock:
        context = _contexts.get(key)
        if context is None:
            if verify:
                context = ssl.create_default_context(cafile=ca_path)
            else:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            _contexts[key] = context
        return context


class _Target:
    """Where one request goes, split once: scheme, host, port, request target, Host header."""

    __slots__ = ("url", "tls", "host", "port", "path", "host_header", "addrinfo")

    def __init__(self, url: str, tls: bool, host: str, port: int, path: str, host_header: str):
        self.url = url
        self.tls = tls
        self.host = host
        self.port = port
        self.path = path
        self.host_header = host_header
        self.addrinfo: list | None = None

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
        literal = _ip_literal(host)
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

    def resolve_literal(self) -> None:
        """For an IP-literal host, compute the address once (no lookup per run)."""
        if _ip_literal(self.host) is not None:
            self.addrinfo = socket.getaddrinfo(
                self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
            )

    @property
    def origin(self) -> tuple[bool, str, int]:
        return self.tls, self.host, self.port


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


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


class _Fail(Exception):
    """A run-time failure whose message is already the summary."""


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

    def run(self, timeout: float) -> ProbeResult:
        """Request the URL once within `timeout` seconds in all; never raises."""
        start = time.monotonic()
        details: dict[str, Any] = {"url": self.url, "status_code": None}
        try:
            ok, summary = self._run(start, timeout, details)
        except Exception as exc:  # the runner must survive anything a probe hits
            ok, summary = False, f"probe error: {type(exc).__name__}: {exc}"
        latency = time.monotonic() - start
        details.setdefault("latency_ms", round(latency * 1000, 1))
        return ProbeResult(ok, summary, None, details, latency)

    def _run(self, start: float, timeout: float, details: dict[str, Any]) -> tuple[bool, str]:
        deadline = start + timeout
        hop = self.first
        for redirects in range(MAX_REDIRECTS + 1):
            try:
                status, location, body, truncated, days = _exchange(
                    hop, deadline, self.follow, need_days=redirects == 0 and hop.target.tls
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
        target.resolve_literal()
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


def _left(deadline: float) -> float:
    """Seconds left for the next blocking step (capped: sockets refuse absurd timeouts)."""
    left = deadline - time.monotonic()
    if not left > 0:
        raise TimeoutError
    return min(left, 86400.0)


class _DeadlineReader(io.RawIOBase):
    """Every recv gets only what is left of the deadline: a server that drips one header
    line at a time must not hold the probe for (timeout x lines)."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        self._sock.settimeout(_left(self._deadline))
        return self._sock.recv_into(buffer)


class _DeadlineSocket:
    """What HTTPResponse needs of a socket (makefile), reading through _DeadlineReader."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))


def _connect(target: _Target, deadline: float) -> socket.socket:
    """TCP connect to the first address that answers, within the deadline.

    Name lookup (getaddrinfo) cannot be interrupted; it is bounded by the resolver's own
    timeout. IP literals skip it.
    """
    infos = target.addrinfo
    if infos is None:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    error: OSError | None = None
    for family, kind, proto, _name, addr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(_left(deadline))
            sock.connect(addr)
        except TimeoutError:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            error = exc
            continue
        return sock
    raise error or OSError(f"no address for {target.host}")


def _exchange(
    hop: _Hop, deadline: float, follow: bool, need_days: bool
) -> tuple[int, str | None, bytes, bool, int | None]:
    """One request/response. Returns (status, redirect location or None, body prefix,
    truncated, certificate days left)."""
    target = hop.target
    sock = _connect(target, deadline)
    days = None
    try:
        if hop.context is not None:
            sock.settimeout(_left(deadline))
            sock = hop.context.wrap_socket(sock, server_hostname=target.host)
            if need_days:
                days = _cert_days_left(sock)
        sock.settimeout(_left(deadline))
        sock.sendall(hop.request)
        response = HTTPResponse(_DeadlineSocket(sock, deadline), method=hop.method)  # type: ignore[arg-type]
        try:
            response.begin()
            status = response.status
            if follow and status in REDIRECT_CODES:
                location = response.getheader("Location")
                if location:
                    return status, location, b"", False, days
            chunks = []
            size = 0
            while size < BODY_CAP:
                data = response.read1(min(READ_CHUNK, BODY_CAP - size))
                if not data:
                    break
                chunks.append(data)
                size += len(data)
            remaining = response.length  # bytes the server announced but did not send yet
            if size < BODY_CAP and remaining:
                raise _Fail(f"incomplete body: connection closed after {size} bytes")
            truncated = size >= BODY_CAP and remaining != 0
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            return status, None, body, truncated, days
        finally:
            response.close()
    finally:
        sock.close()


def _describe(exc: BaseException, target: _Target, timeout: float) -> str:
    """A failure in words an on-call engineer can act on."""
    if isinstance(exc, _Fail):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return f"timed out after {fmt_seconds(timeout)}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host {target.host} ({exc.strerror or exc})"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verify failed: {exc.verify_message or exc.reason or exc}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused ({target.host_header})"
    if isinstance(exc, RemoteDisconnected):
        return "server closed the connection without a response"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by the server"
    if isinstance(exc, HTTPException):
        return f"bad HTTP response: {type(exc).__name__}: {str(exc)[:200]}"
    if isinstance(exc, OSError):
        return f"cannot connect to {target.host_header}: {exc.strerror or exc}"
    return f"probe error: {type(exc).__name__}: {exc}"


def _cert_days_left(sock: ssl.SSLSocket) -> int | None:
    """Whole days until the peer certificate's notAfter (negative once expired)."""
    not_after = cert_not_after(sock.getpeercert(binary_form=True) or b"")
    if not_after is None:  # unusual encoding: let OpenSSL's decoder try (verified only)
        try:
            not_after = ssl.cert_time_to_seconds(sock.getpeercert()["notAfter"])
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
