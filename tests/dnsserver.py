"""A real DNS server on loopback for the dns probe's tests: dnslib's DNSServer, UDP and
TCP on one free port of 127.0.0.1, each in a thread, answering a small zone of its own.

Names (under `test.`) say how to answer:

  a / v6 / mx / txt / _sip._udp / alias / ns / soa / 1.2.0.192.in-addr.arpa  the records
  nodata     NOERROR with no records         nxdomain / servfail / refused  that rcode
  hang       never answers (held until close)   big   UDP: truncated (TC, no records);
  drip       TCP: the answer a byte every 0.2 s      TCP: 40 A records
  flood      TCP: the answer, then a megabyte of junk
  garbage    UDP: a datagram that is not DNS

`queries` records (name, protocol) of every query that arrived.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

from dnslib import AAAA, CNAME, MX, NS, PTR, QTYPE, RCODE, RR, SOA, SRV, TXT, A, DNSRecord
from dnslib.server import BaseResolver as _BaseResolver
from dnslib.server import DNSError, DNSLogger, DNSServer

ZONE = {
    ("a.test.", "A"): [A("192.0.2.1"), A("192.0.2.2")],
    ("v6.test.", "AAAA"): [AAAA("2001:db8::1")],
    ("mx.test.", "MX"): [MX("mail.test.", 10), MX("backup.test.", 20)],
    ("txt.test.", "TXT"): [TXT(["v=spf1 ", "-all"])],
    ("_sip._udp.test.", "SRV"): [SRV(10, 5, 5060, "sip.test.")],
    ("ns.test.", "NS"): [NS("ns1.test.")],
    ("soa.test.", "SOA"): [SOA("ns1.test.", "hostmaster.test.", (2024010101, 3600, 600,
                                                                 86400, 300))],
    ("1.2.0.192.in-addr.arpa.", "PTR"): [PTR("host.test.")],
}
RCODES = {"nxdomain.test.": RCODE.NXDOMAIN, "servfail.test.": RCODE.SERVFAIL,
          "refused.test.": RCODE.REFUSED}


class Resolver(_BaseResolver):
    def __init__(self) -> None:
        self.queries: list[tuple[str, str]] = []
        self.stop = threading.Event()
        self.held: list[threading.Thread] = []

    def resolve(self, request: DNSRecord, handler) -> DNSRecord:
        name, kind = str(request.q.qname).lower(), QTYPE[request.q.qtype]
        self.queries.append((name, handler.protocol))
        reply = request.reply()
        if name == "hang.test.":
            self.held.append(threading.current_thread())
            self.stop.wait(30)
            raise DNSError("held")  # dnslib's handler drops it: nothing is sent
        if name in RCODES:
            reply.header.rcode = RCODES[name]
        elif name == "alias.test.":
            reply.add_answer(RR("alias.test.", QTYPE.CNAME, rdata=CNAME("a.test."), ttl=60))
            for rdata in ZONE[("a.test.", "A")]:
                reply.add_answer(RR("a.test.", QTYPE.A, rdata=rdata, ttl=60))
        elif name == "big.test.":
            if handler.protocol == "udp":
                reply.header.tc = 1
            else:
                for i in range(40):
                    reply.add_answer(RR(name, QTYPE.A, rdata=A(f"198.51.100.{i}"), ttl=60))
        elif name in ("drip.test.", "flood.test.", "garbage.test."):
            self._misbehave(name, reply, handler)
        for rdata in ZONE.get((name, kind), []):
            reply.add_answer(RR(name, getattr(QTYPE, kind), rdata=rdata, ttl=60))
        return reply

    def _misbehave(self, name: str, reply: DNSRecord, handler) -> None:
        reply.add_answer(RR(name, QTYPE.A, rdata=A("192.0.2.9"), ttl=60))
        wire = reply.pack()
        with contextlib.suppress(OSError):
            if name == "garbage.test.":
                handler.request[1].sendto(b"\x00\x01not dns", handler.client_address)
            elif handler.protocol == "udp":
                handler.request[1].sendto(wire, handler.client_address)
            elif name == "flood.test.":
                handler.request.sendall(struct.pack("!H", len(wire)) + wire + b"x" * (1 << 20))
            else:
                self.held.append(threading.current_thread())
                for byte in struct.pack("!H", len(wire)) + wire:
                    if self.stop.wait(0.2):
                        break
                    handler.request.sendall(bytes([byte]))
        raise DNSError("answered by hand")


class DnsServer:
    """UDP and TCP on 127.0.0.1:<port>; close() stops both and joins every thread."""

    def __init__(self) -> None:
        self.resolver = Resolver()
        logger = DNSLogger("-request,-reply,-truncated,-error", prefix=False)
        for _ in range(20):
            udp = DNSServer(self.resolver, "127.0.0.1", 0, logger=logger)
            self.port = udp.server.server_address[1]
            try:
                tcp = DNSServer(self.resolver, "127.0.0.1", self.port, tcp=True, logger=logger)
            except OSError:
                udp.server.server_close()
                continue
            break
        else:
            raise RuntimeError("no port free for both UDP and TCP")
        self.servers = [udp, tcp]
        for server in self.servers:
            server.start_thread()
        self.address = f"127.0.0.1:{self.port}"

    @property
    def queries(self) -> list[tuple[str, str]]:
        return self.resolver.queries

    def close(self) -> None:
        self.resolver.stop.set()
        for server in self.servers:
            server.stop()
            server.server.server_close()
            server.thread.join(5)
        for thread in self.resolver.held:
            thread.join(5)


def closed_port() -> int:
    """A loopback port nothing listens on (UDP or TCP), for refused queries."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return port
