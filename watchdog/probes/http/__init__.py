"""HTTP probe: one request (plus redirects) per run, as an asyncio Protocol on the event loop.

This is the hot path of a runner with thousands of checks on one event loop thread. The
kind is a package of four modules:

  options.py   the `http:` mapping, validated once into an HttpProbe (request bytes and TLS
               context prepared there, not per run)
  request.py   where a request goes (Target) and its bytes (Hop)
  probe.py     HttpProbe.run: lookup, exchange, redirects, within one deadline; the checks
  response.py  one exchange on one connection: the asyncio Protocol and its response parser

The deadline, name lookups, connecting, TLS contexts and failure wording are the network
plumbing every network probe shares: watchdog/probes/net.py.
"""

from watchdog.probes.http.options import KEYS, NAME, OPTIONS, Options, build, parse
from watchdog.probes.http.probe import HttpProbe
from watchdog.probes.http.response import BODY_CAP

OPEN_SOCKETS = 1  # one connection at a time: each is closed before a redirect's is opened

__all__ = ["BODY_CAP", "KEYS", "NAME", "OPEN_SOCKETS", "OPTIONS", "HttpProbe", "Options",
           "build", "parse"]
