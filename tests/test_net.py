"""watchdog.probes.net, the plumbing every network probe shares, used directly: deadlines,
lookups, connecting, TLS contexts, failure wording. The HTTP probe's tests cover the same
pieces end to end (tests/test_probe_http.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import threading
import time
from collections.abc import Iterator

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given
from hypothesis import strategies as st

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


# --- certificates -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _der_of(cert: trustme.LeafCert) -> bytes:
    pem = cert.cert_chain_pems[0].bytes()
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


def _issuer(ca: trustme.CA) -> str:
    return x509.load_pem_x509_certificate(ca.cert_pem.bytes()).subject.rfc4514_string()


@pytest.mark.parametrize(
    "not_after",
    [
        dt.datetime(2031, 7, 8, 9, 10, 11, tzinfo=dt.timezone.utc),  # UTCTime
        dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc),  # last UTCTime year
        dt.datetime(2050, 1, 1, 0, 0, 0, tzinfo=dt.timezone.utc),  # GeneralizedTime
        dt.datetime(2999, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc),
    ],
)
def test_certificate_facts(ca: trustme.CA, not_after: dt.datetime) -> None:
    cert = net.certificate(_der_of(ca.issue_cert("localhost", not_after=not_after)))
    assert cert is not None
    assert cert.not_after == not_after.timestamp()
    assert cert.issuer == _issuer(ca) and cert.issuer.startswith("OU=Testing CA #")
    assert cert.days_left(now=not_after.timestamp() - 5.5 * 86400) == 5
    assert cert.days_left(now=not_after.timestamp() + 0.5 * 86400) == -1  # expired


@pytest.fixture
def tls_listener(ca: trustme.CA) -> Iterator[tuple[int, dt.datetime]]:
    """A loopback port that completes one TLS handshake with a certificate from `ca`."""
    not_after = dt.datetime(2033, 3, 4, 5, 6, 7, tzinfo=dt.timezone.utc)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", not_after=not_after).configure_cert(context)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(5)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.settimeout(5)
                tls.recv(1)  # until the client closes
        except OSError:
            pass

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield listener.getsockname()[1], not_after
    finally:
        listener.close()
        thread.join(5)


def test_the_ssl_module_agrees(ca: trustme.CA, tls_listener, tmp_path) -> None:
    """Same expiry as ssl.cert_time_to_seconds on a verified peer's getpeercert(), and
    the same issuer."""
    port, _ = tls_listener
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem.bytes())
    context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, context.wrap_socket(
        raw, server_hostname="127.0.0.1"
    ) as tls:
        seen = tls.getpeercert()
        cert = net.certificate(tls.getpeercert(binary_form=True))
    assert cert is not None
    assert cert.not_after == ssl.cert_time_to_seconds(seen["notAfter"])
    issuer = dict(pair for rdn in seen["issuer"] for pair in rdn)
    assert cert.issuer == f"OU={issuer['organizationalUnitName']},O={issuer['organizationName']}"


@pytest.mark.parametrize("verify", [True, False])
def test_peer_certificate_of_a_connection(ca: trustme.CA, tls_listener, tmp_path, verify) -> None:
    """Read from the connection, verified or not (getpeercert() is empty when not)."""
    port, not_after = tls_listener
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem.bytes())
    context = net.tls_context(verify, str(tmp_path / "ca.pem") if verify else None)

    async def main():
        transport, _ = await net.connect(
            asyncio.Protocol, [("127.0.0.1", port)], context, "127.0.0.1"
        )
        try:
            return net.peer_certificate(transport)
        finally:
            transport.abort()

    assert aio.run(main()) == net.Certificate(not_after.timestamp(), _issuer(ca))


def test_no_certificate_on_plain_tcp() -> None:
    listener, thread = _accepting()

    async def main():
        transport, echo = await net.connect(Echo, [listener.getsockname()], None, "x")
        try:
            await asyncio.wait_for(echo.got, 5)
            return net.peer_certificate(transport)
        finally:
            transport.abort()

    assert aio.run(main()) is None
    thread.join(5)


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """One DER element at `pos`: (tag, content start, end)."""
    tag, length, pos = data[pos], data[pos + 1], pos + 2
    if length & 0x80:
        count = length & 0x7F
        length, pos = int.from_bytes(data[pos : pos + count], "big"), pos + count
    return tag, pos, pos + length


def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + content


def test_v1_certificate_without_version(ca: trustme.CA) -> None:
    """X.509 v1 (no [0] version, no [3] extensions): still read, long lengths and all."""
    not_after = dt.datetime(2051, 6, 7, 8, 9, 10, tzinfo=dt.timezone.utc)
    der = _der_of(ca.issue_cert("localhost", not_after=not_after))
    _, start, end = _tlv(der, 0)
    _, tbs_start, tbs_end = _tlv(der, start)
    fields, pos = [], tbs_start
    while pos < tbs_end:
        tag, _, field_end = _tlv(der, pos)
        if tag not in (0xA0, 0xA3):
            fields.append(der[pos:field_end])
        pos = field_end
    v1 = _der(0x30, _der(0x30, b"".join(fields)) + der[tbs_end:end])
    assert x509.load_der_x509_certificate(v1).version == x509.Version.v1
    cert = net.certificate(v1)
    assert cert is not None and cert.not_after == not_after.timestamp()


@pytest.mark.parametrize(
    "der",
    [b"", b"\x30", b"\x30\x05\x30\x03\x02\x01", b"\x04\x00", b"\x30\x84\xff\xff\xff\xff",
     _der(0x30, _der(0x30, _der(0x02, b"\x01") + _der(0x30, b"") + _der(0x30, b"")
                     + _der(0x30, _der(0x17, b"200101000000Z") + _der(0x17, b"991399000000Z"))))],
)
def test_garbage_is_no_certificate(der: bytes) -> None:
    assert net.certificate(der) is None


@given(st.binary(max_size=200))
def test_certificate_never_raises(data: bytes) -> None:
    result = net.certificate(data)
    assert result is None or isinstance(result, net.Certificate)


# --- TLS contexts and failure wording -----------------------------------------------------


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


@pytest.mark.parametrize(
    ("days", "min_days", "summary"),
    [
        (30, 14, None),
        (14, 14, None),
        (5, 14, "certificate expires in 5 days (min 14)"),
        (0, 1, "certificate expires in 0 days (min 1)"),
        (-3, 1, "certificate expired 3 days ago (min 1)"),
        (None, 14, "cannot read the certificate's expiry date"),
    ],
)
def test_cert_expiry_failure_is_one_verdict_for_every_kind(days, min_days, summary) -> None:
    assert net.cert_expiry_failure(days, min_days) == summary
