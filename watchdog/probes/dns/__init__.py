"""DNS probe: one query per run (UDP, TCP when truncated) with dnspython's asyncio API on
the event loop; no thread per query.

  options.py   the `dns:` mapping, validated once into a DnsProbe (question, server and
               expected records parsed there, not per run)
  records.py   values in text form: expected records, answers, the server, resolv.conf
  probe.py     DnsProbe.run: the exchange within one deadline, then rcode and answers
"""

from watchdog.probes.dns.options import KEYS, NAME, Options, build, parse
from watchdog.probes.dns.probe import DnsProbe

OPEN_SOCKETS = 1  # UDP, then (when truncated) TCP: the UDP socket is closed first

__all__ = ["KEYS", "NAME", "OPEN_SOCKETS", "DnsProbe", "Options", "build", "parse"]
