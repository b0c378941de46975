"""HTTP probe against real loopback servers: plain, TLS (trustme), IPv6, misbehaving."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import json
import re
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import trustme

import watchdog
from watchdog import aio
from watchdog.probes import http
from watchdog.probes._util import fmt_seconds, parse_duration
from watchdog.probes.base import OptionError, run_once
from watchdog.probes.http import request, response

pytestmark = pytest.mark.timeout(30)

LARGE = 2 * 1024 * 1024


# --- servers -------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    """Routes for every behaviour the probe must cope with."""

    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, format: str, *args: object) -> None:  # quiet tests
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None):
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _route(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.requests.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers),
             "body": body}
        )
        stop = self.server.stop
        path = url.path
        if path == "/ok":
            self._send(200, b'{"status":"ok"}', {"Content-Type": "application/json"})
        elif path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            self._send(code, f"status {code} body".encode())
        elif path == "/slow":
            stop.wait(float(query["d"]))
            self._send(200, b"slow but fine")
        elif path == "/hang":
            stop.wait(20)  # accepts, reads the request, never answers
        elif path == "/trickle":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            with contextlib.suppress(OSError):
                while not stop.wait(0.05):
                    self.wfile.write(b"x")
                    self.wfile.flush()
        elif path == "/drip-headers":
            self.send_response_only(200)
            self.flush_headers()
            with contextlib.suppress(OSError):
                for i in range(200):  # one header line every 50 ms: never a whole response
                    if stop.wait(0.05):
                        break
                    self.wfile.write(f"X-Drip-{i}: x\r\n".encode())
                    self.wfile.flush()
        elif path == "/redirect":
            code = int(query.get("code", "302"))
            self._send(code, b"moved", {"Location": query["to"]})
        elif path == "/loop":
            self._send(302, b"", {"Location": "/loop"})
        elif path.startswith("/chain/"):
            left = int(path.rsplit("/", 1)[1])
            if left:
                self._send(301, b"", {"Location": f"/chain/{left - 1}"})
            else:
                self._send(200, b"end of chain")
        elif path == "/large":
            self.send_response(200)
            self.send_header("Content-Length", str(LARGE))
            self.end_headers()
            block = b"a" * 65536
            with contextlib.suppress(OSError):
                for _ in range(LARGE // len(block) - 1):
                    self.wfile.write(block)
                self.wfile.write(block[:-3] + b"END")
        elif path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"hello ", b"chunked ", b"world"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/short":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"only ten..")
            self.close_connection = True
        elif path == "/garbage":
            self.wfile.write(b"NOT HTTP AT ALL\r\n\r\n")
            self.close_connection = True
        elif path == "/close":
            self.close_connection = True
        elif path == "/echo":
            self._send(200, json.dumps(self.server.requests[-1], default=str).encode())
        elif path == "/raw":  # exactly the bytes the test put in server.raw, piece by piece
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            hold = "hold" in query  # keep the connection open until the probe closes it
            try:
                for piece in self.server.raw:
                    self.wfile.write(piece)
                    stop.wait(0.001)  # most pieces then reach the probe in reads of their own
                if hold:
                    self.server.held.set()
                    if self.rfile.read(1) == b"":
                        self.server.released.set()
            except (BrokenPipeError, ConnectionResetError):  # the probe closed it first
                if hold:
                    self.server.released.set()
            except OSError:
                pass
            self.close_connection = True
        else:
            self._send(404, b"no such route")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _route


class Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that is quiet about clients hanging up and can speak TLS.

    Handler threads are joined on server_close (block_on_close), so nothing outlives a test.
    """

    request_queue_size = 128  # socketserver's 5 drops connects when many probes arrive at once

    def __init__(self, host: str, family: int = socket.AF_INET, tls: ssl.SSLContext | None = None):
        self.address_family = family
        self.tls = tls
        self.stop = threading.Event()
        self.requests: list[dict] = []
        self.raw: list[bytes] = []  # what /raw answers
        self.held = threading.Event()  # /raw?hold=1 has answered and keeps the connection
        self.released = threading.Event()  # ... and the probe has closed it
        super().__init__((host, 0), Handler)

    def handle_error(self, request, client_address) -> None:
        pass

    def finish_request(self, request, client_address) -> None:
        request.settimeout(10)
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        with self.tls.wrap_socket(request, server_side=True) as tls_request:
            super().finish_request(tls_request, client_address)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def url(self, path: str = "/ok") -> str:
        host = self.server_address[0]
        scheme = "https" if self.tls else "http"
        shown = f"[{host}]" if ":" in host else host
        return f"{scheme}://{shown}:{self.port}{path}"


@contextlib.contextmanager
def serving(host: str = "127.0.0.1", **kwargs) -> Iterator[Server]:
    server = Server(host, **kwargs)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5

    def extra() -> set[threading.Thread]:
        # the resolver pool is process-wide by design: its idle threads wait for the next name
        now = set(threading.enumerate()) - before
        return {t for t in now if not t.name.startswith("resolve_")}

    while (left := extra()) and time.monotonic() < deadline:
        next(iter(left)).join(0.05)
    assert not left, f"threads left behind: {left}"


