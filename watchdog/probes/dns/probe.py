"""The DNS probe's run: one query (UDP, then TCP when the UDP answer is truncated, as dig
does) within one deadline, then the checks the user asked for (rcode, answers)."""

from __future__ import annotations

import re
import socket
import time
from typing import Any

import dns.asyncbackend
import dns.asyncquery
import dns.exception
import dns.flags
import dns.inet
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from watchdog.model import ProbeResult
from watchdog.probes import net
from watchdog.probes._util import fmt_seconds
from watchdog.probes.dns import records

MAX_ANSWERS = 20  # answers kept in the details (answer_count has them all)
SHOWN = 3  # answers named in a summary
EDNS_PAYLOAD = 1232  # the 2020 DNS flag day's size: what dig and most resolvers send
_BACKEND = None


def _backend() -> Any:
    global _BACKEND
    if _BACKEND is None:  # asyncio's, which runs on uvloop too: no sniffing per query
        _BACKEND = dns.asyncbackend.get_backend("asyncio")
    return _BACKEND


class DnsProbe:
    """A parsed DNS check: the question and the server made once, run() asks."""

    __slots__ = ("qname", "rdtype", "type_text", "server", "literal", "protocol", "rcodes",
                 "rcode_text", "expect", "expect_text", "regex", "min_answers")

    def __init__(self, qname: dns.name.Name, type_text: str, server: records.Server | None,
                 protocol: str | None, rcodes: frozenset[int], expect: frozenset | None,
                 expect_text: str, regex: re.Pattern | None, min_answers: int):
        self.qname = qname
        self.type_text = type_text
        self.rdtype = dns.rdatatype.from_text(type_text)
        self.server = server
        self.literal = server is not None and net.ip_literal(server[0]) is not None
        self.protocol = protocol
        self.rcodes = rcodes
        self.rcode_text = " or ".join(dns.rcode.to_text(code) for code in sorted(rcodes))
        self.expect = expect
        self.expect_text = expect_text
        self.regex = regex
        self.min_answers = min_answers

    def __repr__(self) -> str:
        return f"DnsProbe({self.qname} {self.type_text})"

    async def run(self, timeout: float) -> ProbeResult:
        """Ask once within `timeout` seconds in all (a server name's lookup, UDP and the
        TCP retry included). Never raises, except asyncio.CancelledError."""
        start = time.monotonic()
        details: dict[str, Any] = {"name": self.qname.to_text(), "type": self.type_text,
                                   "server": None, "protocol": None, "rcode": None}
        try:
            ok, summary = await self._run(timeout, details)
        except Exception as exc:  # the runner must survive anything a probe hits
            ok, summary = False, f"probe error: {type(exc).__name__}: {exc}"
        latency = time.monotonic() - start
        return ProbeResult(ok, summary, None, details, latency)

    async def _run(self, timeout: float, details: dict[str, Any]) -> tuple[bool, str]:
        deadline = net.deadline_in(timeout)
        server = self.server or _host_server()
        if server is None:
            return False, (f"no nameserver in {records.RESOLV_CONF} "
                           "(set dns.server to the server to ask)")
        where = records.show_server(server)
        details["server"] = where
        protocol = self.protocol or "udp"
        try:
            host, port = server
            if not (self.literal or self.server is None):
                (host, port), *_ = await net.addresses(host, port, False, deadline, timeout)
            query = dns.message.make_query(self.qname, self.rdtype, use_edns=0,
                                           payload=EDNS_PAYLOAD)
            details["protocol"] = protocol
            response = await net.within(deadline, _ask(query, host, port, protocol))
            truncated = bool(response.flags & dns.flags.TC)
            details["truncated"] = truncated
            if truncated and self.protocol is None:  # as dig does: ask again over TCP
                details["protocol"] = protocol = "tcp"
                query = dns.message.make_query(self.qname, self.rdtype, use_edns=0,
                                               payload=EDNS_PAYLOAD)
                response = await net.within(deadline, _ask(query, host, port, protocol))
        except Exception as exc:
            return False, _describe(exc, server, protocol, timeout)
        details["query_time_ms"] = round(response.time * 1000, 1)
        return self._assess(response, details)

    def _assess(self, response: dns.message.Message, details: dict[str, Any]
                ) -> tuple[bool, str]:
        """The first failed check as (False, summary), or (True, what came)."""
        rcode = response.rcode()
        details["rcode"] = dns.rcode.to_text(rcode)
        found = [rdata for rrset in response.answer if rrset.rdtype == self.rdtype
                 for rdata in rrset]
        texts = [records.text_of(self.type_text, rdata) for rdata in found]
        details["answers"] = texts[:MAX_ANSWERS]
        details["answer_count"] = len(found)
        took = _ms(response.time)
        if details.get("protocol") == "tcp" and details.get("truncated"):
            took += " over TCP (UDP answer truncated)"
        elif details.get("truncated"):
            took += " (truncated)"
        if rcode not in self.rcodes:
            return False, (f"rcode {details['rcode']} (expected {self.rcode_text}) "
                           f"from {details['server']}")
        if len(found) < self.min_answers:
            have = f"{len(found)} {self.type_text} records" if found \
                else f"no {self.type_text} record"
            cut = "; the UDP answer was truncated" if details.get("truncated") else ""
            return False, (f"{have} for {self.qname} (min_answers {self.min_answers}{cut}), "
                           f"{details['rcode']} from {details['server']}")
        failure = self._expectation(found, texts)
        if failure:
            return False, failure
        return True, f"{details['rcode']} in {took}{_listed(texts)}"

    def _expectation(self, found: list[Any], texts: list[str]) -> str | None:
        if self.expect is not None:
            got = {records.comparable(self.type_text, rdata) for rdata in found}
            if got != self.expect:
                return f"answers {_shown(texts) or 'none'} (expected {self.expect_text})"
        if self.regex is not None:
            for text in texts:
                if not self.regex.search(text):
                    return f"answer {text!r} does not match /{self.regex.pattern}/"
        return None


