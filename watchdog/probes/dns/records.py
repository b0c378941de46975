"""DNS values in the text form users write and read: what a check expects, what an answer
shows, and where a query goes (`server:`, or the host's resolver from /etc/resolv.conf).

Values are compared in a normalised form per record type, so `expect` may be written as
people write records: `2001:db8::1` matches `2001:0db8:0:0::1`, `10 mail.example.com`
matches `10 Mail.Example.COM.` (names compare without case, with or without the trailing
dot), and a TXT record is the text of its strings joined.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # dnspython is imported on first use: validate and start-up without a
    import dns.name  # dns check do not pay its ~90 ms import

TYPES = ("A", "AAAA", "CNAME", "MX", "TXT", "NS", "SRV", "SOA", "PTR")
DEFAULT_PORT = 53
RESOLV_CONF = "/etc/resolv.conf"
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})"
                       r"(\.[A-Za-z0-9_][A-Za-z0-9_-]{0,62})*\.?$")
Server = tuple[str, int]


def query_name(name: str, rdtype: str) -> dns.name.Name:
    """The name to ask for: for PTR an IP address becomes its reverse name
    (192.0.2.1 -> 1.2.0.192.in-addr.arpa.); a relative name is taken as absolute."""
    import dns.name
    import dns.reversename

    if rdtype == "PTR" and is_ip(name):
        return dns.reversename.from_address(name)
    return dns.name.from_text(name)


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def expected(rdtype: str, value: str) -> Any:
    """The comparable form of one `expect` value; ValueError says why it is not a record
    of that type. TXT: the text itself; the rest: parsed as a zone file line's data (names
    absolute), then written back as `comparable` writes an answer."""
    if rdtype == "TXT":
        return value
    import dns.name
    import dns.rdata
    import dns.rdataclass
    import dns.rdatatype

    try:
        rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rdtype), value,
                                    origin=dns.name.root, relativize=False)
    except Exception as exc:  # dnspython's syntax errors have several classes
        raise ValueError(f"is not {_a(rdtype)} {rdtype} record ({_example(rdtype)}): "
                         f"{exc}") from None
    return comparable(rdtype, rdata)


def comparable(rdtype: str, rdata: Any) -> str:
    """A record in the form compared: TXT's joined text; the rest in dnspython's zone file
    text (absolute names, shortest IPv6 form) without case (names have none)."""
    return text_of(rdtype, rdata) if rdtype == "TXT" else rdata.to_text().lower()


def text_of(rdtype: str, rdata: Any) -> str:
    """An answer's record as people read it: a TXT record's strings joined (bytes that are
    not UTF-8 escaped), the rest as in a zone file (`10 mail.example.com.`)."""
    if rdtype == "TXT":
        return b"".join(rdata.strings).decode("utf-8", "backslashreplace")
    return rdata.to_text()


def _a(rdtype: str) -> str:
    return "an" if rdtype[0] in "AEFHILMNORSX" else "a"


_EXAMPLES = {
    "A": "192.0.2.1", "AAAA": "2001:db8::1", "CNAME": "target.example.com",
    "MX": "10 mail.example.com", "NS": "ns1.example.com", "PTR": "host.example.com",
    "SRV": "10 5 5060 sip.example.com",
    "SOA": "ns1.example.com hostmaster.example.com 2024010101 3600 600 86400 300",
}


def _example(rdtype: str) -> str:
    return "such as " + _EXAMPLES[rdtype]


# --- where the query goes ---------------------------------------------------------------


def parse_server(text: str) -> Server:
    """"host", "host:port", "[v6]:port", "[v6]" or a bare IPv6 address; ValueError says
    what is wrong. host is an IP address or a host name (looked up at each run)."""
    text = text.strip()
    port = DEFAULT_PORT
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError("must be host, host:port or [IPv6]:port, e.g. [2001:db8::53]:53")
        if rest:
            port = _port(rest[1:])
        if ":" not in host or not is_ip(host.split("%", 1)[0]):
            raise ValueError(f"{host!r} in brackets must be an IPv6 address")
        return host, port
    if text.count(":") > 1:  # a bare IPv6 address: no port (write [v6]:port for one)
        if not is_ip(text.split("%", 1)[0]):
            raise ValueError("must be host, host:port or [IPv6]:port, e.g. [2001:db8::53]:53")
        return text, port
    host, sep, rest = text.partition(":")
    if sep:
        port = _port(rest)
    if not (is_ip(host) or _HOSTNAME.match(host)):
        raise ValueError(f"{host!r} is not an IP address or host name")
    return host, port


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"port {text!r} must be a number from 1 to 65535")
    return int(text)


def show_server(server: Server) -> str:
    host, port = server
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_resolv: tuple[tuple[str, int, int], str | None] | None = None


def host_resolver() -> str | None:
    """The first `nameserver` of RESOLV_CONF (None when there is none), read again whenever
    the file changes (a DHCP lease, systemd-resolved or a VPN rewrites it)."""
    global _resolv
    try:
        stat = os.stat(RESOLV_CONF)
    except OSError:
        return None
    key = (RESOLV_CONF, stat.st_mtime_ns, stat.st_size)
    if _resolv is not None and _resolv[0] == key:
        return _resolv[1]
    found = None
    try:
        with open(RESOLV_CONF, encoding="utf-8", errors="replace") as file:
            for line in file:
                words = line.split()
                if len(words) >= 2 and words[0] == "nameserver" \
                        and is_ip(words[1].split("%", 1)[0]):
                    found = words[1]
                    break
    except OSError:
        return None
    _resolv = (key, found)
    return found