@pytest.fixture
def server() -> Iterator[Server]:
    with serving() as srv:
        yield srv


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def tls_server(ca: trustme.CA, *identities: str, **cert_kwargs):
    cert = ca.issue_cert(*(identities or ("localhost", "127.0.0.1", "::1")), **cert_kwargs)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return serving(tls=context)


@pytest.fixture
def https_server(ca: trustme.CA) -> Iterator[Server]:
    with tls_server(ca) as srv:
        yield srv


def probe(spec: dict, base_dir: str = "/") -> http.HttpProbe:
    return http.parse({"http": spec}, base_dir)


def timed_run(p: http.HttpProbe, timeout: float):
    start = time.monotonic()
    result = run_once(p, timeout)
    return result, time.monotonic() - start


# --- passing and status ---------------------------------------------------------------


def test_pass_summary_and_details(server: Server) -> None:
    result = run_once(probe({"url": server.url("/ok")}), 5)
    assert result.ok, result
    assert result.severity is None
    assert re.fullmatch(r"HTTP 200 in [\d.]+ ms", result.summary)
    assert set(result.details) == {"url", "status_code", "latency_ms"}
    assert result.details["url"] == server.url("/ok")
    assert result.details["status_code"] == 200
    assert 0 < result.latency < 5


def test_request_is_what_was_configured(server: Server) -> None:
    spec = {
        "url": server.url("/echo?x=1"),
        "method": "put",
        "headers": {"X-Token": "s3cret", "X-Count": 3},
        "json": {"a": [1, 2], "b": "ü"},
    }
    assert run_once(probe(spec), 5).ok
    seen = server.requests[-1]
    assert seen["method"] == "PUT"
    assert seen["path"] == "/echo?x=1"
    assert json.loads(seen["body"]) == {"a": [1, 2], "b": "ü"}
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    assert headers["x-token"] == "s3cret"
    assert headers["x-count"] == "3"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == f"pd-watchdog/{watchdog.__version__}"
    assert headers["connection"] == "close"
    assert headers["host"] == f"127.0.0.1:{server.port}"


def test_plain_body_and_own_content_type(server: Server) -> None:
    spec = {"url": server.url("/echo"), "method": "POST", "body": "a=1",
            "headers": {"Content-Type": "application/x-www-form-urlencoded"}}
    assert run_once(probe(spec), 5).ok
    seen = server.requests[-1]
    assert seen["body"] == b"a=1"
    assert seen["headers"]["Content-Type"] == "application/x-www-form-urlencoded"


def test_head_request(server: Server) -> None:
    assert run_once(probe({"url": server.url("/ok"), "method": "HEAD"}), 5).ok
    assert server.requests[-1]["method"] == "HEAD"


@pytest.mark.parametrize(
    ("path", "expect", "ok", "summary"),
    [
        ("/status/503", None, False, "status 503 (expected 2xx)"),
        ("/status/204", None, True, None),
        ("/status/404", 404, True, None),
        ("/status/404", [200, 204], False, "status 404 (expected 200, 204)"),
        ("/ok", 201, False, "status 200 (expected 201)"),
        ("/status/500", [500, 503], True, None),
    ],
)
def test_expect_status(server: Server, path, expect, ok, summary) -> None:
    spec = {"url": server.url(path)}
    if expect is not None:
        spec["expect_status"] = expect
    result = run_once(probe(spec), 5)
    assert result.ok is ok, result
    assert result.severity is None
    if summary:
        assert result.summary == summary
        assert result.details["status_code"] == int(summary.split()[1])
        assert "body_excerpt" in result.details


def test_body_contains(server: Server) -> None:
    assert run_once(probe({"url": server.url("/ok"), "body_contains": '"status":"ok"'}), 5).ok
    result = run_once(probe({"url": server.url("/ok"), "body_contains": '"status":"down"'}), 5)
    assert not result.ok
    assert result.summary == "body does not contain '\"status\":\"down\"'"
    assert result.details["body_excerpt"] == '{"status":"ok"}'


def test_body_regex(server: Server) -> None:
    assert run_once(probe({"url": server.url("/ok"), "body_regex": r'"status":\s*"o.'}), 5).ok
    result = run_once(probe({"url": server.url("/ok"), "body_regex": r"^down$"}), 5)
    assert not result.ok
    assert result.summary == "body does not match /^down$/"


def test_chunked_body(server: Server) -> None:
    assert run_once(probe({"url": server.url("/chunked"), "body_contains": "chunked world"}), 5).ok


def test_large_body_is_capped(server: Server) -> None:
    result = run_once(probe({"url": server.url("/large")}), 5)
    assert result.ok, result
    assert result.details["body_truncated"] is True
    result = run_once(probe({"url": server.url("/large"), "body_contains": "END"}), 5)
    assert not result.ok
    assert result.summary == "body does not contain 'END' in the first 1 MiB"
    assert len(result.details["body_excerpt"]) == 200


