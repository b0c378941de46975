"""The metrics listener under many, slow and broken clients: real sockets on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from watchdog.httpconn import MAX_HEAD
from watchdog.httpserve import MetricsServer
from watchdog.metrics import Metrics
from watchdog.model import CheckState, ProbeResult

pytestmark = pytest.mark.timeout(60)

REQUEST = b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n"


class CountingMetrics(Metrics):
    """The real Metrics, counting its renders."""

    def __init__(self) -> None:
        super().__init__()
        self.renders = 0

    def render(self) -> bytes:
        self.renders += 1  # only the listener's thread renders
        return super().render()


def populated(checks: int, name_length: int = 10) -> CountingMetrics:
    metrics = CountingMetrics()
    for i in range(checks):
        name = f"c{i:05d}".ljust(name_length, "x")
        metrics.observe_result(name, ProbeResult(ok=True, summary="", latency=0.01),
                               CheckState(), lag=0.001)
    return metrics


@pytest.fixture
def many_files() -> Iterator[None]:
    """Room for a few thousand sockets in this process (client and server ends)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 16384 if hard == resource.RLIM_INFINITY else min(hard, 16384)
    if wanted < 4096:
        pytest.skip(f"the open-files hard limit ({hard}) is too low for this test")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@contextlib.contextmanager
