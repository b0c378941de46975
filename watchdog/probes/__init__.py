"""Probe kinds, one module each (the interface: probes/base.py). Adding a kind: write its
module, add one line to KINDS; tests/test_probe_kinds.py checks the module's shape."""

from watchdog.probes import command, dns, file, http, passive, process, tcp

KINDS = {
    "http": http,
    "command": command,
    "tcp": tcp,
    "file": file,
    "process": process,
    "passive": passive,
    "dns": dns,
}