def test_short_body_fails(server: Server) -> None:
    result = run_once(probe({"url": server.url("/short")}), 5)
    assert not result.ok
    assert result.summary.startswith("incomplete body: connection closed after 10 bytes")


def test_not_http_and_no_response(server: Server) -> None:
    result = run_once(probe({"url": server.url("/garbage")}), 5)
    assert not result.ok and result.summary.startswith("bad HTTP response: BadStatusLine")
    result = run_once(probe({"url": server.url("/close")}), 5)
    assert not result.ok
    assert result.summary == "server closed the connection without a response"


# --- response parsing (exact bytes from /raw) -----------------------------------------


def raw(server: Server, *pieces: bytes, hold: bool = False) -> str:
    """The URL of /raw answering `pieces`, each in a write of its own; with hold, the
    server then keeps the connection open until the probe closes it."""
    server.raw = list(pieces)
    return server.url("/raw?hold=1" if hold else "/raw")


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"6;name=value\r\nhello \r\n" b"B\r\nchunked wor\r\n" b"2\r\nld\r\n"
           b"0\r\nX-Trailer: t\r\n\r\n")


def test_chunked_in_small_pieces_and_kept_open(server: Server) -> None:
    """Every byte its own write (extensions and trailers included), then the server keeps
    the connection open: the last chunk ends the body, the probe closes the connection."""
    url = raw(server, *bytewise(CHUNKED), hold=True)
    result = run_once(probe({"url": url, "body_regex": "^hello chunked world$"}), 5)
    assert result.ok, result
    assert server.released.wait(5), "the probe left the connection open"


@pytest.mark.parametrize("split", [False, True])
def test_interim_responses_are_skipped(server: Server, split: bool) -> None:
    pieces = [b"HTTP/1.1 100 Continue\r\n\r\n",
              b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n",
              b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nfinal"]
    url = raw(server, *pieces) if split else raw(server, b"".join(pieces))
    result = run_once(probe({"url": url, "body_regex": "^final$"}), 5)
    assert result.ok, result
    assert result.details["status_code"] == 201


@pytest.mark.parametrize(("method", "status"), [("HEAD", 200), ("GET", 204), ("GET", 304)])
def test_no_body_whatever_content_length_says(server: Server, method: str, status: int) -> None:
    url = raw(server, b"HTTP/1.1 %d X\r\nContent-Length: 1000\r\n\r\n" % status, hold=True)
    result = run_once(probe({"url": url, "method": method, "expect_status": status}), 5)
    assert result.ok, result  # waiting for 1000 bytes would have timed out
    assert server.released.wait(5)


def test_switching_protocols_is_a_final_status(server: Server) -> None:
    """101 ends the HTTP exchange: the probe reports it (llhttp's upgrade signal is no
    error) and does not wait for what the other protocol would say."""
    head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    url = raw(server, head, b"\x81\x05hello", hold=True)
    result = run_once(probe({"url": url, "expect_status": 101}), 5)
    assert result.ok, result
    assert result.details["status_code"] == 101
    assert server.released.wait(5)


@pytest.mark.parametrize(
    ("response", "summary"),
    [
        (b"HTTP/1.1 200 OK", None),
        (b"HTTP/1.1 200 OK\r\n", None),
        (b"HTTP/1.1 200 OK\r\nX-A: 1", None),
        (b"HTTP/1.1 200 OK\r\nX-A: 1\r", None),
        (b"HTTP/1.1 200 OK\nX-A: 1\n", None),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5",
         "incomplete body: connection closed after 0 bytes"),
    ],
)
def test_a_head_cut_short_ends_where_its_bytes_end(
    server: Server, response: bytes, summary: str | None
) -> None:
    """The server closes in the middle of the head: as http.client read it, the head ends
    there (and a body without a length, here none, runs to the close)."""
    result = run_once(probe({"url": raw(server, response), "body_regex": "^$"}), 5)
    if summary is None:
        assert result.ok, result
    else:
        assert result.summary == summary


def test_transfer_encoding_identity_means_none(server: Server) -> None:
    """An old keep-alive server's `identity` + Content-Length: the length ends the body."""
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nContent-Length: 2\r\n\r\nok"
    result = run_once(probe({"url": raw(server, head, hold=True), "body_contains": "ok"}), 5)
    assert result.ok, result  # reading to close would have timed out
    assert server.released.wait(5)


def test_response_head_limits(server: Server) -> None:
    line = b"X-Big: " + b"b" * 4089 + b"\r\n"  # 4 KiB
    head = b"HTTP/1.1 200 OK\r\n%sContent-Length: 2\r\n\r\nok"
    assert run_once(probe({"url": raw(server, head % (line * 15))}), 5).ok  # 60 KiB
    result = run_once(probe({"url": raw(server, head % (line * 17))}), 5)  # 68 KiB
    assert result.summary == ("bad HTTP response: LineTooLong: got more than 65536 bytes when "
                              "reading the response head")
    many = [b"X-N%d: v\r\n" % i for i in range(99)]  # + Content-Length: 100 fields
    assert run_once(probe({"url": raw(server, head % b"".join(many))}), 5).ok
    result = run_once(probe({"url": raw(server, head % b"".join([*many, b"X-M: 1\r\n"]))}), 5)
    assert result.summary == "bad HTTP response: HTTPException: got more than 100 headers"


