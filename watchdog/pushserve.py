"""The push endpoint: other hosts report to passive checks over HTTP.

`POST /ping/NAME[/start|/fail|/EXIT_CODE]` with `Authorization: Bearer TOKEN`; the body (at
most BODY_CAP bytes) is the report's message. It runs on a listener of its own, with the
metrics listener's machinery (watchdog.httpserve: its own thread and event loop, bounded
connections, a deadline on every request). The token is compared in constant time, before
anything else is looked at: without it a client learns nothing, not even which checks
exist. A report is written to the state store (on a small pool, off the listener's loop)
before the 200, so the answer means it is durable; the runner reads it within a second.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hmac
import logging
import urllib.parse
from collections.abc import Callable, Container

import httptools

from watchdog.httpconn import MAX_HEAD, Connection
from watchdog.httpserve import Bounded, LoopServer
from watchdog.reports import FAIL, START, SUCCESS

log = logging.getLogger("watchdog.push")

BODY_CAP = 10 * 1024  # bytes of a report's message
WRITERS = 4  # threads writing reports to the store at once
PREFIX = b"/ping/"

# handle(name, kind, exit_code, message) -> (status, answer), on a writer thread
Handler = Callable[[str, str, "int | None", str], tuple[int, bytes]]


def parse_target(path: str, names: Container[str]) -> tuple[str, str, int | None] | None:
    """(check name, report kind, exit code) from the path after /ping/ (percent-decoded);
    None when it names no check in `names`. A last segment start, fail or a number is the
    kind unless the whole path is itself a check's name."""
    if path in names:
        return path, SUCCESS, None
    name, _, last = path.rpartition("/")
    if name not in names:
        return None
    if last == "start":
        return name, START, None
    if last == "fail":
        return name, FAIL, None
    if last.isdigit() and len(last) <= 3 and int(last) <= 255:
        code = int(last)
        return name, SUCCESS if code == 0 else FAIL, code
    return None


class PushConnection(Connection):
    """A request head and its body (up to BODY_CAP), both within the read deadline."""

    def __init__(self, listener: _PushListener) -> None:
        super().__init__(listener)
        self.authorization = b""
        self.body = bytearray()
        self.head: tuple[bytes, str, bytes] | None = None
        self.continue_wanted = False  # the client waits for a 100 before its body

    def data_received(self, data: bytes) -> None:
        if self.done or self.request is not None:
            return
        self.received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass
        except httptools.HttpParserError as exc:
            self.reply(400, f"bad request: {exc}\n".encode("ascii", "replace"))
            return
        if self.done:
            return
        if self.head is None and self.received > MAX_HEAD:
            self.reply(431, b"request head over %d bytes\n" % MAX_HEAD)
        elif self.request is not None:
            if self.timer is not None:
                self.timer.cancel()
            self.listener.serve(self, *self.request)

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        lower = name.lower()
        if lower == b"authorization":
            self.authorization = value
        elif lower == b"content-length" and value.strip().isdigit() \
                and int(value) > BODY_CAP:
            self.too_big()
        elif lower == b"expect" and value.strip().lower() == b"100-continue":
            self.continue_wanted = True

    def on_headers_complete(self) -> None:
        self.head = (self.parser.get_method(), self.parser.get_http_version(),
                     bytes(self.url))
        if self.head_size > MAX_HEAD:
            self.reply(431, b"request head over %d bytes\n" % MAX_HEAD)
        elif not self.done and self.continue_wanted:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self.done:
            return
        self.body += body
        if len(self.body) > BODY_CAP:
            self.too_big()

    def on_message_complete(self) -> None:
        if not self.done:
            self.request = self.head

    def too_big(self) -> None:
        self.reply(413, b"body over %d bytes; send the tail of the output\n" % BODY_CAP)


class _PushListener(Bounded):
    what = "push"

    def __init__(self, token: Callable[[], str], handle: Handler,
                 names: Callable[[], Container[str]], pool: concurrent.futures.Executor,
                 **limits: float) -> None:
        super().__init__(**limits)  # type: ignore[arg-type]
        self.token = token
        self.handle = handle
        self.names = names
        self.pool = pool

    def serve(self, conn: Connection, method: bytes, version: str, target: bytes) -> None:
        assert isinstance(conn, PushConnection)
        if version not in ("1.0", "1.1"):
            conn.reply(505, b"HTTP/1.0 or HTTP/1.1 only\n")
        elif not self.authorized(conn.authorization):
            conn.reply(401, b"send Authorization: Bearer TOKEN (push.token)\n",
                       extra=b'WWW-Authenticate: Bearer realm="pd-watchdog"\r\n')
        elif method != b"POST":
            conn.reply(405, b"POST only\n", extra=b"Allow: POST\r\n")
        else:
            self.report(conn, target.split(b"?", 1)[0])

    def authorized(self, header: bytes) -> bool:
        scheme, _, given = header.strip().partition(b" ")
        expected = self.token().encode("utf-8")
        # compare_digest's time depends on the lengths only, never on where they differ
        return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), expected)

    def report(self, conn: PushConnection, path: bytes) -> None:
        text = urllib.parse.unquote(path[len(PREFIX):].decode("latin-1"), errors="replace") \
            if path.startswith(PREFIX) else None
        parsed = None if text is None else parse_target(text, self.names())
        if parsed is None:
            conn.reply(404, b"no such passive check; POST /ping/NAME[/start|/fail|/EXIT_CODE]"
                       b" with NAME a passive check of the config\n")
            return
        message = bytes(conn.body).decode("utf-8", "replace")
        loop = asyncio.get_running_loop()
        done = self.pool.submit(self.handle, *parsed, message)
        done.add_done_callback(lambda future: _answer(loop, conn, future))


def _answer(loop: asyncio.AbstractEventLoop, conn: PushConnection,
            future: concurrent.futures.Future) -> None:
    """The writer's answer, handed back to the listener's loop (from the writer thread)."""
    if future.cancelled():
        return  # the server is stopping: the connection is being aborted
    try:
        status, text = future.result()
    except Exception as exc:  # a bug must be a 500, not a hung client
        log.exception("push: handling a report failed")
        status, text = 500, f"internal error: {type(exc).__name__}\n".encode()
    with contextlib.suppress(RuntimeError):  # the listener stopped meanwhile
        loop.call_soon_threadsafe(conn.reply, status, text)


class PushServer(LoopServer):
    """Serves the push endpoint; `token`, `names` read the running config at each request
    (a reload may change them), `handle` records a report and words the answer."""

    thread_name = "push-http"
    connection = PushConnection

    def __init__(self, host: str, port: int, token: Callable[[], str], handle: Handler,
                 names: Callable[[], Container[str]], **limits: float) -> None:
        super().__init__(host, port, **limits)  # type: ignore[arg-type]
        self.token, self.handle, self.names = token, handle, names
        self.pool = concurrent.futures.ThreadPoolExecutor(WRITERS, thread_name_prefix="push")

    def make_listener(self, max_connections: int) -> _PushListener:
        return _PushListener(self.token, self.handle, self.names, self.pool,
                             max_connections=max_connections, read_timeout=self.read_timeout,
                             write_timeout=self.write_timeout)

    def announce(self, address: str) -> None:
        log.info("push: serving http://%s/ping/NAME for passive checks", address)

    def stop(self) -> None:
        super().stop()
        self.pool.shutdown(wait=True, cancel_futures=True)
