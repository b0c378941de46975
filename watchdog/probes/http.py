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
import ipaddress
import math
import os
import re
import socket
import ssl
import sys
import threading
import time
from collections.abc import Awaitable, Iterable
from concurrent.futures import ThreadPoolExecutor
from http.client import BadStatusLine, HTTPException, LineTooLong, RemoteDisconnected
from typing import Annotated, Any, TypeVar
from urllib.parse import quote, urljoin, urlsplit

from pydantic import AfterValidator, Field, StringConstraints, ValidationInfo

from watchdog import __version__
from watchdog.config.fields import (
    DOC_DEFAULT,
    EnvAlternative,
    Flag,
    Says,
    ScalarText,
    Section,
    ShortDuration,
    one_or_many,
    problem,
)
from watchdog.model import ProbeResult
from watchdog.probes._util import fmt_seconds
from watchdog.probes.base import OptionError, validate

NAME = "http"
OPEN_SOCKETS = 1  # a run holds one connection at a time, redirects included

USER_AGENT = f"pd-watchdog/{__version__}"
MAX_REDIRECTS = 5
BODY_CAP = 1024 * 1024
MAX_HEAD = 64 * 1024  # bytes of a response head (status line and fields), or a chunk-size line
MAX_HEADERS = 100  # header lines in one response head, as http.client allows
EXCERPT_CHARS = 200
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_MANAGED_HEADERS = {
    "content-length": "set automatically from body/json",
    "transfer-encoding": "the probe sends a fixed-length body",
    "connection": "the probe always sends Connection: close",
}
_CROSS_ORIGIN_DROP = frozenset({"authorization", "proxy-authorization", "cookie", "host"})
# RFC 3986 reserved + unreserved + "%": keep what the user wrote, quote only the rest
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~-._"


class _Url(str):
    """A URL that validated, with its _Target: splitting it costs as much as the rest of
    the check's validation, so build() reuses it."""

    __slots__ = ("target",)


def _url(value: str) -> str:
    try:
        target = _Target.from_url(value)
    except ValueError as exc:
        raise problem(str(exc)) from None
    url = _Url(value)
    url.target = target
    return url


def _settable(name: str) -> str:
    reason = _MANAGED_HEADERS.get(name.lower())
    if reason is not None:
        raise problem(f"cannot be set: {reason}")
    return name


def _latin1(text: str) -> str:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        raise problem("must be Latin-1 text (percent-encode other characters)") from None
    return text


def _regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise problem(f"invalid regular expression: {exc}; quote it in YAML") from None
    return pattern


def _json_value(value: Any) -> Any:
    try:
        _json_dumps(value)
    except (TypeError, ValueError) as exc:
        raise problem(f"cannot be sent as JSON: {exc}") from None
    return value


def _ca_file(value: str | None, info: ValidationInfo) -> str | None:
    """A CA bundle that is not there is said with the other problems, not after them."""
    base_dir = (info.context or {}).get("base_dir")
    if value is None or base_dir is None or info.data.get("verify_tls") is False:
        return value  # verify_tls: false makes it a rule's business (it has no effect)
    path = os.path.normpath(os.path.join(base_dir, os.path.expanduser(value)))
    if not os.path.isfile(path):
        raise problem(f"file not found: {path}")
    return value


def _plain_http(url: Any) -> bool:
    try:
        return isinstance(url, str) and not _Target.from_url(url).tls
    except ValueError:
        return False


_TOKEN_PATTERN = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$"
Url = Annotated[
    str, AfterValidator(_url),
    Says("must be a string such as https://example.com/health",
         missing="required: the http:// or https:// address to request", null_is_unset=True),
]
HeaderName = Annotated[
    str, StringConstraints(pattern=_TOKEN_PATTERN), AfterValidator(_settable),
    Says("is not a valid header name (letters, digits, -)"),
]
HeaderValue = Annotated[
    ScalarText, StringConstraints(pattern=r"^[^\r\n\x00]*$"), AfterValidator(_latin1),
    Says("must be a string or number; quote it",
         string_pattern_mismatch="must not contain line breaks or NUL"),
]
StatusCode = Annotated[
    int, Field(ge=100, le=599), Says("must be a status code from 100 to 599, or a list of them"),
]


