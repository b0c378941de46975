"""pagerduty_api against a raw loopback server: odd 2xx bodies, redirects, trickled answers.

No HTTP framework would send these answers, so `RawServer` writes them byte by byte: what it
sends and at what pace is each test's script. Time bounds here are bounds (the request ends),
never speed claims: the margins are generous.
"""

from __future__ import annotations

# Standard library imports
import contextlib
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Third party package imports
import pytest
import requests
import trustme

# Local package imports
from pagerduty_api import Alert, PagerDutyAPIServerException
from pagerduty_api._deadline import Deadline, _Cutter, _Reaper
from procs import wait_for
from watchdog.model import CheckState, Event
from watchdog.sender import Sender
from watchdog.store import Store

pytestmark = pytest.mark.timeout(60)

KEY = "4baa5d20cfba466a5e075b02698f455c"
DRIP = 0.2  # seconds between two trickled bytes
TIMEOUT = 0.5  # the client's timeout in the trickle tests
MARGIN = 2.5  # seconds of slack on the bound: a loaded 2-core machine, never a speed claim
PAD = b"p" * 200  # 200 trickled bytes: 40 s, far past any bound if the deadline did not hold
OK_V2 = b'{"status":"success","message":"Event processed","dedup_key":"k"}'


def reply(status: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    """A whole HTTP/1.1 answer with a Content-Length."""
    head = [f"HTTP/1.1 {status}"]
    head += [f"{name}: {value}" for name, value in (headers or {}).items()]
    head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class RawServer:
    """A threaded loopback server that answers each request with scripted bytes.

    `script(request)` returns `(fast, slow)`: `fast` is sent at once, then `slow` one byte
    every DRIP seconds. Requests on one connection are served in turn until the client
    closes it. `requests` (parsed), `connections` and `received` (bytes) are what it saw;
    `finished` counts the scripts sent to the end.
    """

    def __init__(
        self,
        script: Callable[[dict[str, Any]], tuple[bytes, bytes]],
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._script = script
        self._tls = tls
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self.requests: list[dict[str, Any]] = []
        self.connections = 0
        self.received = 0
        self.finished = 0

    def __enter__(self) -> RawServer:
        self._spawn(self._accept_loop)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        for thread in list(self._threads):
            thread.join(timeout=5)
            assert not thread.is_alive(), f"{thread.name} left running"
        self._listener.close()

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name="raw-server", daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            with self._lock:
                self.connections += 1
                self._sockets.append(conn)
            self._spawn(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(None)
            if self._tls is not None:
                try:
                    conn = self._tls.wrap_socket(conn, server_side=True)
                except (OSError, ssl.SSLError):
                    return
                with self._lock:
                    self._sockets.append(conn)
            buffer = b""
            while not self._stop.is_set():
                request, buffer = self._read_request(conn, buffer)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                fast, slow = self._script(request)
                if not self._send(conn, fast, slow):
                    return

    def _read_request(self, conn: socket.socket, buffer: bytes) -> tuple[Any, bytes]:
        while b"\r\n\r\n" not in buffer:
            chunk = self._recv(conn)
            if not chunk:
                return None, b""
            buffer += chunk
        head, _, rest = buffer.partition(b"\r\n\r\n")
        line, *fields = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (f.split(":", 1) for f in fields)}
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = self._recv(conn)
            if not chunk:
                return None, b""
            rest += chunk
        body, rest = rest[:length], rest[length:]
        return {"line": line, "headers": headers, "body": body}, rest

    def _recv(self, conn: socket.socket) -> bytes:
        try:
            chunk = conn.recv(65536)
        except OSError:
            return b""
        with self._lock:
            self.received += len(chunk)
        return chunk

    def _send(self, conn: socket.socket, fast: bytes, slow: bytes) -> bool:
        try:
            if fast:
                conn.sendall(fast)
            for index in range(len(slow)):
                if self._stop.wait(DRIP):
                    return False
                conn.sendall(slow[index : index + 1])
        except OSError:
            return False  # the client gave up: what a trickle test wants
        with self._lock:
            self.finished += 1
        return True


def answering(*answers: bytes) -> Callable[[dict[str, Any]], tuple[bytes, bytes]]:
    """A script giving these answers in turn, then the last one again and again, at once."""
    queue = list(answers)
    return lambda request: (queue.pop(0) if len(queue) > 1 else queue[0], b"")


def alert(server: RawServer, api: str = "v2", **kwargs: Any) -> Alert:
    """As the runner builds it: one attempt per call (retry_deadline=0), with a session of
    its own (keep-alive, and the deadline reaches the socket while headers arrive)."""
    kwargs.setdefault("retry_deadline", 0)
    client = Alert(KEY, api=api, url=server.url, **kwargs)
    if "session" not in kwargs:
        assert client.session is not None  # made now, and closed with the Alert
    return client


def test_without_a_session_each_call_is_one_requests_post_of_its_own():
    """No session passed or asked for: the original package's transport, requests.post, a
    connection per call; the answer is read and the body cut at the deadline all the same."""
    with RawServer(answering(reply("202 Accepted", OK_V2))) as server:
        client = Alert(KEY, api="v2", url=server.url, retry_deadline=0)
        assert client.trigger("x") == json.loads(OK_V2)
        assert client.resolve() == json.loads(OK_V2)
        assert server.connections == 2 and len(server.requests) == 2
        assert client._session is None
    with RawServer(trickling("body")) as server:
        client = Alert(KEY, api="v2", url=server.url, retry_deadline=0, timeout=TIMEOUT)
        exc, elapsed = timed(lambda: client.trigger("disk full"))
        assert server.finished == 0
    assert elapsed < TIMEOUT + MARGIN and "timeout" in str(exc)


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    """Run call; return (the exception it raised, seconds it took)."""
    start = time.monotonic()
    with pytest.raises(PagerDutyAPIServerException) as caught:
        call()
    return caught.value, time.monotonic() - start


# --- A 2xx is PagerDuty taking the event -------------------------------------------------------


@pytest.mark.parametrize("api", ["v1", "v2"])
@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/html", b"<html><body>Event received</body></html>"),
        ("application/json", b""),
        ("application/json", b'[{"status": "success"}]'),
        ("application/json", b'"ok"'),
    ],
)
def test_odd_2xx_body_is_accepted_and_logged_once(caplog, api, content_type, body):
    answer = reply("200 OK", body, {"Content-Type": content_type})
    with RawServer(answering(answer)) as server, alert(server, api) as client:
        with caplog.at_level(logging.WARNING, logger="pagerduty_api"):
            result = client.trigger("disk full", incident_key="db/disk")
        assert len(server.requests) == 1  # taken, not retried
    assert result == {"status": "accepted", "raw_body": body.decode()}
    (record,) = caplog.records
    message = record.getMessage()
    assert record.levelname == "WARNING" and "answered 200" in message
    assert content_type in message and (body.decode() or "(empty body)") in message