@pytest.mark.parametrize("tls", [False, True])
def test_body_without_length_runs_to_the_close(
    server: Server, https_server: Server, ca_file: str, tls: bool
) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
    url = raw(https_server if tls else server, head + b"\r\n", b"first part, ", b"last part")
    spec = {"url": url, "ca_file": ca_file, "body_regex": "^first.*last part$"}
    result = run_once(probe(spec), 5)
    assert result.ok, result
    assert "body_truncated" not in result.details


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (b"Content-Length: abc\r\n", "Invalid character in Content-Length"),
        (b"Content-Length: 5, 6\r\n", "Invalid character in Content-Length"),
        (b"Content-Length: +5\r\n", "Invalid character in Content-Length"),
        (b"Content-Length: 5, 5\r\n", "Invalid character in Content-Length"),
        (b"Content-Length: 5\r\nContent-Length: 5\r\n", "Duplicate Content-Length"),
    ],
    ids=["letters", "two-values", "plus-sign", "repeated-value", "repeated-field"],
)
@pytest.mark.parametrize("tls", [False, True])
def test_invalid_content_length_is_a_bad_response(
    server: Server, https_server: Server, ca_file: str, fields: bytes, reason: str, tls: bool
) -> None:
    """RFC 9112 6.3: a client must treat an invalid Content-Length as an unrecoverable
    error. llhttp also refuses a repeated one (the RFC would let it count once); the old
    parser read all of these to the close, as http.client does."""
    head = b"HTTP/1.1 200 OK\r\n" + fields + b"\r\n"
    url = raw(https_server if tls else server, head, b"hello", b" world")
    result = run_once(probe({"url": url, "ca_file": ca_file}), 5)
    assert result.summary == f"bad HTTP response: {reason}"
    assert result.details["status_code"] is None


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\nContent-Type: text/plain\nContent-Length: 11\n\nhello world",
        # a bare LF ends the status line and fields (RFC 9112 2.2), CRLF the chunk lines
        b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\n",
        b"HTTP/1.0 200\r\nContent-Length:  11 \r\n\r\nhello world",  # no reason phrase
        # obsolete line folding: the folded Transfer-Encoding still says chunked
        b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nTransfer-Encoding:\r\n\tchunked\r\n\r\n"
        b"B\r\nhello world\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n"
        b"B\r\nhello world\r\n0\r\n\r\n",  # chunked last: Content-Length is ignored
        # what follows a complete response is not read (nor a parse error)
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 11\r\n\r\nhello worldJUNK",
        b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello worldHTTP/1.1 500 No\r\n\r\n",
        # an HTTP/1.x minor version above 1 is HTTP/1.1 to a client (RFC 9112 2.3)
        b"HTTP/1.2 200 OK\r\nContent-Length: 11\r\n\r\nhello world",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nhello world",
    ],
    ids=["bare-LF", "bare-LF-chunked", "no-reason", "folded", "gzip-chunked", "junk-after",
         "next-response-after", "HTTP/1.2", "identity-to-close"],
)
def test_tolerated_response_forms(server: Server, response: bytes) -> None:
    for pieces in ([response], bytewise(response)):
        result = run_once(probe({"url": raw(server, *pieces), "body_regex": "^hello world$"}), 5)
        assert result.ok, (pieces, result)


@pytest.mark.parametrize(
    ("response", "summary"),
    [
        (b"HTTP/2 200 OK\r\n\r\n", "bad HTTP response: BadStatusLine: 'HTTP/2 200 OK'"),
        (b"HTTP/1.1 2OO OK\r\n\r\n", "bad HTTP response: BadStatusLine: 'HTTP/1.1 2OO OK'"),
        (b"HTTP/1.1 099 Low\r\n\r\n", "bad HTTP response: BadStatusLine: 'HTTP/1.1 099 Low'"),
        (b"\x15\x03\x03\x00\x02\x02\x46", "bad HTTP response: BadStatusLine: "
         "'\\x15\\x03\\x03\\x00\\x02\\x02F'"),  # a TLS alert, as an https port answers
        (b"HTTP/1.1 100 Continue\r\n\r\n", "server closed the connection without a response"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
         "incomplete body: connection closed after 3 bytes"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
         "incomplete body: connection closed after 5 bytes"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
         "bad HTTP response: Invalid character in chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
         "bad HTTP response: Expected LF after chunk data"),
        # RFC 9112 7.1: chunk lines end in CRLF (2.2's bare-LF leniency is for the head)
        (b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n6\nhello \n5\nworld\n0\n\n",
         "bad HTTP response: Expected LF after chunk size"),
        (b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "bad HTTP response: Invalid header token"),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 099 Low\r\n\r\n",
         "bad HTTP response: BadStatusLine: status 099"),
    ],
    ids=["HTTP/2", "letters", "099", "TLS-alert", "only-interim", "cut-in-chunk",
         "no-last-chunk", "bad-chunk-size", "chunk-too-long", "bare-LF-chunked",
         "bad-field-name", "099-after-interim"],
)
def test_malformed_responses(server: Server, response: bytes, summary: str) -> None:
    for pieces in ([response], bytewise(response)):
        result = run_once(probe({"url": raw(server, *pieces)}), 5)
        assert result.summary == summary, pieces