class Request(Section):
    """The request to make and what the answer must be. The whole run, redirects
    included, is bounded by the check's timeout."""

    url: Url = Field(description="the http:// or https:// address to request")
    method: Annotated[
        str, StringConstraints(pattern=_TOKEN_PATTERN), EnvAlternative(),
        Says("must be an HTTP method name such as GET, HEAD or POST"),
    ] = Field("GET", description="the request method")
    headers: Annotated[
        dict[HeaderName, HeaderValue] | None, Says("must be a mapping of Header-Name: value"),
    ] = Field(None, description="request header fields (Header-Name: value)")
    body: Annotated[str, Says("must be a string (use json: to send structured data)")] = Field(
        None, description="the request body, as text")
    json_body: Annotated[Any, AfterValidator(_json_value)] = Field(
        None, alias="json", description="a request body sent as JSON (with Content-Type: "
        "application/json unless headers set one); not with body")
    verify_tls: Flag = Field(True, description="check the server's certificate")
    ca_file: Annotated[
        str | None, StringConstraints(min_length=1), AfterValidator(_ca_file),
        Says("must be the path of a PEM CA bundle"),
    ] = Field(None, description="a PEM CA bundle to trust instead of the system's; relative "
              "to this file")
    follow_redirects: Flag = Field(True, description="follow up to 5 redirects")
    expect_status: one_or_many(
        StatusCode, Says("must be a status code from 100 to 599, or a list of them",
                         too_short="must list at least one status code"), min_length=1,
    ) | None = Field(None, description="the status codes that pass", json_schema_extra={
        DOC_DEFAULT: "any 2xx"})
    body_contains: Annotated[
        ScalarText, StringConstraints(min_length=1), Says("must be a non-empty string"),
    ] | None = Field(None, description="text the body must contain")
    body_regex: Annotated[
        str, StringConstraints(min_length=1), AfterValidator(_regex),
        Says("must be a non-empty regular expression string"),
    ] | None = Field(None, description="a regular expression the body must match")
    max_response_time: ShortDuration | None = Field(
        None, description="a slower answer fails the check")
    cert_min_days: Annotated[
        int, Field(ge=0),
        Says("must be a whole number of days, 0 or more", greater_than_equal="must be 0 or more"),
    ] | None = Field(None, description="fail when the server's certificate expires sooner "
                     "(https:// only)")

    @classmethod
    def rules(cls, data: dict[str, Any]) -> Iterable[tuple[tuple, str]]:
        if "body" in data and "json" in data:
            yield ("json",), "use either body or json, not both"
        ca_file = data.get("ca_file")
        if isinstance(ca_file, str) and ca_file and data.get("verify_tls") is False:
            yield ("ca_file",), "has no effect with verify_tls: false; remove one of them"
        days = data.get("cert_min_days")
        if isinstance(days, int) and not isinstance(days, bool) and days >= 0 \
                and _plain_http(data.get("url")):
            yield ("cert_min_days",), "needs an https:// url (there is no certificate on http://)"


class Options(Section):
    """One HTTP request per run, on the event loop (thousands cost sockets, not threads)."""

    http: Annotated[Request, Says("must be a mapping with at least `url: https://...`")] = Field(
        description="the request and what its answer must be")


KEYS = frozenset(Options.model_fields)
OPTIONS = frozenset(field.alias or name for name, field in Request.model_fields.items())


def build(options: Options, base_dir: str) -> HttpProbe:
    """The probe, from validated options: request bytes and TLS context made once."""
    spec = options.http
    problems: list[tuple[str, str]] = []
    target = spec.url.target if isinstance(spec.url, _Url) else _Target.from_url(spec.url)
    headers = list((spec.headers or {}).items())
    body: bytes | None = None
    if spec.body is not None:
        body = spec.body.encode("utf-8")
    elif "json_body" in spec.model_fields_set:
        body = _json_dumps(spec.json_body)
        if not any(name.lower() == "content-type" for name, _ in headers):
            headers.append(("Content-Type", "application/json"))
    ca_path = None
    if spec.ca_file is not None:
        ca_path = os.path.normpath(os.path.join(base_dir, os.path.expanduser(spec.ca_file)))
        if not os.path.isfile(ca_path):
            problems.append(("http.ca_file", f"file not found: {ca_path}"))
            ca_path = None
    context = None
    if target.tls or ca_path is not None:  # only redirects can use it: make sure it loads now
        try:
            loaded = tls_context(spec.verify_tls, ca_path)
        except (OSError, ssl.SSLError) as exc:
            problems.append(("http.ca_file", f"cannot load CA bundle {ca_path}: {exc}"))
        else:
            context = loaded if target.tls else None
    if problems:
        raise OptionError(problems)
    expect = None if spec.expect_status is None else frozenset(spec.expect_status)
    expect_text = "2xx" if expect is None else ", ".join(str(c) for c in sorted(expect))
    return HttpProbe(
        url=str(spec.url),
        first=_Hop(target, spec.method.upper(), headers, body, context),
        follow=spec.follow_redirects,
        verify=spec.verify_tls,
        ca_path=ca_path,
        expect=expect,
        expect_text=expect_text,
        contains=spec.body_contains,
        regex=None if spec.body_regex is None else re.compile(spec.body_regex),
        max_time=spec.max_response_time,
        cert_min_days=spec.cert_min_days,
    )


