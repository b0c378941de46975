"""A fake PagerDuty Events API on loopback, close enough to answer like the real one
(Events API v1 and v2, and the Change Events API at /v2/change/enqueue).

Tests drive the real client against it, so what they prove holds over real HTTP: keep-alive
connections, status codes, Retry-After, requests that never get an answer. It keeps what a
PagerDuty account would show (incidents per key) and what arrived (accepted events, every
request), and can fail on demand: the next n requests, or every request until told otherwise.
With set_rate_limit() it also throttles like PagerDuty: 429 (v1: 403) beyond n calls per
routing key in any rolling window (PagerDuty: about 120 per 60 s).

    with FakePagerDuty() as pd:
        alert = Alert(KEY, api="v2", url=pd.url)
        ...
        pd.wait_for(lambda: len(pd.incidents) == 1, timeout=5)

Standalone (for the benchmark): `python tests/fakepd.py --port 0 --log events.jsonl` prints
its URL on the first line and appends each accepted event as one JSON line to the log.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import signal
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

V2_PATH = "/v2/enqueue"
V1_PATH = "/generic/2010-04-15/create_event.json"
CHANGE_PATH = "/v2/change/enqueue"
KEY_LENGTH = 32
MAX_DEDUP_KEY = 255
MAX_SUMMARY = 1024
SEVERITIES = ("critical", "error", "warning", "info")
ACTIONS = ("trigger", "acknowledge", "resolve")
MODES = ("ok", "500", "429", "403", "hang")
MAX_BODY = 1024 * 1024

# A valid-looking 32-character key for tests (never a real one).
TEST_KEY = "0123456789abcdef0123456789abcdef"

T = TypeVar("T")

_INVALID = {"status": "invalid event", "message": "Event object is invalid"}
_FAILURES: dict[int, dict[str, Any]] = {
    400: {**_INVALID, "errors": ["Injected failure (fail_next)"]},
    429: {
        "status": "throttle event",
        "message": "Requests for this service are arriving too quickly. Please retry later.",
    },
    403: {
        "status": "throttle event",
        "message": "Requests for this service are arriving too quickly. Please retry later.",
    },
    500: {"status": "error", "message": "Internal server error"},
    502: {"status": "error", "message": "Bad gateway"},
    503: {"status": "error", "message": "Service unavailable"},
}


class _Hung(Exception):
    """A request held in hang mode was released without an answer."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fake: FakePagerDuty) -> None:
        self.fake = fake
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._conns_lock:
                self._conns.discard(request)

    def drop_connections(self) -> None:
        """Cut every open connection so keep-alive clients cannot reach a stopped server."""
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as requests' pool expects
    timeout = 30  # idle keep-alive connections do not hold a thread forever
    # One write per answer, sent at once: split writes meet delayed ACKs (40 ms per request).
    wbufsize = -1
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        """Quiet: tests read `requests` instead of stderr."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(min(length, MAX_BODY)) if length > 0 else b""
        try:
            status, body, headers = self.server.fake._handle(self.path, raw)
        except _Hung:
            self.close_connection = True
            return
        self._answer(status, body, headers)

    def do_GET(self) -> None:
        self._answer(404, {"status": "not found", "message": "Not found"}, {})

    def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class FakePagerDuty:
    """A loopback PagerDuty Events API (v1 and v2) with incidents and fault injection."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, log_path: str | None = None
    ) -> None:
        self._address = (host, port)
        self._lock = threading.Condition()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._log = open(log_path, "a", encoding="utf-8") if log_path else None  # noqa: SIM115
        self._stopping = False
        self._hanging = 0
        self.reset()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakePagerDuty:
        """Bind and serve in a background thread; returns self."""
        if self._server is not None:
            return self
        self._stopping = False
        self._server = _Server(self._address, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fakepd",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, release hung requests and cut open connections."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.drop_connections()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._log is not None:
            with self._lock:
                self._log.close()
                self._log = None

    def __enter__(self) -> FakePagerDuty:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL for the client, like http://127.0.0.1:PORT."""
        if self._server is None:
            raise RuntimeError("FakePagerDuty is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    # ------------------------------------------------------------- fault injection

    def fail_next(self, n: int, status: int = 500, retry_after: float | None = None, *,
                  path: str | None = None) -> None:
        """Answer the next n event requests (only those to `path`, if given) with `status`
        (500, 429, 403, 400, ...).

        A 400 carries PagerDuty's invalid-event body; a 429/403 its throttle body.
        """
        with self._lock:
            self._failures.extend([(status, retry_after, path)] * n)

    def set_mode(self, mode: str, retry_after: float | None = None) -> None:
        """Set "ok", an outage answering "500"/"429"/"403", or "hang" (never answer).

        Requests held by "hang" are released when the mode changes or the server stops, and
        then dropped without an answer (the client sees a broken connection), as a black hole
        would; they are never processed late.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        with self._lock:
            self._mode = mode
            self._mode_retry_after = retry_after
            self._lock.notify_all()

    def set_valid_keys(self, keys: Iterable[str] | None) -> None:
        """Accept only these routing/service keys (None: any 32-character key)."""
        with self._lock:
            self._valid_keys = set(keys) if keys is not None else None

    def set_key_types(self, types: dict[str, str] | None) -> None:
        """Tie keys to an integration type, "v1" (Generic API) or "v2" (Events API v2): a key
        sent to the other API is refused as PagerDuty refuses it (400, "Invalid routing key"
        on v2, "Invalid service key" on v1). Keys not named are taken as before."""
        with self._lock:
            self._key_types = dict(types or {})

    def set_rate_limit(self, calls: int | None, window: float = 60.0) -> None:
        """Throttle as PagerDuty does: beyond `calls` calls per routing key in the last
        `window` seconds, answer 429 (v1: 403) and drop the event. None: no limit.

        PagerDuty documents "approximately 120 calls/minute per integration key", counted
        "over a 60 second window looking back from the current time"; every call counts,
        refused ones too (throttled, failed by a fault, invalid), so hammering a throttled
        key keeps it throttled.
        """
        if calls is not None and (calls < 1 or window <= 0):
            raise ValueError(f"rate limit needs calls >= 1 and window > 0, got {calls}, {window}")
        with self._lock:
            self._rate_limit = None if calls is None else (calls, float(window))
            self._calls = {}

    def reset(self) -> None:
        """Forget everything seen and every injected fault (the rate limit too)."""
        with self._lock:
            self._rate_limit: tuple[int, float] | None = None
            self._calls: dict[str, deque[float]] = {}  # per routing key: arrival times
            self._rate_limited = 0
            self._mode = "ok"
            self._mode_retry_after: float | None = None
            self._failures: list[tuple[int, float | None, str | None]] = []
            self._valid_keys: set[str] | None = None
            self._key_types: dict[str, str] = {}
            self._incidents: list[dict[str, Any]] = []
            self._open: dict[str, dict[str, Any]] = {}
            self._events: list[dict[str, Any]] = []
            self._requests: list[dict[str, Any]] = []
            self._changes: list[dict[str, Any]] = []
            self._seq = 0  # one count over events and change events: the order they came in
            self._lock.notify_all()

    # ------------------------------------------------------------------ snapshots

    @property
    def incidents(self) -> list[dict[str, Any]]:
        """Every incident: key, opened_at, resolved_at (None while open), trigger_count."""
        with self._lock:
            return copy.deepcopy(self._incidents)

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every accepted event: api, action, key, body (dict), received_at, seq."""
        with self._lock:
            return copy.deepcopy(self._events)

    @property
    def change_events(self) -> list[dict[str, Any]]:
        """Every accepted change event (kept apart from `events`): body (dict), received_at,
        seq (shared with `events`: sort both by it to see the order they arrived in)."""
        with self._lock:
            return copy.deepcopy(self._changes)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request, failed ones too: path, status (None if never answered), body, ..."""
        with self._lock:
            return copy.deepcopy(self._requests)

    @property
    def rate_limited(self) -> int:
        """How many calls the rate limit refused (status 429/403, "rate_limited" in requests)."""
        with self._lock:
            return self._rate_limited

    @property
    def hanging(self) -> int:
        """How many requests are being held without an answer right now."""
        with self._lock:
            return self._hanging

    def open_incidents(self) -> dict[str, dict[str, Any]]:
        """Open incidents by key."""
        with self._lock:
            return copy.deepcopy(self._open)

    def actions_for(self, key: str) -> list[str]:
        """The accepted actions for one key, in arrival order."""
        with self._lock:
            return [event["action"] for event in self._events if event["key"] == key]

    def wait_for(
        self, predicate: Callable[[], T], timeout: float = 5.0, interval: float = 0.01
    ) -> T:
        """Poll predicate() until truthy and return its value; AssertionError with a snapshot
        of what arrived when the deadline passes."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"condition not met within {timeout}s; {self.describe()}")
            time.sleep(interval)

    def describe(self) -> str:
        """A short snapshot for assertion messages."""
        with self._lock:
            events = [(e["action"], e["key"]) for e in self._events[-20:]]
            statuses = [r["status"] for r in self._requests[-20:]]
            return (
                f"mode={self._mode} events={len(self._events)} (last {events}) "
                f"requests={len(self._requests)} (last statuses {statuses}) "
                f"incidents={len(self._incidents)} open={sorted(self._open)}"
            )

    # ------------------------------------------------------------------- handling

    def _handle(self, path: str, raw: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Answer one POST; called on the server's handler threads."""
        now = time.time()
        try:
            body: Any = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, ValueError):
            body = None
            parsed_ok = False
        else:
            parsed_ok = True
        entry: dict[str, Any] = {
            "method": "POST",
            "path": path,
            "body": body,
            "received_at": now,
            "status": None,
        }
        with self._lock:
            self._requests.append(entry)
            if path not in (V1_PATH, V2_PATH, CHANGE_PATH):
                entry["status"] = 404
                return 404, {"status": "not found", "message": "Not found"}, {}
            if self._over_rate_limit(path, body, now):
                entry["status"] = status = 403 if path == V1_PATH else 429
                entry["rate_limited"] = True
                return status, dict(_FAILURES[status]), {}
            fault = self._fault(path)
            if fault == "hang":
                self._hang()
                raise _Hung
            if fault is not None:
                status, retry_after = fault
                entry["status"] = status
                headers = {}
                if retry_after is not None:
                    headers["Retry-After"] = _seconds(retry_after)
                return status, dict(_FAILURES.get(status, _FAILURES[500])), headers
            api = {V2_PATH: "v2", V1_PATH: "v1", CHANGE_PATH: "change"}[path]
            if not parsed_ok:
                errors = ["Event object is not valid JSON"]
            elif api == "change":
                errors = self._validate_change(body)
            elif api == "v2":
                errors = self._validate_v2(body)
            else:
                errors = self._validate_v1(body)
            if errors:
                entry["status"] = 400
                return 400, {**_INVALID, "errors": errors}, {}
            if api == "change":
                self._seq += 1
                self._changes.append({"body": body, "received_at": now, "seq": self._seq})
                entry["status"] = 202
                return 202, {"status": "success", "message": "Change event processed"}, {}
            status, answer = self._accept(api, body, now)
            entry["status"] = status
            return status, answer, {}

    def _over_rate_limit(self, path: str, body: Any, now: float) -> bool:
        """Count this call against its key; True if that key is over the limit (lock held)."""
        if self._rate_limit is None or not isinstance(body, dict):
            return False
        key = body.get("service_key" if path == V1_PATH else "routing_key")
        if not isinstance(key, str):
            return False
        calls, window = self._rate_limit
        arrivals = self._calls.setdefault(key, deque())
        while arrivals and arrivals[0] <= now - window:
            arrivals.popleft()
        arrivals.append(now)
        if len(arrivals) <= calls:
            return False
        self._rate_limited += 1
        return True

    def _fault(self, path: str) -> tuple[int, float | None] | str | None:
        for index, (status, retry_after, only) in enumerate(self._failures):
            if only is None or only == path:
                del self._failures[index]
                return status, retry_after
        if self._mode == "hang":
            return "hang"
        if self._mode != "ok":
            return int(self._mode), self._mode_retry_after
        return None

    def _hang(self) -> None:
        """Hold the handler (lock held on entry) until the mode changes or the server stops."""
        self._hanging += 1
        try:
            while self._mode == "hang" and not self._stopping:
                self._lock.wait(0.5)
        finally:
            self._hanging -= 1

    def _key_errors(self, body: dict[str, Any], field: str) -> list[str]:
        key = body.get(field)
        if not isinstance(key, str) or not key:
            return [f"'{field}' is missing or blank"]
        if len(key) != KEY_LENGTH:
            return [f"'{field}' must be {KEY_LENGTH} characters"]
        if self._valid_keys is not None and key not in self._valid_keys:
            return [f"Invalid {field.replace('_', ' ')}"]
        api = "v2" if field == "routing_key" else "v1"
        if self._key_types.get(key, api) != api:
            return [f"Invalid {field.replace('_', ' ')}"]
        return []

    def _validate_v2(self, body: Any) -> list[str]:
        if not isinstance(body, dict):
            return ["Event object must be a JSON object"]
        errors = self._key_errors(body, "routing_key")
        action = body.get("event_action")
        if action not in ACTIONS:
            errors.append(
                "'event_action' is missing or blank"
                if not action
                else "'event_action' must be one of trigger, acknowledge, resolve"
            )
        dedup = body.get("dedup_key")
        if dedup is not None:
            if not isinstance(dedup, str):
                errors.append("'dedup_key' must be a string")
            elif len(dedup) > MAX_DEDUP_KEY:
                errors.append(f"'dedup_key' must be {MAX_DEDUP_KEY} characters or less")
        if action in ("acknowledge", "resolve") and not dedup:
            errors.append("'dedup_key' is missing or blank")
        if action == "trigger":
            payload = body.get("payload")
            if not isinstance(payload, dict):
                errors.append("'payload' is missing or blank")
            else:
                summary = payload.get("summary")
                if not isinstance(summary, str) or not summary:
                    errors.append("'payload.summary' is missing or blank")
                elif len(summary) > MAX_SUMMARY:
                    errors.append(f"'payload.summary' must be {MAX_SUMMARY} characters or less")
                source = payload.get("source")
                if not isinstance(source, str) or not source:
                    errors.append("'payload.source' is missing or blank")
                if payload.get("severity") not in SEVERITIES:
                    errors.append(
                        "'payload.severity' must be one of critical, error, warning, info"
                    )
                errors += _payload_field_errors(payload)
            errors += _context_errors(body, "links", "href")
            errors += _context_errors(body, "images", "src")
        return errors

    def _validate_change(self, body: Any) -> list[str]:
        """As the Change Events API: a routing key and a payload with a summary."""
        if not isinstance(body, dict):
            return ["Event object must be a JSON object"]
        errors = self._key_errors(body, "routing_key")
        payload = body.get("payload")
        summary = payload.get("summary") if isinstance(payload, dict) else None
        if not isinstance(summary, str) or not summary:
            errors.append("'payload.summary' is missing or blank")
        elif len(summary) > MAX_SUMMARY:
            errors.append(f"'payload.summary' must be {MAX_SUMMARY} characters or less")
        links = body.get("links")
        if links is not None and not (
            isinstance(links, list) and all(isinstance(link, dict) and link.get("href")
                                            for link in links)
        ):
            errors.append("'links' must be a list of objects with an 'href'")
        return errors

    def _validate_v1(self, body: Any) -> list[str]:
        if not isinstance(body, dict):
            return ["Event object must be a JSON object"]
        errors = self._key_errors(body, "service_key")
        action = body.get("event_type")
        if action not in ACTIONS:
            errors.append(
                "'event_type' is missing or blank"
                if not action
                else "'event_type' must be one of trigger, acknowledge, resolve"
            )
        key = body.get("incident_key")
        if key is not None and not isinstance(key, str):
            errors.append("'incident_key' must be a string")
        if action in ("acknowledge", "resolve") and not key:
            errors.append("'incident_key' is missing or blank")
        if action == "trigger":
            description = body.get("description")
            if not isinstance(description, str) or not description:
                errors.append("'description' is missing or blank")
        return errors

    def _accept(self, api: str, body: dict[str, Any], now: float) -> tuple[int, dict[str, Any]]:
        """Record a valid event and apply it to the incidents (lock held)."""
        if api == "v2":
            action, key = body["event_action"], body.get("dedup_key")
        else:
            action, key = body["event_type"], body.get("incident_key")
        if not key:
            key = uuid.uuid4().hex
        if action == "trigger":
            incident = self._open.get(key)
            if incident is None:
                incident = {"key": key, "opened_at": now, "resolved_at": None, "trigger_count": 0}
                self._incidents.append(incident)
                self._open[key] = incident
            incident["trigger_count"] += 1
        elif action == "resolve":
            incident = self._open.pop(key, None)
            if incident is not None:
                incident["resolved_at"] = now
        self._seq += 1
        event = {"api": api, "action": action, "key": key, "body": body, "received_at": now,
                 "seq": self._seq}
        self._events.append(event)
        if self._log is not None:
            self._log.write(json.dumps(event) + "\n")
            self._log.flush()
        if api == "v2":
            return 202, {"status": "success", "message": "Event processed", "dedup_key": key}
        return 200, {"status": "success", "message": "Event processed", "incident_key": key}


def _payload_field_errors(payload: dict[str, Any]) -> list[str]:
    """As PagerDuty: component, group and class are strings, custom_details an object."""
    errors = [f"'payload.{name}' must be a string" for name in ("component", "group", "class")
              if name in payload and not isinstance(payload[name], str)]
    details = payload.get("custom_details")
    if details is not None and not isinstance(details, dict):
        errors.append("'payload.custom_details' must be an object")
    return errors


def _context_errors(body: dict[str, Any], field: str, required: str) -> list[str]:
    """Links need an href, images a src (PagerDuty refuses the event otherwise)."""
    items = body.get(field)
    if items is None:
        return []
    if not isinstance(items, list) or not all(
            isinstance(item, dict) and isinstance(item.get(required), str) and item[required]
            for item in items):
        return [f"'{field}' must be a list of objects with a '{required}'"]
    return []


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM; the first stdout line is the URL."""
    parser = argparse.ArgumentParser(description="Fake PagerDuty Events API on loopback")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", help="append each accepted event as a JSON line to this file")
    parser.add_argument("--mode", choices=MODES, default="ok")
    args = parser.parse_args(argv)
    fake = FakePagerDuty(args.host, args.port, log_path=args.log).start()
    fake.set_mode(args.mode)
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    print(fake.url, flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
