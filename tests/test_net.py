"""watchdog.probes.net, the plumbing every network probe shares, used directly: deadlines,
lookups, connecting, TLS contexts, failure wording. The HTTP probe's tests cover the same
pieces end to end (tests/test_probe_http.py)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time

import pytest

from watchdog import aio
from watchdog.probes import net

pytestmark = pytest.mark.timeout(30)


class Echo(asyncio.Protocol):
    """A client protocol that remembers the first bytes the server sends."""

    def __init__(self) -> None:
        self.got = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        if not self.got.done():
            self.got.set_result(data)


def _accepting() -> tuple[socket.socket, threading.Thread]:
    """A listener that greets one client with b"hi" (then closes)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(5)

    def greet() -> None:
        with listener, listener.accept()[0] as conn:
            conn.sendall(b"hi")

    thread = threading.Thread(target=greet)
    thread.start()
    return listener, thread


def test_connect_goes_on_to_the_next_address_when_one_refuses() -> None:
    with socket.socket() as refusing:  # bound, not listening: connects are refused
        refusing.bind(("127.0.0.1", 0))
        listener, thread = _accepting()
        addresses = [refusing.getsockname(), listener.getsockname()]

        async def main() -> bytes:
            transport, echo = await net.connect(Echo, addresses, None, "svc.test")
            try:
                return await asyncio.wait_for(echo.got, 5)
            finally:
                transport.abort()

        assert aio.run(main()) == b"hi"
        thread.join(5)


def test_connect_raises_the_last_error_when_every_address_refuses() -> None:
    with socket.socket() as one, socket.socket() as two:
        one.bind(("127.0.0.1", 0))
        two.bind(("127.0.0.1", 0))
        with pytest.raises(ConnectionRefusedError):
            aio.run(net.connect(Echo, [one.getsockname(), two.getsockname()], None, "x"))
    with pytest.raises(OSError, match="no address for svc.test"):
        aio.run(net.connect(Echo, [], None, "svc.test"))


def test_addresses_of_a_literal_need_no_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_lookups(*args, **kwargs):
        raise AssertionError("looked up an IP literal")

    monkeypatch.setattr(socket, "getaddrinfo", no_lookups)

    async def main():
        return await net.addresses("::1", 80, True, net.deadline_in(1), 1)

    assert aio.run(main()) == [("::1", 80)]
    assert net.ip_literal("::1") is not None and net.ip_literal("svc.test") is None


def test_a_stuck_lookup_fails_in_words_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: gate.wait(10))

    async def main():
        return await net.addresses("stuck.test", 80, False, net.deadline_in(0.2), 0.2)

    started = time.monotonic()
    try:
        with pytest.raises(net.Failure, match=r"^cannot resolve host stuck.test: no answer "
                                              r"within 0\.2s$"):
            aio.run(main())
    finally:
        gate.set()
    assert time.monotonic() - started < 2


def test_within_cancels_the_step_at_the_deadline() -> None:
    cancelled = []

    async def forever() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await net.within(net.deadline_in(0.05), forever())
        assert await net.within(net.deadline_in(1), asyncio.sleep(0, "done")) == "done"
        with pytest.raises(net.Failure, match="^too slow$"):
            await net.within_or(net.deadline_in(0.05), forever(), "too slow")

    aio.run(main())
    assert cancelled == [True, True]


def test_tls_contexts_are_cached_per_trust_setting() -> None:
    on, off = net.tls_context(True, None), net.tls_context(False, None)
    assert on is net.tls_context(True, None) and off is net.tls_context(False, None)
    assert on.verify_mode == ssl.CERT_REQUIRED and on.check_hostname
    assert off.verify_mode == ssl.CERT_NONE and not off.check_hostname


def _with(exc: BaseException, **attributes: str) -> BaseException:
    """An exception with the attributes OpenSSL's own would carry."""
    for name, value in attributes.items():
        setattr(exc, name, value)
    return exc


@pytest.mark.parametrize(
    ("exc", "summary"),
    [
        (net.Failure("said as is"), "said as is"),
        (TimeoutError(), "timed out after 2.5s"),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
         "cannot resolve host svc.test (Name or service not known)"),
        (_with(ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)"),
               reason="WRONG_VERSION_NUMBER"), "TLS handshake failed: WRONG_VERSION_NUMBER"),
        (ssl.SSLError("made by Python"), "TLS handshake failed: made by Python"),
        (_with(ssl.SSLCertVerificationError(1, "certificate verify failed"),
               reason="CERTIFICATE_VERIFY_FAILED", verify_message="certificate has expired"),
         "TLS certificate verify failed: certificate has expired"),
        (ssl.SSLCertVerificationError("bare"), "TLS certificate verify failed: bare"),
        (ConnectionRefusedError(111, "Connection refused"), "connection refused (svc.test:8443)"),
        (ConnectionResetError(104, "Connection reset by peer"), "connection reset by the server"),
        (OSError(113, "No route to host"), "cannot connect to svc.test:8443: No route to host"),
        (ValueError("odd"), "probe error: ValueError: odd"),
    ],
)
def test_describe(exc: BaseException, summary: str) -> None:
    assert net.describe(exc, "svc.test", "svc.test:8443", 2.5) == summary