def test_odd_2xx_body_quoting_the_key_is_redacted(caplog):
    answer = reply("202 Accepted", f"<p>accepted for {KEY}</p>".encode(), {})
    with (
        RawServer(answering(answer)) as server,
        alert(server) as client,
        caplog.at_level(logging.WARNING, logger="pagerduty_api"),
    ):
        result = client.resolve("db/disk")
    assert result["raw_body"] == "<p>accepted for …455c</p>"
    assert KEY not in caplog.text and "…455c" in caplog.text


def test_normal_answer_is_returned_as_documented():
    with RawServer(answering(reply("202 Accepted", OK_V2))) as server, alert(server) as client:
        assert client.trigger("x") == json.loads(OK_V2)
        assert client.resolve() == json.loads(OK_V2)  # same connection, kept alive
        assert server.connections == 1 and len(server.requests) == 2


# --- Redirects are never followed ----------------------------------------------------------------


@pytest.mark.parametrize("api", ["v1", "v2"])
@pytest.mark.parametrize(
    "status",
    ["301 Moved Permanently", "302 Found", "307 Temporary Redirect", "308 Permanent Redirect"],
)
def test_redirect_is_an_error_and_the_key_never_travels(api, status):
    target = RawServer(answering(reply("202 Accepted", OK_V2)))
    with target:
        location = f"{target.url}/v2/enqueue"
        moved = reply(status, b"moved", {"Location": location})
        with RawServer(answering(moved)) as server, alert(server, api) as client:
            with pytest.raises(PagerDutyAPIServerException) as caught:
                client.trigger("disk full")
            assert len(server.requests) == 1
            assert KEY in server.requests[0]["body"].decode()  # what must not go elsewhere
        assert (target.connections, target.received) == (0, 0)
    exc = caught.value
    assert exc.status_code == int(status[:3])
    assert f"redirecting to {location}" in str(exc) and "fix the url setting" in str(exc)