async def _ask(query: dns.message.Message, host: str, port: int, protocol: str
               ) -> dns.message.Message:
    """One exchange. UDP goes over a connected socket: only the server's own datagrams
    are read, and an ICMP port unreachable comes back as ConnectionRefusedError."""
    backend = _backend()
    if protocol == "tcp":
        return await dns.asyncquery.tcp(query, host, port=port, backend=backend)
    family = dns.inet.af_for_address(host.split("%", 1)[0])
    sock = await backend.make_socket(family, socket.SOCK_DGRAM, 0, None, (host, port))
    async with sock:
        return await dns.asyncquery.udp(query, host, port=port, sock=sock)


def _host_server() -> records.Server | None:
    host = records.host_resolver()
    return None if host is None else (host, records.DEFAULT_PORT)


def _describe(exc: BaseException, server: records.Server, protocol: str,
              timeout: float) -> str:
    """DNS's own failures in words, the rest as any network probe words them."""
    where = records.show_server(server)
    if isinstance(exc, TimeoutError | dns.exception.Timeout):
        return f"no answer from {where} ({protocol}) within {fmt_seconds(timeout)}"
    if isinstance(exc, EOFError):
        return f"{where} closed the connection without an answer ({protocol})"
    if isinstance(exc, dns.exception.DNSException):
        return f"bad DNS answer from {where}: {type(exc).__name__}: {str(exc)[:200]}"
    return net.describe(exc, server[0], where, timeout)


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


def _shown(texts: list[str]) -> str:
    shown = ", ".join(t if len(t) <= 60 else t[:57] + "..." for t in texts[:SHOWN])
    return shown + (f" (+{len(texts) - SHOWN} more)" if len(texts) > SHOWN else "")


def _listed(texts: list[str]) -> str:
    return f": {_shown(texts)}" if texts else ", no records"
