"""The HTTP probe's run: one request, plus redirects, within one deadline; then the checks
the user asked for (status, body, response time, certificate expiry)."""

from __future__ import annotations

import re
import time
from http.client import HTTPException, RemoteDisconnected
from typing import Any
from urllib.parse import urljoin

from httptools import HttpParserError

from watchdog.model import ProbeResult
from watchdog.probes import net
from watchdog.probes._util import fmt_seconds
from watchdog.probes.http.jsonbody import JsonCheck, failed_assertion
from watchdog.probes.http.request import _Hop, _Target
from watchdog.probes.http.response import _exchange

MAX_REDIRECTS = 5
EXCERPT_CHARS = 200
_CROSS_ORIGIN_DROP = frozenset({"authorization", "proxy-authorization", "cookie", "host"})


class HttpProbe:
    """A parsed HTTP check. run() is the hot path: no parsing, no allocation it can avoid."""

    __slots__ = (
        "url", "first", "follow", "verify", "ca_path", "expect", "expect_text", "contains",
        "contains_bytes", "regex", "json_checks", "max_time", "cert_min_days", "_redirects",
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
        json_checks: tuple[JsonCheck, ...] = (),
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
        self.json_checks = json_checks
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
                status, location, body, truncated, cert = await net.within(
                    deadline,
                    _exchange(hop, addresses, self.follow, need_cert=redirects == 0 and target.tls),
                )
            except Exception as exc:
                summary = _describe(exc, hop.target, timeout)
                if redirects:
                    details["final_url"] = hop.target.url
                    summary += f" (at {hop.target.url})"
                return False, summary
            if redirects == 0 and hop.target.tls:
                details["cert_days_left"] = cert.days_left() if cert is not None else None
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

        failure = self._assess(status, body, truncated, elapsed, details)
        if failure:
            excerpt = body[: EXCERPT_CHARS * 4].decode("utf-8", "replace")
            details["body_excerpt"] = excerpt[:EXCERPT_CHARS]
            return False, failure
        shown = f"{ms:.0f}" if ms >= 10 else f"{ms:.1f}"
        return True, f"HTTP {status} in {shown} ms"

    def _assess(
        self, status: int, body: bytes, truncated: bool, elapsed: float, details: dict[str, Any]
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
        if self.json_checks:
            failure = failed_assertion(self.json_checks, body, truncated, details)
            if failure is not None:
                return failure
        if self.max_time is not None and elapsed > self.max_time:
            return f"response took {fmt_seconds(elapsed)} (max {fmt_seconds(self.max_time)})"
        if self.cert_min_days is not None:
            return net.cert_expiry_failure(details.get("cert_days_left"), self.cert_min_days)
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
        context = net.tls_context(self.verify, self.ca_path) if target.tls else None
        nxt = _Hop(target, method, headers, body, context)
        if len(self._redirects) >= 16:
            self._redirects.clear()
        self._redirects[key] = nxt
        return nxt


def _describe(exc: BaseException, target: _Target, timeout: float) -> str:
    """A failure in words an on-call engineer can act on: HTTP's own here, the rest as
    any network probe words them."""
    if isinstance(exc, RemoteDisconnected):
        return "server closed the connection without a response"
    if isinstance(exc, HTTPException):
        return f"bad HTTP response: {type(exc).__name__}: {str(exc)[:200]}"
    if isinstance(exc, HttpParserError):  # llhttp's reason: "Invalid character in chunk size"
        return f"bad HTTP response: {exc}"
    return net.describe(exc, target.host, target.host_header, timeout)