# --- One deadline for the whole exchange -------------------------------------------------------

JSON_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
PADDED = b'{"pad": "' + PAD + b'"}'
TRICKLES = {  # where the answer trickles: (sent at once, trickled)
    "status line": (b"", b"HTTP/1.1 200 O" + PAD + b"K\r\nContent-Length: 2\r\n\r\n{}"),
    "headers": (b"HTTP/1.1 200 OK\r\n", b"X-Pad: " + PAD + b"\r\nContent-Length: 2\r\n\r\n{}"),
    "body": (JSON_HEAD + b"Content-Length: %d\r\n\r\n" % len(PADDED), PADDED),
    "body until close": (JSON_HEAD + b"Connection: close\r\n\r\n", PADDED),
    "chunked body": (
        JSON_HEAD + b"Transfer-Encoding: chunked\r\n\r\n",
        b"%x\r\n%s\r\n0\r\n\r\n" % (len(PADDED), PADDED),
    ),
}


def trickling(where: str) -> Callable[[dict[str, Any]], tuple[bytes, bytes]]:
    return lambda request: TRICKLES[where]


@pytest.mark.parametrize("where", list(TRICKLES))
def test_a_trickled_answer_ends_at_the_deadline(where):
    with RawServer(trickling(where)) as server, alert(server, timeout=TIMEOUT) as client:
        exc, elapsed = timed(lambda: client.trigger("disk full"))
        assert server.finished == 0  # the answer was still coming when the client gave up
    assert elapsed < TIMEOUT + MARGIN
    assert exc.status_code is None
    assert f"within the {TIMEOUT} s timeout (connect, send and read it all)" in str(exc)


@pytest.mark.parametrize("where", ["headers", "body until close"])
def test_a_trickle_over_tls_ends_at_the_deadline(tmp_path, monkeypatch, where):
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # they would win over session.verify
        monkeypatch.delenv(name, raising=False)
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    with RawServer(trickling(where), tls=context) as server:
        with alert(server, timeout=TIMEOUT) as client:
            client.session.verify = str(tmp_path / "ca.pem")
            exc, elapsed = timed(lambda: client.trigger("disk full"))
        assert len(server.requests) == 1 and server.finished == 0
    assert elapsed < TIMEOUT + MARGIN and "timeout" in str(exc)


def test_a_trickled_body_is_cut_on_a_callers_session_too():
    """A session with stock adapters still gets the body cut (the answer shuts its socket)."""
    with RawServer(trickling("body until close")) as server, requests.Session() as session:
        with alert(server, timeout=TIMEOUT, session=session) as client:
            exc, elapsed = timed(lambda: client.trigger("disk full"))
        assert server.finished == 0
    assert elapsed < TIMEOUT + MARGIN and "timeout" in str(exc)


