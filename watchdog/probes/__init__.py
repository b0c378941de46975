"""Probe kinds, one module each. Adding a kind: write its module, add one line to KINDS."""

from watchdog.probes import command, http

KINDS = {
    "http": http,
    "command": command,
}
