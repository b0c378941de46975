"""DNS probe: one query per run (UDP, TCP when truncated) with dnspython's asyncio API on
the event loop; no thread per query.

  options.py   the `dns:` mapping, validated once into a DnsProbe (question, server and
               expected records parsed there, not per run)
  records.py   values in text form: expected records, answers, the server, resolv.conf
  probe.py     DnsProbe.run: the exchange within one deadline, then rcode and answers
"""

from typing import Any

from watchdog.probes.dns.options import KEYS, NAME, Options, build, parse

OPEN_SOCKETS = 1  # UDP, then (when truncated) TCP: the UDP socket is closed first


def __getattr__(name: str) -> Any:
    """DnsProbe on first use: its module imports dnspython (~90 ms), which a config
    without dns checks should not pay at every start and validate."""
    if name == "DnsProbe":
        from watchdog.probes.dns.probe import DnsProbe

        return DnsProbe
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["KEYS", "NAME", "OPEN_SOCKETS", "DnsProbe", "Options", "build", "parse"]
