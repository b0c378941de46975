"""Suite-wide guard: a test may talk to loopback only, never to PagerDuty or anything else.

The client's unit tests spell PagerDuty's real URLs (as the seed document does) and rely on
`responses` to intercept them; this guard makes "nothing leaves the machine" a property of
the suite rather than of each mock: any in-process connect to a non-loopback address fails.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator

import pytest

try:
    import uvloop
except ImportError:  # the runner falls back to asyncio's loop, whose sockets are guarded
    uvloop = None

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_sendto = socket.socket.sendto


def _loopback(address: object) -> bool:
    if not isinstance(address, tuple):
        return True  # AF_UNIX paths and abstract sockets are local by nature
    host = str(address[0])
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False  # a name that was not resolved first: refuse rather than guess


def _guarded(real):
    def connect(self: socket.socket, address: object):
        if not _loopback(address):
            raise AssertionError(f"test tried to connect to {address!r}: loopback only")
        return real(self, address)

    return connect


def _guarded_create_connection(real):
    """uvloop connects (and resolves names) inside libuv, past socket.connect: check the
    host it is given instead, and refuse any name but localhost before it is looked up."""

    async def create_connection(self, protocol_factory, host=None, port=None, **kwargs):
        if host is not None and not _loopback((host, port)):
            raise AssertionError(f"test tried to connect to {(host, port)!r}: loopback only")
        return await real(self, protocol_factory, host, port, **kwargs)

    return create_connection


def _guarded_sendto(self: socket.socket, data, *args):
    """UDP needs no connect: a datagram sent to an address is checked as it goes."""
    address = args[-1] if args else None
    if not _loopback(address):
        raise AssertionError(f"test tried to send to {address!r}: loopback only")
    return _real_sendto(self, data, *args)


def _guarded_datagram_endpoint(real):
    """uvloop connects UDP sockets inside libuv too: check remote_addr (a DNS server)."""

    async def create_datagram_endpoint(self, protocol_factory, local_addr=None,
                                       remote_addr=None, **kwargs):
        if remote_addr is not None and not _loopback(remote_addr):
            raise AssertionError(f"test tried to send to {remote_addr!r}: loopback only")
        return await real(self, protocol_factory, local_addr, remote_addr, **kwargs)

    return create_datagram_endpoint


_real_getaddrinfo = socket.getaddrinfo


def _guarded_getaddrinfo(host, *args, **kwargs):
    """Names are refused before they reach DNS (localhost and IP literals pass)."""
    if host is not None and not _loopback((host if isinstance(host, str) else host.decode(), 0)):
        raise AssertionError(f"test tried to look up {host!r}: loopback only")
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _guarded_getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", _guarded(_real_connect))
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded(_real_connect_ex))
    monkeypatch.setattr(socket.socket, "sendto", _guarded_sendto)
    if uvloop is not None:
        real = uvloop.Loop.create_connection
        monkeypatch.setattr(uvloop.Loop, "create_connection", _guarded_create_connection(real))
        real_udp = uvloop.Loop.create_datagram_endpoint
        monkeypatch.setattr(uvloop.Loop, "create_datagram_endpoint",
                            _guarded_datagram_endpoint(real_udp))



# ------------------------------------------------------------------ PostgreSQL


@pytest.fixture(scope="session")
def pg_server():
    """The suite's real PostgreSQL server (tests/pgserver.py), started on first use.

    Skips with the reason where PostgreSQL cannot be had; under CI=true fails instead, so
    CI never passes with the PostgreSQL backend untested."""
    from pgserver import PgServer, Unavailable

    try:
        server = PgServer()
    except Unavailable as exc:
        _unavailable(str(exc))
    try:
        try:
            server.start()
        except Unavailable as exc:
            _unavailable(str(exc))
        yield server
    finally:
        server.destroy()


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}", pytrace=False)
    pytest.skip(f"no PostgreSQL for these tests: {reason}")


@pytest.fixture
def pg_dsn(pg_server) -> Iterator[str]:
    """A DSN to a fresh, empty database of its own (dropped after the test)."""
    if not pg_server.running:  # a test before stopped it (and failed before starting it)
        pg_server.start()
    name = pg_server.create_database()
    yield pg_server.dsn(name)
    if not pg_server.running:
        pg_server.start()
    pg_server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def place(request: pytest.FixtureRequest, tmp_path):
    """Where a durable-store test keeps its state, once per backend (tests/stores.py)."""
    from stores import Place

    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgresql" else None
    return Place(request.param, str(tmp_path / "state"), dsn)


# ------------------------------------------------------------------ the end-to-end tests' peers


@pytest.fixture
def pd():
    """The PagerDuty stand-in (tests/fakepd.py) on a loopback port, for one test."""
    from fakepd import FakePagerDuty  # here, not at the top: conftest is copied alone

    with FakePagerDuty() as fake:
        yield fake


@pytest.fixture
def web():
    """A loopback HTTP target whose health the test switches (procs.Target)."""
    from procs import Target

    target = Target()
    yield target
    target.close()


@pytest.fixture
def store(tmp_path):
    """A real SQLite state store in tmp_path/state, locked as a runner holds it."""
    from watchdog.store import Store

    opened = Store(str(tmp_path / "state"))
    opened.lock()
    yield opened
    opened.close()