def test_body_of_exactly_the_cap_is_complete(server: Server) -> None:
    body = b"a" * (http.BODY_CAP - 3) + b"END"
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
    result = run_once(probe({"url": raw(server, head, body), "body_contains": "END"}), 5)
    assert result.ok, result
    assert "body_truncated" not in result.details


# --- time ----------------------------------------------------------------------------


def test_max_response_time(server: Server) -> None:
    result = run_once(probe({"url": server.url("/slow?d=0.3"), "max_response_time": "100ms"}), 5)
    assert not result.ok
    assert re.fullmatch(r"response took 0\.\d+s \(max 0\.1s\)", result.summary), result.summary
    assert run_once(probe({"url": server.url("/slow?d=0.05"), "max_response_time": 2}), 5).ok


def test_hang_times_out(server: Server) -> None:
    result, took = timed_run(probe({"url": server.url("/hang")}), 0.4)
    assert not result.ok
    assert result.summary == "timed out after 0.4s"
    assert took < 1.5
    assert result.details["status_code"] is None


def test_trickling_body_times_out(server: Server) -> None:
    result, took = timed_run(probe({"url": server.url("/trickle")}), 0.5)
    assert not result.ok
    assert result.summary == "timed out after 0.5s"
    assert 0.45 < took < 1.5


def test_dripping_headers_time_out_at_the_deadline(server: Server) -> None:
    """Each recv gets what is left of the deadline, not a fresh timeout per header line."""
    result, took = timed_run(probe({"url": server.url("/drip-headers")}), 0.5)
    assert not result.ok
    assert result.summary == "timed out after 0.5s"
    assert took < 1.5


def test_deadline_covers_redirects(server: Server) -> None:
    result, took = timed_run(probe({"url": server.url("/redirect?to=/hang")}), 0.3)
    assert result.summary == f"timed out after 0.3s (at {server.url('/hang')})"
    assert took < 1.5


def test_listener_that_never_accepts_times_out() -> None:
    with socket.socket() as listener:  # the kernel completes the handshake; nobody reads
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        result, took = timed_run(probe({"url": f"http://127.0.0.1:{port}/"}), 0.3)
        assert result.summary == "timed out after 0.3s"
        result, took = timed_run(probe({"url": f"https://127.0.0.1:{port}/"}), 0.3)
        assert result.summary == "timed out after 0.3s"  # stuck in the TLS handshake
        assert took < 1.5


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_cancelled_run_raises_and_closes_the_connection(scheme: str) -> None:
    """A run cancelled from outside (shutdown) raises CancelledError, not a result, and
    leaves no socket open: waiting for the response (http) or in the TLS handshake."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(5)
        p = probe({"url": f"{scheme}://127.0.0.1:{listener.getsockname()[1]}/",
                   "verify_tls": False})

        def drain(sock: socket.socket) -> None:
            """Read until the probe closes the connection (a 5 s timeout fails the test)."""
            while sock.recv(65536):
                pass

        async def main() -> None:  # blocking socket calls go to a thread: the loop runs on
            loop = asyncio.get_running_loop()
            task = asyncio.ensure_future(p.run(30))
            sock, _ = await loop.run_in_executor(None, listener.accept)
            with sock:
                sock.settimeout(5)
                # the request or the ClientHello has arrived: the probe is waiting on us
                assert await loop.run_in_executor(None, sock.recv, 1, socket.MSG_PEEK)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                await loop.run_in_executor(None, drain, sock)

        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always", ResourceWarning)
            aio.run(main())
            gc.collect()
        assert not [w for w in seen if issubclass(w.category, ResourceWarning)], seen


def test_cancelled_while_reading_the_body(server: Server) -> None:
    url = raw(server, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf", hold=True)

    async def main() -> None:
        task = asyncio.ensure_future(probe({"url": url}).run(30))
        deadline = time.monotonic() + 5
        while not server.held.is_set():
            assert time.monotonic() < deadline, "the server never answered"
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    aio.run(main())
    assert server.released.wait(5), "the probe left the connection open"


# --- redirects -----------------------------------------------------------------------


def test_a_run_holds_at_most_open_sockets_connections(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPEN_SOCKETS (what the runner's open-files estimate counts per HTTP check) holds
    through a chain of redirects: each hop's connection is closed before the next opens."""
    real_connect = response.net.connect
    transports: list[asyncio.Transport] = []
    most = [0]

    async def counting_connect(*args, **kwargs):
        transport, protocol = await real_connect(*args, **kwargs)
        transports.append(transport)
        most[0] = max(most[0], sum(not t.is_closing() for t in transports))
        return transport, protocol

    monkeypatch.setattr(response.net, "connect", counting_connect)
    assert run_once(probe({"url": server.url("/chain/5")}), 5).ok
    assert len(transports) == 6
    assert most[0] == http.OPEN_SOCKETS
    assert all(t.is_closing() for t in transports)


