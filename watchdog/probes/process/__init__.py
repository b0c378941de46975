"""Process probe: Monit's process checks (running, count, memory, CPU, zombies, restarts)
read from the system's process table with psutil, on a worker thread.

  probe.py     ProcessProbe.run: find the processes, measure them, remember the CPU times
               and the main pid for the next run
  options.py   the `process:` mapping, validated once into a ProcessProbe
"""

from watchdog.probes.process.options import KEYS, NAME, Options, build, parse
from watchdog.probes.process.probe import ProcessProbe

OPEN_SOCKETS = 0

__all__ = ["KEYS", "NAME", "OPEN_SOCKETS", "Options", "ProcessProbe", "build", "parse"]
