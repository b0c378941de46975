"""Network plumbing any network probe uses: one deadline, name lookups, connecting, TLS
contexts, certificate facts, and failures worded for the on-call engineer.

A network probe's run is one deadline (`deadline_in(timeout)`) that every step awaits under
(`within`): the lookup (`addresses`), the connect and TLS handshake (`connect`), sending
and every read. A server that answers slowly, drips bytes or never answers cannot stretch
it. `describe(exc, ...)` turns whatever a step raised into the run's summary; a probe words
its own protocol's errors first and hands the rest to it.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import math
import os
import socket
import ssl
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from watchdog.probes._util import fmt_seconds

T = TypeVar("T")
P = TypeVar("P", bound=asyncio.BaseProtocol)
Address = tuple[str, int]


class Failure(Exception):
    """A run-time failure whose message is already the summary."""


# --- one deadline for the whole run ---------------------------------------------------


def deadline_in(timeout: float) -> float:
    """The loop time by which a run that starts now and may take `timeout` seconds ends."""
    return asyncio.get_running_loop().time() + timeout


if sys.version_info >= (3, 11):

    async def within(deadline: float, step: Awaitable[T]) -> T:
        """Await `step`; once the loop's clock reaches `deadline`, cancel it: TimeoutError."""
        async with asyncio.timeout_at(deadline):
            return await step

else:  # 3.10: no asyncio.timeout_at, and asyncio.TimeoutError is not TimeoutError yet

    async def within(deadline: float, step: Awaitable[T]) -> T:
        """Await `step`; once the loop's clock reaches `deadline`, cancel it: TimeoutError."""
        try:
            return await asyncio.wait_for(step, deadline - asyncio.get_running_loop().time())
        except asyncio.TimeoutError:
            raise TimeoutError from None


async def within_or(deadline: float, step: Awaitable[T], message: str) -> T:
    """`within`, with its timeout worded as `message` (a Failure)."""
    try:
        return await within(deadline, step)
    except TimeoutError:
        raise Failure(message) from None


# --- name lookups ----------------------------------------------------------------------

# Name lookups block, so they run on threads of our own: as many as the old pool of probe
# workers, cancellable while queued (loop resolvers are not: uvloop's keeps running lookups
# nobody waits for), and shared by every probe asking for the same name at the same time
# (checks due in one grid slot often share a host). Each run still looks the name up, so DNS
# changes are followed; the resolver's own cache (systemd-resolved, nscd) is what caches.
RESOLVER_THREADS = 64
_resolver: ThreadPoolExecutor | None = None
_resolver_lock = threading.Lock()
_lookups: dict[Address, asyncio.Future[list[Address]]] = {}


@functools.lru_cache(maxsize=4096)  # 10,000 checks on a few hosts: parse each host once
def ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address when `host` is an IP literal (it needs no lookup), else None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _resolver_pool() -> ThreadPoolExecutor:
    global _resolver
    with _resolver_lock:
        if _resolver is None:
            _resolver = ThreadPoolExecutor(RESOLVER_THREADS, thread_name_prefix="resolve")
        return _resolver


def _lookup(host: str, port: int) -> list[Address]:
    """The host's addresses in the resolver's order, without duplicates."""
    addresses: list[Address] = []
    for family, _kind, _proto, _name, addr in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        ip = addr[0]
        if family == socket.AF_INET6 and len(addr) > 3 and addr[3]:
            ip = f"{ip}%{addr[3]}"  # a link-local address needs its interface
        if (ip, addr[1]) not in addresses:
            addresses.append((ip, addr[1]))
    return addresses


async def resolve(host: str, port: int) -> list[Address]:
    """_lookup on the resolver threads, one lookup for all who ask at once (on one loop)."""
    loop = asyncio.get_running_loop()
    key = (host, port)
    pending = _lookups.get(key)
    if pending is None or pending.get_loop() is not loop:
        pending = loop.run_in_executor(_resolver_pool(), _lookup, host, port)
        _lookups[key] = pending

        def done(future: asyncio.Future, key: Address = key) -> None:
            if _lookups.get(key) is future:
                del _lookups[key]

        pending.add_done_callback(done)
    # shield: one asker timing out must not cancel the lookup for the others
    return await asyncio.shield(pending)


async def addresses(
    host: str, port: int, literal: bool, deadline: float, timeout: float
) -> list[Address]:
    """Where to connect for host:port: an IP literal as is, a name looked up by `deadline`
    (a lookup that does not answer in time fails as `cannot resolve host X: no answer within
    5s`, not as a bare timeout)."""
    if literal:
        return [(host, port)]
    message = f"cannot resolve host {host}: no answer within {fmt_seconds(timeout)}"
    return await within_or(deadline, resolve(host, port), message)