def test_redirect_followed(server: Server) -> None:
    result = run_once(probe({"url": server.url("/redirect?to=/ok")}), 5)
    assert result.ok, result
    assert result.details["final_url"] == server.url("/ok")
    assert run_once(probe({"url": server.url("/chain/5")}), 5).ok


def test_too_many_redirects(server: Server) -> None:
    for path in ("/loop", "/chain/6"):
        result = run_once(probe({"url": server.url(path)}), 5)
        assert not result.ok
        assert result.summary == "too many redirects (more than 5)"


def test_redirect_not_followed(server: Server) -> None:
    spec = {"url": server.url("/redirect?to=/ok"), "follow_redirects": False}
    assert run_once(probe(spec), 5).summary == "status 302 (expected 2xx)"
    assert run_once(probe({**spec, "expect_status": 302}), 5).ok


def test_redirect_methods(server: Server) -> None:
    spec = {"url": server.url("/redirect?code=303&to=/echo"), "method": "POST", "body": "x"}
    assert run_once(probe(spec), 5).ok
    assert (server.requests[-1]["method"], server.requests[-1]["body"]) == ("GET", b"")
    spec["url"] = server.url("/redirect?code=307&to=/echo")
    assert run_once(probe(spec), 5).ok
    assert (server.requests[-1]["method"], server.requests[-1]["body"]) == ("POST", b"x")


def test_redirect_to_other_scheme_and_host_drops_credentials(
    server: Server, https_server: Server, ca_file: str
) -> None:
    target = https_server.url("/echo")
    spec = {"url": server.url(f"/redirect?to={target}"), "ca_file": ca_file,
            "headers": {"Authorization": "Bearer t", "X-Keep": "1"}}
    result = run_once(probe(spec), 5)
    assert result.ok, result
    assert result.details["final_url"] == target
    headers = https_server.requests[-1]["headers"]
    assert "Authorization" not in headers and headers["X-Keep"] == "1"
    # same origin keeps it
    assert run_once(probe({**spec, "url": server.url("/redirect?to=/echo")}), 5).ok
    assert server.requests[-1]["headers"]["Authorization"] == "Bearer t"


# --- connection failures -------------------------------------------------------------


def test_connection_refused() -> None:
    with socket.socket() as bound:  # bound, not listening: connects are refused
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        result = run_once(probe({"url": f"http://127.0.0.1:{port}/"}), 2)
    assert not result.ok
    assert result.summary == f"connection refused (127.0.0.1:{port})"
    assert result.severity is None


