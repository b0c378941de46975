"""A listening address (metrics:, push:): its parser, its schema and its error sentence."""

from __future__ import annotations

import re
from typing import Annotated, Any, NamedTuple

from pydantic import PlainValidator, WithJsonSchema

from watchdog.config.fields import DEF_ABOUT, DEF_NAME, DOC_TYPE, ENV_REF, NO_CONTROL, Says, problem

LISTEN_PATTERN = r"^\s*(?:\d+|[^\s:\[\]]+:\d+|\[[0-9A-Fa-f:.%\w]+\]:\d+)\s*$"


class Address(NamedTuple):
    """Where to listen; equal to the (host, port) tuple, shown as host:port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


LISTEN_SAYS = Says(
    'bad address {value!r} — write a port (9108), "host:port" ("0.0.0.0:9108") or '
    '"[::1]:9108"',
    missing='listen is required — e.g. listen: "127.0.0.1:9108" (or remove metrics:)',
    at_parent=True, null_is_unset=True)


def to_address(value: Any) -> Address:
    address = parse_listen(value)
    if address is None:
        raise problem(LISTEN_SAYS.text.format(value=value))
    return address


def parse_listen(value: Any) -> Address | None:
    """(host, port) from 9108, "9108", "host:9108" or "[::1]:9108"; None if it is none."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        host, port_text = "127.0.0.1", str(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            host, port_text = "127.0.0.1", text
        elif text.startswith("["):
            match = re.fullmatch(r"\[([0-9A-Fa-f:.%\w]+)\]:(\d+)", text)
            if match is None:
                return None
            host, port_text = match.groups()
        else:
            host, sep, port_text = text.rpartition(":")
            if not sep or not host or ":" in host or " " in host or \
                    re.search(NO_CONTROL, host) is None:
                return None
    else:
        return None
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        return None
    return Address(host, int(port_text))


LISTEN_SCHEMA = WithJsonSchema({
    "anyOf": [{"type": "integer", "minimum": 0, "maximum": 65535},
              {"type": "string", "pattern": LISTEN_PATTERN}, ENV_REF],
    DOC_TYPE: "address", DEF_NAME: "ListenAddress",
    DEF_ABOUT: "a port (bound on 127.0.0.1), \"host:port\" or \"[IPv6]:port\""})
Listen = Annotated[Address, PlainValidator(to_address), LISTEN_SCHEMA, LISTEN_SAYS]
