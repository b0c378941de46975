"""TCP probe: one connection per run, on the event loop: a port open, a banner or an answer
to what it sends, TLS at once or after a STARTTLS dialogue, and the certificate's expiry.

  options.py   the `tcp:` mapping, validated once into a TcpProbe (bytes, regex, TLS context)
  probe.py     TcpProbe.run: lookup, connect, TLS, send, expect within one deadline
  stream.py    the connection's bytes as an asyncio Protocol, read up to 64 KiB in all
  starttls.py  each protocol's greeting and upgrade (smtp, imap, pop3, ftp, postgres)

The deadline, lookups, connecting, TLS contexts, certificates and failure wording are the
network plumbing every network probe shares: watchdog/probes/net.py (and tls_options.py).
"""

from watchdog.probes.tcp.options import KEYS, NAME, OPTIONS, STARTTLS, Options, build, parse
from watchdog.probes.tcp.probe import TcpProbe
from watchdog.probes.tcp.stream import READ_CAP

OPEN_SOCKETS = 1  # one connection per run

__all__ = ["KEYS", "NAME", "OPEN_SOCKETS", "OPTIONS", "READ_CAP", "STARTTLS", "Options",
           "TcpProbe", "build", "parse"]