def test_cannot_resolve(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_host(*args, **kwargs):  # no real DNS: the test network is loopback only
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    result = run_once(probe({"url": "https://example.invalid/health"}), 2)
    assert not result.ok
    assert result.summary.startswith("cannot resolve host example.invalid")


def test_every_address_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name with two addresses, both refusing: each is tried, the failure is worded once."""
    with socket.socket() as one, socket.socket() as two:  # bound, not listening
        one.bind(("127.0.0.1", 0))
        port = one.getsockname()[1]
        try:
            two.bind(("127.0.0.2", port))
        except OSError:
            pytest.skip("no second loopback address here")

        def two_addresses(host, *args, **kwargs):
            assert host == "multi.test"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
                    for ip in ("127.0.0.1", "127.0.0.2")]

        monkeypatch.setattr(socket, "getaddrinfo", two_addresses)
        result = run_once(probe({"url": f"http://multi.test:{port}/"}), 2)
    assert result.summary == f"connection refused (multi.test:{port})"


def test_ipv6_literal() -> None:
    try:
        srv = serving("::1", family=socket.AF_INET6)
        server = srv.__enter__()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        url = server.url("/echo")
        assert url.startswith("http://[::1]:")
        assert run_once(probe({"url": url}), 5).ok
        assert server.requests[-1]["headers"]["Host"] == f"[::1]:{server.port}"
    finally:
        srv.__exit__(None, None, None)


def test_probe_is_reusable_across_threads(server: Server) -> None:
    p = probe({"url": server.url("/ok"), "body_contains": "ok"})
    results = []

    def worker() -> None:
        results.extend(run_once(p, 5).ok for _ in range(20))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert results == [True] * 120


# --- TLS ------------------------------------------------------------------------------


def test_https_with_ca_file(https_server: Server, ca_file: str) -> None:
    result = run_once(probe({"url": https_server.url("/ok"), "ca_file": ca_file,
                    "cert_min_days": 14}), 5)
    assert result.ok, result
    assert result.details["cert_days_left"] > 300 * 365


def test_ca_file_relative_to_base_dir(https_server: Server, ca_file: str) -> None:
    folder = Path(ca_file).parent
    assert run_once(probe({"url": https_server.url(), "ca_file": "ca.pem"}, str(folder)), 5).ok


def test_https_unknown_ca_fails(https_server: Server) -> None:
    result = run_once(probe({"url": https_server.url("/ok")}), 5)
    assert not result.ok
    assert result.summary.startswith("TLS certificate verify failed: ")
    assert "issuer" in result.summary
    assert result.severity is None


def test_https_hostname_mismatch(ca: trustme.CA, ca_file: str) -> None:
    with tls_server(ca, "only.example") as srv:
        result = run_once(probe({"url": srv.url(), "ca_file": ca_file}), 5)
    assert result.summary.startswith("TLS certificate verify failed: ")
    assert "mismatch" in result.summary


def test_verify_off_still_reports_expiry(https_server: Server, ca_file: str) -> None:
    off = run_once(probe({"url": https_server.url("/ok"), "verify_tls": False}), 5)
    on = run_once(probe({"url": https_server.url("/ok"), "ca_file": ca_file}), 5)
    assert off.ok and on.ok
    assert off.details["cert_days_left"] == on.details["cert_days_left"]


@pytest.mark.parametrize("verify", [True, False])
def test_cert_min_days(ca: trustme.CA, ca_file: str, verify: bool) -> None:
    soon = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=5, hours=1)
    with tls_server(ca, not_after=soon) as srv:
        spec = {"url": srv.url(), "cert_min_days": 14}
        spec.update({"ca_file": ca_file} if verify else {"verify_tls": False})
        result = run_once(probe(spec), 5)
        assert not result.ok
        assert result.summary == "certificate expires in 5 days (min 14)"
        assert result.details["cert_days_left"] == 5
        assert run_once(probe({**spec, "cert_min_days": 5}), 5).ok


def test_expired_cert(ca: trustme.CA, ca_file: str) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    with tls_server(ca, not_before=now - dt.timedelta(days=30),
                    not_after=now - dt.timedelta(days=3, hours=1)) as srv:
        verified = run_once(probe({"url": srv.url(), "ca_file": ca_file}), 5)
        assert verified.summary.startswith("TLS certificate verify failed: certificate has expired")
        result = run_once(probe({"url": srv.url(), "verify_tls": False, "cert_min_days": 1}), 5)
        assert result.summary == "certificate expired 4 days ago (min 1)"


# --- options ---------------------------------------------------------------------------


def test_url_forms() -> None:
    t = request._Target.from_url("http://[::1]:8080/a b?q=ü")
    assert (t.host, t.port, t.host_header, t.path) == ("::1", 8080, "[::1]:8080", "/a%20b?q=%C3%BC")
    t = request._Target.from_url("https://Example.COM/")
    assert (t.host, t.port, t.host_header, t.tls) == ("example.com", 443, "example.com", True)
    assert request._Target.from_url("http://h:80").path == "/"


@pytest.mark.parametrize(
    ("spec", "path", "words"),
    [
        ({}, "http.url", "required"),
        ({"url": 5}, "http.url", "must be a string"),
        ({"url": "ftp://x/"}, "http.url", "http:// or https://"),
        ({"url": "http:///path"}, "http.url", "no host"),
        ({"url": "http://h:99999/"}, "http.url", "not a valid URL"),
        ({"url": "http://u:p@h/"}, "http.url", "credentials"),
        ({"url": "http://h/", "method": "GE T"}, "http.method", "HTTP method"),
        ({"url": "http://h/", "headers": ["a"]}, "http.headers", "mapping"),
        ({"url": "http://h/", "headers": {"X-A": "a\r\nB: c"}}, "http.headers.X-A", "line"),
        ({"url": "http://h/", "headers": {"X-A": True}}, "http.headers.X-A", "quote"),
        ({"url": "http://h/", "headers": {"Bad Name": "x"}}, "http.headers.Bad Name", "name"),
        ({"url": "http://h/", "headers": {"Content-Length": "1"}}, "http.headers.Content-Length",
         "automatically"),
        ({"url": "http://h/", "body": "a", "json": {}}, "http.json", "not both"),
        ({"url": "http://h/", "body": {"a": 1}}, "http.body", "json"),
        ({"url": "http://h/", "json": {"d": dt.date(2024, 1, 1)}}, "http.json", "JSON"),
        ({"url": "http://h/", "verify_tls": "no"}, "http.verify_tls", "true or false"),
        ({"url": "http://h/", "follow_redirects": 1}, "http.follow_redirects", "true or false"),
        ({"url": "http://h/", "ca_file": "missing.pem"}, "http.ca_file", "not found"),
        ({"url": "https://h/", "ca_file": "x.pem", "verify_tls": False}, "http.ca_file",
         "no effect"),
        ({"url": "http://h/", "expect_status": "200"}, "http.expect_status", "100 to 599"),
        ({"url": "http://h/", "expect_status": [200, 700]}, "http.expect_status[1]", "599"),
        ({"url": "http://h/", "expect_status": []}, "http.expect_status", "at least one"),
        ({"url": "http://h/", "expect_status": True}, "http.expect_status", "599"),
        ({"url": "http://h/", "body_contains": ""}, "http.body_contains", "non-empty"),
        ({"url": "http://h/", "body_regex": "(unclosed"}, "http.body_regex", "invalid"),
        ({"url": "http://h/", "max_response_time": "2 parsecs"}, "http.max_response_time",
         "500ms"),
        ({"url": "http://h/", "max_response_time": 0}, "http.max_response_time", "positive"),
        ({"url": "https://h/", "cert_min_days": -1}, "http.cert_min_days", "0 or more"),
        ({"url": "https://h/", "cert_min_days": "14"}, "http.cert_min_days", "whole number"),
        ({"url": "http://h/", "cert_min_days": 14}, "http.cert_min_days", "https://"),
        ({"url": "http://h/", "expect_stauts": 200}, "http.expect_stauts", "expect_status"),
    ],
)
def test_parse_errors(spec: dict, path: str, words: str, tmp_path: Path) -> None:
    (tmp_path / "x.pem").write_text("not used")
    with pytest.raises(OptionError) as info:
        http.parse({"http": spec}, str(tmp_path))
    paths = {p for p, _ in info.value.problems}
    assert path in paths, info.value.problems
    message = dict(info.value.problems)[path]
    assert words in message, message


def test_parse_reports_all_problems_at_once() -> None:
    with pytest.raises(OptionError) as info:
        http.parse({"http": {"url": "gopher://x", "method": 3, "expect_status": 9,
                             "body_regex": "[", "timeout": 3}}, "/")
    assert {p for p, _ in info.value.problems} == {
        "http.url", "http.method", "http.expect_status", "http.body_regex", "http.timeout"}


def test_parse_rejects_non_mapping() -> None:
    with pytest.raises(OptionError) as info:
        http.parse({"http": "http://h/"}, "/")
    assert info.value.problems[0][0] == "http"


def test_bad_ca_bundle(tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("-----BEGIN CERTIFICATE-----\nnope\n")
    with pytest.raises(OptionError) as info:
        http.parse({"http": {"url": "https://h/", "ca_file": "bad.pem"}}, str(tmp_path))
    assert info.value.problems[0][0] == "http.ca_file"
    assert "cannot load CA bundle" in info.value.problems[0][1]


def test_tls_contexts_are_shared(ca_file: str) -> None:
    a = probe({"url": "https://127.0.0.1:1/", "ca_file": ca_file})
    b = probe({"url": "https://127.0.0.2:1/x", "ca_file": ca_file})
    assert a.first.context is b.first.context
    assert probe({"url": "https://h/"}).first.context is probe({"url": "https://i/"}).first.context


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(2, 2.0), (0.5, 0.5), ("500ms", 0.5), ("2s", 2.0), ("1m", 60.0), ("1h", 3600.0),
     ("1.5", 1.5), (" 3s ", 3.0), ("1m30s", 90.0), ("50ms", 0.05)],
)
def test_parse_duration(text, seconds) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "-1", "0", "3 s", True, None, [1], "nan", 0.0])
def test_parse_duration_rejects(text) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_fmt_seconds() -> None:
    assert [fmt_seconds(x) for x in (2, 0.5, 2.31, 0.612, 10, 12.4)] == [
        "2s", "0.5s", "2.31s", "0.61s", "10s", "12s"]


# --- name lookups ----------------------------------------------------------------------


def _fake_dns(port: int, delay: float, calls: list[str], gate: threading.Event | None = None):
    def getaddrinfo(host, *args, **kwargs):
        calls.append(host)
        if gate is not None:
            gate.wait(10)
        time.sleep(delay)  # a resolver a little way off
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    return getaddrinfo


def test_probes_asking_for_one_name_at_once_share_one_lookup(server, monkeypatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(socket, "getaddrinfo", _fake_dns(server.port, 0.2, calls))
    probes = [probe({"url": f"http://svc.test:{server.port}/ok"}) for _ in range(20)]

    async def main():
        return await asyncio.gather(*(p.run(5) for p in probes))

    results = aio.run(main())
    assert all(r.ok for r in results), [r.summary for r in results]
    assert calls == ["svc.test"]


def test_many_slow_names_are_looked_up_side_by_side(server, monkeypatch) -> None:
    """40 names at 0.3 s each fit a 2 s timeout: lookups run in parallel, not 8 at a time."""
    calls: list[str] = []
    monkeypatch.setattr(socket, "getaddrinfo", _fake_dns(server.port, 0.3, calls))
    probes = [probe({"url": f"http://svc{i}.test:{server.port}/ok"}) for i in range(40)]

    async def main():
        return await asyncio.gather(*(p.run(2) for p in probes))

    results = aio.run(main())
    assert all(r.ok for r in results), [r.summary for r in results if not r.ok]
    assert len(calls) == 40


def test_a_lookup_that_never_answers_says_so_within_the_timeout(server, monkeypatch) -> None:
    gate = threading.Event()
    calls: list[str] = []
    monkeypatch.setattr(socket, "getaddrinfo", _fake_dns(server.port, 0, calls, gate))
    try:
        started = time.monotonic()
        result = run_once(probe({"url": f"http://stuck.test:{server.port}/ok"}), 0.3)
        assert time.monotonic() - started < 2
        assert result.summary == "cannot resolve host stuck.test: no answer within 0.3s"
    finally:
        gate.set()
