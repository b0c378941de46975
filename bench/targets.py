"""Loopback HTTP targets for the benchmark: many paths, set latencies, failure rates, hangs.

Run as its own process so its CPU is never the runner's:

    python bench/targets.py --port 0 --log requests.tsv

The first stdout line is the base URL. A path says how to answer:

    /<run>/<id>/<latency_ms>/<fail_permille>[/hang]

`latency_ms` delays the answer, `fail_permille` answers 500 that often (per mille), `hang`
never answers (the connection is held until the client gives up, at most HANG_MAX s).
Targets are flipped down (answer 503 at once) and up at a known instant through

    GET /_ctl/down?ids=1,2,3     GET /_ctl/up?ids=1,2,3     -> {"at": <epoch seconds applied>}
    GET /_ctl/flush              -> the request log is written out before the answer
    GET /_ctl/stats              -> {"requests": n, "cpu": utime+stime seconds}

Every request is logged as one tab-separated line: path, arrival (epoch s, when the request
was read), answer (when the answer was written, or the connection lost for a hang), status
(0 = no answer). One asyncio loop, a Protocol (no streams), HTTP/1.1 with Connection: close.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import time

HANG_MAX = 120.0  # seconds a hung request is held at most
FLUSH_EVERY = 0.5  # seconds between log writes
MAX_HEAD = 16 * 1024
_REASONS = {200: b"OK", 404: b"Not Found", 500: b"Internal Server Error", 503: b"Unavailable"}


def _answer(status: int, body: bytes, content_type: bytes = b"text/plain") -> bytes:
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
        % (status, _REASONS.get(status, b"X"), content_type, len(body))
        + body
    )


_OK = _answer(200, b"ok\n")
_DOWN = _answer(503, b"down\n")
_FAIL = _answer(500, b"injected failure\n")
_NOT_FOUND = _answer(404, b"not found\n")


class Targets:
    """Shared state: which ids are down, and the request log."""

    def __init__(self, log_path: str | None) -> None:
        self.down: set[str] = set()
        self.log: list[str] = []
        self.count = 0
        self._file = open(log_path, "a", encoding="ascii", buffering=1 << 20) if log_path else None  # noqa: SIM115
        self._random = random.Random(1234)

    def record(self, path: str, arrival: float, answer: float, status: int) -> None:
        self.count += 1
        if self._file is not None:
            self.log.append(f"{path}\t{arrival:.6f}\t{answer:.6f}\t{status}\n")

    def flush(self) -> None:
        if self._file is not None and self.log:
            lines, self.log = self.log, []
            self._file.write("".join(lines))
            self._file.flush()

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None

    def fails(self, permille: int) -> bool:
        return permille > 0 and self._random.random() * 1000 < permille


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


class Conn(asyncio.Protocol):
    __slots__ = ("targets", "transport", "buf", "path", "arrival", "timer", "done")

    def __init__(self, targets: Targets) -> None:
        self.targets = targets
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.path = ""
        self.arrival = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.done = False

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.path:
            return  # body or pipelined bytes: ignored (Connection: close)
        self.buf += data
        if b"\r\n\r\n" not in self.buf:
            if len(self.buf) > MAX_HEAD:
                self.transport.close()
            return
        self.arrival = time.time()
        line = self.buf.split(b"\r\n", 1)[0].decode("latin-1")
        self.buf = b""
        parts = line.split(" ")
        self.path = parts[1] if len(parts) >= 2 else "/"
        if self.path.startswith("/_ctl/"):
            self._control()
            return
        seg = self.path.split("/")  # ["", run, id, latency, permille, (hang)]
        if len(seg) < 5:
            self._send(404, _NOT_FOUND)
            return
        try:
            latency = int(seg[3]) / 1000.0
            permille = int(seg[4])
        except ValueError:
            self._send(404, _NOT_FOUND)
            return
        loop = asyncio.get_running_loop()
        if seg[2] in self.targets.down:
            self._send(503, _DOWN)
        elif len(seg) > 5 and seg[5] == "hang":
            self.timer = loop.call_later(HANG_MAX, self._hang_over)
        elif self.targets.fails(permille):
            self._later(loop, latency, 500, _FAIL)
        else:
            self._later(loop, latency, 200, _OK)

    def _later(self, loop, latency: float, status: int, payload: bytes) -> None:
        if latency <= 0:
            self._send(status, payload)
        else:
            self.timer = loop.call_later(latency, self._send, status, payload)

    def _send(self, status: int, payload: bytes) -> None:
        if self.done:
            return
        self.done = True
        self.transport.write(payload)
        self.transport.close()
        self.targets.record(self.path, self.arrival, time.time(), status)

    def _hang_over(self) -> None:
        if not self.done:
            self.done = True
            self.targets.record(self.path, self.arrival, time.time(), 0)
            self.transport.abort()

    def connection_lost(self, exc) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.path and not self.done:
            self.done = True  # the client gave up (a hang, or a latency past its timeout)
            self.targets.record(self.path, self.arrival, time.time(), 0)

    def _control(self) -> None:
        command, _, query = self.path[len("/_ctl/"):].partition("?")
        params = dict(p.partition("=")[::2] for p in query.split("&") if p)
        ids = [i for i in params.get("ids", "").split(",") if i]
        if command == "down":
            self.targets.down.update(ids)
        elif command == "up":
            self.targets.down.difference_update(ids)
        elif command == "flush":
            self.targets.flush()
        elif command != "stats":
            self._send(404, _NOT_FOUND)
            return
        body = json.dumps({"at": time.time(), "requests": self.targets.count, "cpu": _cpu()})
        self.done = True
        self.transport.write(_answer(200, body.encode(), b"application/json"))
        self.transport.close()


async def serve(host: str, port: int, log_path: str | None, backlog: int) -> None:
    targets = Targets(log_path)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Conn(targets), host, port, backlog=backlog, reuse_address=True
    )
    bound = server.sockets[0].getsockname()
    print(f"http://{bound[0]}:{bound[1]}", flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), FLUSH_EVERY)
            targets.flush()
    finally:
        server.close()
        targets.close()


async def _load(url: str, total: int, concurrency: int, seconds: float) -> dict[str, float]:
    """A bounded loopback load: `total` requests at most, `seconds` at most."""
    host, port = url.split("//", 1)[1].split(":")
    deadline = time.monotonic() + seconds
    sent = ok = 0
    request = b"GET /load/%d/0/0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

    async def worker(n: int) -> None:
        nonlocal sent, ok
        while sent < total and time.monotonic() < deadline:
            sent += 1
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(request % n)
            data = await reader.read()
            ok += data.startswith(b"HTTP/1.1 200")
            writer.close()

    start = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return {"requests": sent, "ok": ok, "seconds": time.monotonic() - start}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", help="append one line per request to this file")
    parser.add_argument("--backlog", type=int, default=4096)
    parser.add_argument(
        "--load", metavar="URL",
        help="instead of serving: send a bounded load to URL (see --total, --seconds)",
    )
    parser.add_argument("--total", type=int, default=20000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args(argv)
    if args.load:
        if not args.load.startswith(("http://127.", "http://[::1]", "http://localhost")):
            parser.error("--load is for loopback addresses only")
        result = asyncio.run(
            _load(args.load, min(args.total, 200_000), args.concurrency, min(args.seconds, 120))
        )
        print(json.dumps(result))
        return 0
    asyncio.run(serve(args.host, args.port, args.log, args.backlog))
    return 0


if __name__ == "__main__":
    sys.exit(main())