def test_a_trickle_through_a_proxy_ends_at_the_deadline(monkeypatch):
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    calls = []

    def proxy_script(request: dict[str, Any]) -> tuple[bytes, bytes]:
        calls.append(request["line"])
        return TRICKLES["headers"] if len(calls) == 1 else (reply("202 Accepted", OK_V2), b"")

    with RawServer(proxy_script) as proxy:
        client = Alert(
            KEY, api="v2", url="http://events.invalid", retry_deadline=0, timeout=TIMEOUT
        )
        client.session.proxies = {"http": proxy.url}
        with client:
            exc, elapsed = timed(lambda: client.trigger("disk full"))
            assert client.resolve() == json.loads(OK_V2)  # the same proxy, again
    assert elapsed < TIMEOUT + MARGIN and "timeout" in str(exc)
    assert calls == ["POST http://events.invalid/v2/enqueue HTTP/1.1"] * 2


def test_a_trickle_is_retried_like_any_timeout_within_retry_deadline():
    first = True

    def script(request: dict[str, Any]) -> tuple[bytes, bytes]:
        nonlocal first
        if first:
            first = False
            return TRICKLES["body"]
        return reply("202 Accepted", OK_V2), b""

    with RawServer(script) as server, alert(server, timeout=TIMEOUT, retry_deadline=30) as client:
        client._jitter = lambda low, high: 0.0
        assert client.trigger("disk full") == json.loads(OK_V2)
        assert len(server.requests) == 2


def test_the_deadline_holds_for_a_silent_server():
    """Nothing at all comes back: the read timeout (the time left) ends it."""
    with RawServer(lambda request: (b"", b"")) as server, alert(server, timeout=TIMEOUT) as c:
        exc, elapsed = timed(lambda: c.trigger("x"))
    assert elapsed < TIMEOUT + MARGIN and "timeout" in str(exc)


def test_requests_that_are_not_deadlines_pass_through_the_pools():
    with RawServer(answering(reply("200 OK", b"hi"))) as server, alert(server) as client:
        response = client.session.get(server.url, timeout=2)
    assert response.text == "hi"


# --- The timer itself ----------------------------------------------------------------------------


class FakeConnection:
    def __init__(self, sock: socket.socket | None) -> None:
        self.sock = sock


class RefusingAnswer:
    def __init__(self) -> None:
        self.tries = 0

    def shutdown(self) -> None:
        self.tries += 1
        raise RuntimeError("already released to the pool")


@pytest.fixture
def reaper(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Reaper]:
    """A deadline thread of the test's own, quick to go idle; it must be gone at the end."""
    own = _Reaper()
    monkeypatch.setattr(own, "IDLE_SECONDS", 0.1)
    yield own
    thread = own._thread
    if thread is not None:
        thread.join(timeout=10)
        assert not thread.is_alive(), "the deadline thread outlived its deadlines"


def fired_cutter(reaper: _Reaper) -> _Cutter:
    cutter = _Cutter(time.monotonic(), reaper)
    cutter.start()
    wait_for(lambda: cutter.fired, timeout=5, what="the deadline to fire")
    return cutter


def test_what_is_watched_after_the_deadline_is_cut_at_once(reaper):
    left, right = socket.socketpair()
    with left, right:
        cutter = fired_cutter(reaper)
        cutter.watch(connection=FakeConnection(left))
        left.settimeout(5)
        assert left.recv(1) == b""  # shut down: a read ends at once
        answer = RefusingAnswer()
        cutter.watch(answer=answer)  # refusing is fine: it means nothing is being read
        assert answer.tries == 1
        cutter.watch(connection=FakeConnection(None))  # not connected yet: nothing to cut
        left.close()
        cutter.watch(connection=FakeConnection(left))  # closed already: nothing to cut
        cutter.stop()