def parse(options: dict[str, Any], base_dir: str) -> HttpProbe:
    """Validate the check's `http:` mapping and build the probe; OptionError lists every
    problem."""
    return build(validate(Options, options, base_dir), base_dir)


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

    __slots__ = ("url", "tls", "host", "port", "path", "host_header", "literal")

    def __init__(self, url: str, tls: bool, host: str, port: int, path: str, host_header: str):
        self.url = url
        self.tls = tls
        self.host = host
        self.port = port
        self.path = path
        self.host_header = host_header
        self.literal = _ip_literal(host) is not None  # an IP address: no lookup needed

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
        deadline = asyncio.get_running_loop().time() + timeout
        hop = self.first
        for redirects in range(MAX_REDIRECTS + 1):
            try:
                if hop.target.literal:
                    addresses = [(hop.target.host, hop.target.port)]
                else:
                    addresses = await _within_or(
                        deadline,
                        _resolve(hop.target.host, hop.target.port),
                        f"cannot resolve host {hop.target.host}: no answer within "
                        f"{fmt_seconds(timeout)}",
                    )
                status, location, body, truncated, days = await _within(
                    deadline,
                    _exchange(
                        hop, addresses, self.follow, need_days=redirects == 0 and hop.target.tls
                    ),
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


T = TypeVar("T")

if sys.version_info >= (3, 11):

    async def _within(deadline: float, step: Awaitable[T]) -> T:
        """Await `step`; once the loop's clock reaches `deadline`, cancel it: TimeoutError."""
        async with asyncio.timeout_at(deadline):
            return await step

else:  # 3.10: no asyncio.timeout_at, and asyncio.TimeoutError is not TimeoutError yet

    async def _within(deadline: float, step: Awaitable[T]) -> T:
        """Await `step`; once the loop's clock reaches `deadline`, cancel it: TimeoutError."""
        try:
            return await asyncio.wait_for(step, deadline - asyncio.get_running_loop().time())
        except asyncio.TimeoutError:
            raise TimeoutError from None


async def _within_or(deadline: float, step: Awaitable[T], message: str) -> T:
    """_within, with its timeout worded as `message`."""
    try:
        return await _within(deadline, step)
    except TimeoutError:
        raise _Fail(message) from None


# Name lookups block, so they run on threads of our own: as many as the old pool of probe
# workers, cancellable while queued (loop resolvers are not: uvloop's keeps running lookups
# nobody waits for), and shared by every probe asking for the same name at the same time
# (checks due in one grid slot often share a host). Each run still looks the name up, so DNS
# changes are followed; the resolver's own cache (systemd-resolved, nscd) is what caches.
RESOLVER_THREADS = 64
_resolver: ThreadPoolExecutor | None = None
_resolver_lock = threading.Lock()
_lookups: dict[tuple[str, int], asyncio.Future[list[tuple[str, int]]]] = {}


def _resolver_pool() -> ThreadPoolExecutor:
    global _resolver
    with _resolver_lock:
        if _resolver is None:
            _resolver = ThreadPoolExecutor(RESOLVER_THREADS, thread_name_prefix="resolve")
        return _resolver


def _lookup(host: str, port: int) -> list[tuple[str, int]]:
    """The host's addresses in the resolver's order, without duplicates."""
    addresses: list[tuple[str, int]] = []
    for family, _kind, _proto, _name, addr in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        ip = addr[0]
        if family == socket.AF_INET6 and len(addr) > 3 and addr[3]:
            ip = f"{ip}%{addr[3]}"  # a link-local address needs its interface
        if (ip, addr[1]) not in addresses:
            addresses.append((ip, addr[1]))
    return addresses


async def _resolve(host: str, port: int) -> list[tuple[str, int]]:
    """_lookup on the resolver threads, one lookup for all who ask at once (on one loop)."""
    loop = asyncio.get_running_loop()
    key = (host, port)
    pending = _lookups.get(key)
    if pending is None or pending.get_loop() is not loop:
        pending = loop.run_in_executor(_resolver_pool(), _lookup, host, port)
        _lookups[key] = pending

        def done(future: asyncio.Future, key: tuple[str, int] = key) -> None:
            if _lookups.get(key) is future:
                del _lookups[key]

        pending.add_done_callback(done)
    # shield: one asker timing out must not cancel the lookup for the others
    return await asyncio.shield(pending)


async def _exchange(
    hop: _Hop, addresses: list[tuple[str, int]], follow: bool, need_days: bool
) -> tuple[int, str | None, bytes, bool, int | None]:
    """One request/response on a new connection to the first address that accepts one.
    Returns (status, redirect location or None, body prefix, truncated, certificate days
    left)."""
    loop = asyncio.get_running_loop()
    target = hop.target
    error: OSError | None = None
    for host, port in addresses:
        response = _Response(hop.request, hop.method == "HEAD", follow, loop.create_future())
        try:
            transport, _ = await loop.create_connection(
                lambda response=response: response,
                host,
                port,
                ssl=hop.context,
                server_hostname=target.host if hop.context is not None else None,
            )
        except ssl.SSLError:
            raise  # the server answered: its TLS is the failure, not its address
        except OSError as exc:
            error = exc
            continue
        break
    else:
        raise error or OSError(f"no address for {target.host}")
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
            self._finish(_Fail(f"incomplete body: connection closed after {self.size} bytes"))

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