def serving(metrics: Metrics | None = None, **options) -> Iterator[MetricsServer]:
    server = MetricsServer(metrics or Metrics(), "127.0.0.1", 0, lambda: (True, "ok"), **options)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def threads() -> int:
    """OS threads of this process (Python's and any native ones)."""
    return len(os.listdir("/proc/self/task"))


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def exchange(server: MetricsServer, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes, return everything answered until the server's EOF."""
    with socket.create_connection(server.address, timeout=timeout) as sock:
        sock.sendall(data)
        return read_all(sock)


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.") else 0


def no_errors_logged(caplog: pytest.LogCaptureFixture) -> bool:
    return not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def _storm(address: tuple[str, int], clients: int, counted: list[int]) -> list[bytes]:
    """Open every connection first (all held open at once), then send every request."""
    opened = await asyncio.gather(*(asyncio.open_connection(*address) for _ in range(clients)))
    counted.append(threads())

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        writer.write(REQUEST)
        try:
            return await reader.read()
        finally:
            writer.close()

    return await asyncio.wait_for(asyncio.gather(*(one(r, w) for r, w in opened)), 30)


def test_a_thousand_simultaneous_scrapes_are_all_answered_by_a_few_renders(many_files):
    metrics = populated(200)
    with serving(metrics) as server:
        before = threads()
        counted: list[int] = []
        answers = asyncio.run(_storm(server.address, 1000, counted))
        page = metrics.render()
    assert [status_of(a) for a in answers] == [200] * 1000
    assert all(a.endswith(page) for a in answers)  # nothing changed: every page is whole
    assert metrics.renders - 1 < 100  # renders shared: far fewer than one per scrape
    assert counted[0] == before  # 1,000 open connections, not one more thread


def test_slow_clients_cost_no_thread_delay_nobody_and_are_cut_at_the_read_deadline():
    with serving(populated(10), read_timeout=1.0) as server:
        before = threads()
        slow = [socket.create_connection(server.address, timeout=10) for _ in range(200)]
        try:
            for sock in slow:
                sock.sendall(b"GET /metr")  # half a request line, then nothing
            assert threads() == before
            assert status_of(exchange(server, REQUEST)) == 200  # answered while they stall
            assert status_of(exchange(server, b"GET /healthz HTTP/1.0\r\n\r\n")) == 200
            answers = [read_all(sock) for sock in slow]  # each ends at the server's EOF
        finally:
            for sock in slow:
                sock.close()
    assert {status_of(a) for a in answers} == {408}


def test_a_client_that_never_reads_is_aborted_at_the_write_deadline():
    metrics = populated(3000, name_length=120)  # a page bigger than the kernel's buffers
    page_size = len(metrics.render())
    with serving(metrics, write_timeout=1.0) as server:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        try:
            sock.connect(server.address)
            sock.sendall(REQUEST)
            time.sleep(1.5)  # not reading, past the deadline (the server's, not a wait)
            got = read_all(sock)
        finally:
            sock.close()
        assert status_of(exchange(server, REQUEST)) == 200
    assert status_of(got) == 200 and len(got) < page_size  # cut off, not served whole


def test_connections_past_the_cap_get_a_503_at_once_and_the_cap_frees_up(caplog):
    with serving(populated(5), max_connections=4) as server:
        idle = [socket.create_connection(server.address, timeout=10) for _ in range(4)]
        try:
            deadline = time.monotonic() + 10
            while True:  # the server may not have accepted all four yet
                answer = exchange(server, REQUEST)
                if status_of(answer) == 503 or time.monotonic() > deadline:
                    break
            assert status_of(answer) == 503 and b"too many connections" in answer
        finally:
            for sock in idle:
                sock.close()
        deadline = time.monotonic() + 10
        while status_of(exchange(server, REQUEST)) != 200:  # the slots free up
            assert time.monotonic() < deadline, "the cap never freed up"
    assert any("the most allowed" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"\x00\x01garbage\r\n\r\n", 400),
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
    (b"GET /m HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400),
    (b"DELETE /metrics HTTP/1.1\r\n\r\n", 405),
    (b"POST /metrics HTTP/1.1\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000, 405),
    (b"CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n", 405),
    (b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * (4 * MAX_HEAD) + b"\r\n\r\n", 431),
    (b"GET /" + b"a" * (4 * MAX_HEAD), 431),  # never ends
    (b"GET /metrics HTTP/2.0\r\n\r\n", 505),
    (b"GET /metrics\r\n\r\n", 505),  # HTTP/0.9
    (b"GET /healthz HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 200),
])
def test_bad_requests_get_a_clear_answer_never_a_traceback(caplog, request_bytes, status):
    with serving() as server:
        answer = exchange(server, request_bytes)
        assert status_of(answer) == status, answer[:200]
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b"Connection: close" in head and body.endswith(b"\n")
        if status == 405:
            assert b"Allow: GET, HEAD" in head
        assert status_of(exchange(server, REQUEST)) == 200  # and it goes on serving
    assert no_errors_logged(caplog)


def test_one_answer_per_connection_and_a_half_closed_client_still_gets_it():
    with serving() as server:
        answer = exchange(server, b"GET /healthz HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n")
        assert answer.count(b"HTTP/1.0 ") == 1 and answer.endswith(b"\r\n\r\nok\n")
        with socket.create_connection(server.address, timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            sock.shutdown(socket.SHUT_WR)
            assert read_all(sock).endswith(b"\r\n\r\nok\n")


def test_a_render_that_fails_is_a_500_for_each_waiting_scrape(caplog):
    class Broken(Metrics):
        def render(self) -> bytes:
            raise RuntimeError("bug")

    with serving(Broken()) as server:
        answers = [exchange(server, REQUEST) for _ in range(2)]
        assert status_of(exchange(server, b"GET /healthz HTTP/1.0\r\n\r\n")) == 200
    assert [status_of(a) for a in answers] == [500, 500]
    assert any("collecting failed" in r.getMessage() for r in caplog.records)


def test_stop_with_clients_connected_is_prompt_and_leaves_nothing_behind():
    fds, before = len(os.listdir("/proc/self/fd")), threads()
    server = MetricsServer(populated(10), "127.0.0.1", 0, lambda: (True, "ok"))
    server.start()
    port = server.address[1]
    clients = [socket.create_connection(server.address, timeout=10) for _ in range(100)]
    for sock in clients[:50]:
        sock.sendall(b"GET /metr")
    assert status_of(exchange(server, REQUEST)) == 200
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 5  # a hang guard, not a speed test
    try:
        assert all(read_all(sock) == b"" for sock in clients)  # closed by the server
    finally:
        for sock in clients:
            sock.close()
    assert not [t for t in threading.enumerate() if t.name == "metrics-http"]
    assert threads() == before and len(os.listdir("/proc/self/fd")) == fds
    again = MetricsServer(Metrics(), "127.0.0.1", port, lambda: (True, "ok"))
    again.start()  # the port is free again
    again.stop()
