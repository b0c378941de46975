"""The TCP probe's run: lookup, connect, TLS (at once or after a STARTTLS dialogue), send,
expect, all within one deadline; then the certificate's expiry."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import ssl
import time
from dataclasses import dataclass
from typing import Any

from watchdog.model import ProbeResult
from watchdog.probes import net
from watchdog.probes._util import fmt_seconds
from watchdog.probes.tcp.starttls import PROTOCOLS, shown
from watchdog.probes.tcp.stream import READ_CAP, Stream

EXCERPT_CHARS = 200


@dataclass(frozen=True)
class Expect:
    """What the bytes read must hold: a text, or a regular expression (compiled once, as
    bytes, MULTILINE: `^` matches at each line's start)."""

    text: bytes | None = None
    regex: re.Pattern[bytes] | None = None

    def __str__(self) -> str:
        if self.regex is not None:
            return f"/{self.regex.pattern.decode('utf-8', 'replace')}/"
        assert self.text is not None
        return repr(shown(self.text))


class TcpProbe:
    """A parsed TCP check; run() does no parsing (all of it happened in options.build)."""

    __slots__ = ("host", "port", "literal", "where", "send", "expect", "context",
                 "server_name", "starttls", "cert_min_days")

    def __init__(self, host: str, port: int, literal: bool, send: bytes | None,
                 expect: Expect | None, context: ssl.SSLContext | None,
                 server_name: str, starttls: str | None, cert_min_days: int | None):
        self.host = host
        self.port = port
        self.literal = literal
        self.where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.send = send
        self.expect = expect
        self.context = context  # TLS at once (tls: true) or after STARTTLS; None: plain
        self.server_name = server_name
        self.starttls = starttls
        self.cert_min_days = cert_min_days

    def __repr__(self) -> str:
        return f"TcpProbe({self.where})"

    async def run(self, timeout: float) -> ProbeResult:
        """Connect (and speak) once within `timeout` seconds in all. Never raises, except
        asyncio.CancelledError when the caller cancels the run (the runner stopping)."""
        start = time.monotonic()
        details: dict[str, Any] = {"host": self.host, "port": self.port, "address": None,
                                   "connect_ms": None, "bytes_read": 0}
        stream = Stream()
        try:
            ok, summary = await self._run(start, timeout, stream, details)
        except Exception as exc:  # the runner must survive anything a probe hits
            ok, summary = False, self._describe(exc, stream, timeout)
        details["bytes_read"] = stream.total
        if stream.full:
            details["read_truncated"] = True
        latency = time.monotonic() - start
        details["latency_ms"] = round(latency * 1000, 1)
        return ProbeResult(ok, summary, None, details, latency)

    async def _run(self, start: float, timeout: float, stream: Stream,
                   details: dict[str, Any]) -> tuple[bool, str]:
        deadline = net.deadline_in(timeout)
        addresses = await net.addresses(self.host, self.port, self.literal, deadline, timeout)
        stream.stage = f"connecting to {self.where}"
        await net.within(deadline, self._session(stream, addresses, details))
        failure = None
        if self.expect is not None and not details.pop("expected"):
            failure = self._missing(stream)
            details["read_excerpt"] = stream.buffer[: EXCERPT_CHARS * 4].decode(
                "utf-8", "replace")[:EXCERPT_CHARS]
        elif self.cert_min_days is not None:
            failure = net.cert_expiry_failure(details.get("cert_days_left"), self.cert_min_days)
        if failure:
            return False, failure
        ms = (time.monotonic() - start) * 1000
        said = f"connected to {self.where} in {ms:.0f} ms" if ms >= 10 else \
            f"connected to {self.where} in {ms:.1f} ms"
        if self.context is not None:
            said += f", {'STARTTLS ' + self.starttls + ' ' if self.starttls else ''}" \
                    f"{details.get('tls_version')}"
        if self.expect is not None:
            said += f", {'matched' if self.expect.regex is not None else 'got'} {self.expect}"
        return True, said

    async def _session(self, stream: Stream, addresses: list[tuple[str, int]],
                       details: dict[str, Any]) -> None:
        """Everything after the lookup, on one connection, aborted on every path (abort,
        not close: a TLS close waits for the server's close_notify)."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        plain, _ = await net.connect(lambda: stream, addresses, None, self.host)
        transport: asyncio.Transport = plain
        try:
            details["connect_ms"] = round((loop.time() - began) * 1000, 1)
            details["address"] = (plain.get_extra_info("peername") or (None,))[0]
            if self.context is not None:
                if self.starttls is not None:
                    await PROTOCOLS[self.starttls](stream)
                    stream.buffer.clear()  # what the dialogue read is not the service's answer
                transport = await self._handshake(loop, plain, stream, details)
            if self.send is not None:
                stream.stage = f"sending to {self.where}"
                await stream.write(self.send)
            if self.expect is not None:
                stream.stage = f"waiting for {self.expect}"
                details["expected"] = await stream.expect(self.expect.text, self.expect.regex)
        finally:
            transport.abort()
            if transport is not plain:
                plain.abort()

    async def _handshake(self, loop: asyncio.AbstractEventLoop, plain: asyncio.Transport,
                         stream: Stream, details: dict[str, Any]) -> asyncio.Transport:
        stream.stage = f"in the TLS handshake with {self.where}"
        began = loop.time()
        transport = await loop.start_tls(plain, stream, self.context,
                                         server_hostname=self.server_name)
        assert transport is not None
        details["tls_ms"] = round((loop.time() - began) * 1000, 1)
        stream.transport = transport
        transport.set_write_buffer_limits(0)
        tls = transport.get_extra_info("ssl_object")
        details["tls_version"] = tls.version() if tls is not None else None
        cert = net.peer_certificate(transport)
        details["cert_not_after"] = None if cert is None else dt.datetime.fromtimestamp(
            cert.not_after, dt.timezone.utc).isoformat().replace("+00:00", "Z")
        details["cert_issuer"] = None if cert is None else cert.issuer
        details["cert_days_left"] = None if cert is None else cert.days_left()
        return transport

    def _missing(self, stream: Stream) -> str:
        """The summary when what was read does not hold what `expect` asks for."""
        if stream.full:
            return f"{self.expect} not in the first {READ_CAP // 1024} KiB read"
        return f"connection closed after {stream.total} bytes without {self.expect}"

    def _describe(self, exc: BaseException, stream: Stream, timeout: float) -> str:
        if isinstance(exc, TimeoutError):
            read = f" ({stream.total} bytes read)" if stream.total else ""
            return f"timed out after {fmt_seconds(timeout)} {stream.stage}{read}"
        return net.describe(exc, self.host, self.where, timeout)