# --- connecting --------------------------------------------------------------------------


def connect(
    factory: Callable[[], P],
    addresses: Sequence[Address],
    context: ssl.SSLContext | None,
    server_hostname: str,
) -> Awaitable[tuple[asyncio.Transport, P]]:
    """A connection to the first of `addresses` that accepts one, TLS when `context` is set
    (the certificate is checked against `server_hostname`). A TLS failure is not retried on
    the next address: the server answered, and its TLS is what failed.

    With one address, the usual case, this is the loop's own connect with no coroutine of
    ours around it: probes connecting at once are that many objects fewer for the GC."""
    if len(addresses) != 1:
        return _connect_first(factory, addresses, context, server_hostname)
    host, port = addresses[0]
    return asyncio.get_running_loop().create_connection(  # type: ignore[return-value]
        factory, host, port, ssl=context,
        server_hostname=server_hostname if context is not None else None,
    )


async def _connect_first(
    factory: Callable[[], P],
    addresses: Sequence[Address],
    context: ssl.SSLContext | None,
    server_hostname: str,
) -> tuple[asyncio.Transport, P]:
    loop = asyncio.get_running_loop()
    error: OSError | None = None
    for host, port in addresses:
        try:
            return await loop.create_connection(  # type: ignore[return-value]
                factory, host, port, ssl=context,
                server_hostname=server_hostname if context is not None else None,
            )
        except ssl.SSLError:
            raise
        except OSError as exc:
            error = exc
    raise error or OSError(f"no address for {server_hostname}")


# --- TLS and certificates --------------------------------------------------------------

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


@dataclass(frozen=True)
class Certificate:
    """What a probe reports about a server's certificate."""

    not_after: float  # Unix time
    issuer: str  # RFC 4514, e.g. "CN=R11,O=Let's Encrypt,C=US"

    def days_left(self, now: float | None = None) -> int:
        """Whole days until not_after (negative once expired)."""
        return math.floor((self.not_after - (time.time() if now is None else now)) / 86400)


def peer_certificate(transport: asyncio.BaseTransport) -> Certificate | None:
    """The facts of the certificate the server presented on a TLS connection (None on plain
    TCP). Read from the certificate itself, so they are there with verification off too
    (ssl's getpeercert() is an empty dict then)."""
    tls = transport.get_extra_info("ssl_object")
    der = tls.getpeercert(binary_form=True) if tls is not None else None
    return certificate(der) if der else None


@functools.lru_cache(maxsize=256)
def certificate(der: bytes) -> Certificate | None:
    """A DER-encoded X.509 certificate's facts; None when it does not parse. Cached: a
    probe sees the same certificate run after run."""
    from cryptography import x509  # only probes that speak TLS pay for the import

    try:
        cert = x509.load_der_x509_certificate(der)
        return Certificate(cert.not_valid_after_utc.timestamp(), cert.issuer.rfc4514_string())
    except ValueError:
        return None


def cert_expiry_failure(days: int | None, min_days: int) -> str | None:
    """The summary when a certificate expires in fewer than `min_days` days (`cert_min_days`
    of every TLS-speaking kind), or None when it is far enough away."""
    if days is None:
        return "cannot read the certificate's expiry date"
    if days >= min_days:
        return None
    if days < 0:
        return f"certificate expired {-days} days ago (min {min_days})"
    return f"certificate expires in {days} days (min {min_days})"


# --- failures in words ------------------------------------------------------------------


def describe(exc: BaseException, host: str, where: str, timeout: float) -> str:
    """A network failure in words an on-call engineer can act on. `host` is the name
    looked up, `where` the host[:port] connected to, as the user wrote them."""
    if isinstance(exc, Failure):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return f"timed out after {fmt_seconds(timeout)}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host {host} ({exc.strerror or exc})"
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = getattr(exc, "verify_message", None) or _ssl_reason(exc)
        return f"TLS certificate verify failed: {reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {_ssl_reason(exc)}"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused ({where})"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by the server"
    if isinstance(exc, OSError):
        return f"cannot connect to {where}: {exc.strerror or exc}"
    return f"probe error: {type(exc).__name__}: {exc}"


def _ssl_reason(exc: ssl.SSLError) -> str:
    """OpenSSL's errors carry a reason; one raised by Python code may have only its args
    (and str() of an SSLError is then the args tuple)."""
    return getattr(exc, "reason", None) or exc.strerror or " ".join(map(str, exc.args))
