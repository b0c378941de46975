"""A loopback DNS server for the dns bench: dnslib's DNSServer (UDP and TCP, one port),
answering every A query with 192.0.2.1 and counting the queries. Run as its own process so
its CPU is never the runner's:

    python bench/dnstarget.py        # first stdout line: 127.0.0.1:<port>

SIGTERM stops it; the last stdout line is then `queries <n>`.
"""

from __future__ import annotations

import signal
import sys
import threading

from dnslib import QTYPE, RR, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer


class Answer(BaseResolver):
    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def resolve(self, request, handler):
        with self.lock:
            self.count += 1
        reply = request.reply()
        if request.q.qtype == QTYPE.A:
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("192.0.2.1"), ttl=60))
        return reply


def main() -> None:
    resolver = Answer()
    logger = DNSLogger("-request,-reply,-truncated,-error", prefix=False)
    for _ in range(20):
        udp = DNSServer(resolver, "127.0.0.1", 0, logger=logger)
        port = udp.server.server_address[1]
        try:
            tcp = DNSServer(resolver, "127.0.0.1", port, tcp=True, logger=logger)
        except OSError:
            udp.server.server_close()
            continue
        break
    else:
        sys.exit("no port free for both UDP and TCP")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    for server in (udp, tcp):
        server.start_thread()
    print(f"127.0.0.1:{port}", flush=True)
    stop.wait()
    for server in (udp, tcp):
        server.stop()
        server.server.server_close()
    print(f"queries {resolver.count}", flush=True)


if __name__ == "__main__":
    main()
