"""Command probe: run a Nagios-style plugin and read its verdict from the exit code.

The kind is a package of five modules, each importing only those listed above it:

  collect.py   reading a child's two pipes: capped capture, paced discard, exit detection
  contain.py   run_contained(): explicit env and folder, own process group, timeout kill,
               output cap, secrets masked; public, for any command pd-watchdog runs
  nagios.py    the Nagios convention: verdict from the exit code, summary, perfdata
  probe.py     CommandProbe.run: one contained run, read the Nagios way
  options.py   the `command:` mapping, validated once into a CommandProbe
"""

from watchdog.probes.command.contain import Outcome, run_contained
from watchdog.probes.command.nagios import parse_perfdata
from watchdog.probes.command.options import KEYS, NAME, Options, build, parse
from watchdog.probes.command.probe import CommandProbe

OPEN_SOCKETS = 0  # a plugin's own sockets are its business; the runner holds two pipes

__all__ = ["KEYS", "NAME", "OPEN_SOCKETS", "CommandProbe", "Options", "Outcome", "build",
           "parse", "parse_perfdata", "run_contained"]