def test_a_stopped_deadline_never_cuts(reaper):
    left, right = socket.socketpair()
    with left, right:
        cutter = _Cutter(time.monotonic() + 0.2, reaper)
        cutter.start()
        cutter.watch(connection=FakeConnection(left))
        cutter.stop()
        cutter.fire()  # as if the thread had picked it just before stop() came
        time.sleep(0.4)  # past its end: the thread wakes, finds it stopped, goes idle
        assert not cutter.fired
        right.sendall(b"x")
        assert left.recv(1) == b"x"


def test_a_short_deadline_is_not_kept_waiting_behind_a_long_one(reaper):
    long = _Cutter(time.monotonic() + 1.2, reaper)
    long.start()
    short = _Cutter(time.monotonic() + 0.05, reaper)
    short.start()
    wait_for(lambda: short.fired, timeout=0.9, what="the short deadline, before the long one")
    assert not long.fired
    short.stop()
    long.stop()


def test_the_deadline_thread_starts_on_demand_and_ends_when_idle(reaper):
    first = fired_cutter(reaper)
    thread = reaper._thread
    assert thread is not None and thread.name == "pagerduty-deadline" and thread.daemon
    first.stop()  # fired, then stopped: nothing is left in flight
    wait_for(lambda: not thread.is_alive(), timeout=5, what="the idle thread to end")
    again = fired_cutter(reaper)  # a new thread for the next deadline
    assert reaper._thread is not thread
    again.stop()


def test_a_deadline_that_comes_while_the_thread_idles_keeps_it(reaper, monkeypatch):
    monkeypatch.setattr(reaper, "IDLE_SECONDS", 0.5)
    fired_cutter(reaper).stop()
    thread = reaper._thread
    wait_for(lambda: reaper.idling, timeout=5, what="the thread to go idle")
    later = _Cutter(time.monotonic() + 0.8, reaper)  # after the idle period: no wake-up
    later.start()
    wait_for(lambda: later.fired, timeout=5, what="the later deadline to fire")
    assert reaper._thread is thread  # the same thread stayed for it
    later.stop()


def test_deadline_clones_share_the_end_and_the_timer():
    deadline = Deadline(30)
    clone = deadline.clone()
    assert (clone.seconds, clone.end, clone._cutter) == (30, deadline.end, deadline._cutter)
    assert 29 < clone.connect_timeout <= 30 and 29 < clone.read_timeout <= 30
    late = Deadline(30, _end=time.monotonic() - 1)
    assert late.read_timeout == 0 and late.connect_timeout == 0.001 and late.expired
    assert not late.cut


# --- The sender moves on -----------------------------------------------------------------------


def test_sender_delivers_the_resolve_behind_an_html_200(tmp_path: Path):
    """The resolve must not wait behind a trigger PagerDuty already took."""
    html = reply("200 OK", b"<html>OK</html>", {"Content-Type": "text/html"})
    store = Store(str(tmp_path / "state"))
    store.lock()
    trigger = Event("trigger", "db/disk", "db/disk", "down", "warning", "host1", {})
    resolve = Event("resolve", "db/disk", "db/disk", "up", "warning", "host1")
    store.record(
        "db/disk", "fp", "db/disk", CheckState(passes=2), None, time.time(), [trigger, resolve]
    )
    try:
        with RawServer(answering(html)) as server:
            sender = Sender(
                store, alert(server, timeout=2), lanes=1, backoff_base=0.05,
                trigger_backoff_max=0.2, resolve_backoff_max=0.2,
            )
            sender.start()
            sender.wake()
            try:
                wait_for(
                    lambda: store.outbox_stats(time.time())["pending"] == 0,
                    timeout=10,
                    what="the outbox to drain",
                )
            finally:
                sender.stop(flush_timeout=1)
            actions = [json.loads(r["body"])["event_action"] for r in server.requests]
        assert actions == ["trigger", "resolve"]
        assert store.outbox_stats(time.time())["sent"] == {"trigger": 1, "resolve": 1}
    finally:
        store.close()
