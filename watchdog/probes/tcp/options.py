"""The TCP probe's options: the check's `tcp:` mapping as a model, built into a TcpProbe.

Done once here, not per run: the host parsed (an IP literal needs no lookup), the bytes to
send, the expect regex compiled, and the TLS context (shared with every probe of the same
trust settings, `http` ones included).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import Field, PlainValidator, StringConstraints, WithJsonSchema

from watchdog.config.fields import (
    DOC_TYPE,
    Flag,
    Says,
    Section,
    env_int,
    problem,
    problems,
)
from watchdog.probes.base import validate
from watchdog.probes.net import ip_literal
from watchdog.probes.tcp.probe import Expect, TcpProbe
from watchdog.probes.tcp.starttls import PROTOCOLS
from watchdog.probes.tls_options import CertMinDays, ca_file_rule, ca_file_type, load_context

NAME = "tcp"
_HOST_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_.])?")
STARTTLS = tuple(PROTOCOLS)
_TLS_ONLY = ("cert_min_days", "server_name", "ca_file", "verify")


def _host(value: Any) -> str:
    """A host name or IP address; `[::1]` is taken as `::1`."""
    if not isinstance(value, str):
        raise problem("must be a host name or IP address, such as db.internal or 10.0.0.5")
    host = value.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ip_literal(host) is not None or _HOST_NAME.fullmatch(host):
        return host
    if "://" in host:
        raise problem("must be a host name or IP address, not a URL (give port: apart)")
    if host.count(":") == 1:
        raise problem("must be a host name or IP address without a port (give port: apart)")
    raise problem("must be a host name or IP address, such as db.internal or 10.0.0.5")


def _expect(value: Any) -> Expect:
    """A text the answer must contain, or {regex: ...} it must match (compiled now)."""
    if isinstance(value, str):
        if not value:
            raise problem("must not be empty")
        return Expect(text=value.encode("utf-8"))
    if not isinstance(value, dict) or set(value) != {"regex"}:
        raise problem("must be a string, or a mapping {regex: PATTERN}")
    pattern = value["regex"]
    if not isinstance(pattern, str) or not pattern:
        raise problems([(("regex",), "must be a non-empty regular expression string", pattern)])
    try:
        return Expect(regex=re.compile(pattern.encode("utf-8"), re.MULTILINE))
    except re.error as exc:
        raise problems([(("regex",), f"invalid regular expression: {exc}; quote it in YAML",
                         pattern)]) from None


_EXPECT_SCHEMA = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "object", "properties": {"regex": {"type": "string", "minLength": 1}},
         "required": ["regex"], "additionalProperties": False},
    ],
    DOC_TYPE: "string or {regex: string}",
}


class Connection(Section):
    """The connection to open and what must happen on it. The whole run (lookup, connect,
    greeting, TLS handshake, send and read) is bounded by the check's timeout."""

    host: Annotated[
        str, PlainValidator(_host, json_schema_input_type=str),
        Says("must be a host name or IP address", missing="required: the host to connect to",
             null_is_unset=True),
    ] = Field(description="the host name or IP address to connect to (IPv4 or IPv6)")
    port: env_int(1, 65535, Says("must be a port number from 1 to 65535",
                                 missing="required: the TCP port to connect to")) = Field(
        description="the TCP port")
    send: Annotated[
        str, StringConstraints(min_length=1), Says("must be a non-empty string; write line "
                                                   'ends in double quotes: "PING\\r\\n"'),
    ] | None = Field(None, description="text to send once connected (after TLS, if any), "
                     "as UTF-8")
    expect: Annotated[
        Expect, PlainValidator(_expect), WithJsonSchema(_EXPECT_SCHEMA),
    ] | None = Field(None, description="text the server's answer must contain, or {regex: "
                     "...} it must match (searched in the first 64 KiB read, ^ at each line)")
    tls: Flag = Field(False, description="speak TLS from the first byte (e.g. port 443, 993, "
                      "465)")
    starttls: Annotated[
        Literal[STARTTLS],
        Says(f"must be one of {', '.join(STARTTLS)}, not {{value!r}}"),
    ] | None = Field(None, description="speak this protocol's greeting, then upgrade to TLS")
    cert_min_days: CertMinDays | None = Field(
        None, description="fail when the server's certificate expires sooner (TLS only)")
    server_name: Annotated[
        str, StringConstraints(min_length=1, pattern=r"^[^\s\x00]+$"),
        Says("must be a host name, without spaces"),
    ] | None = Field(None, description="the name the certificate must be for, sent as SNI "
                     "(TLS only; default: host)")
    ca_file: ca_file_type("verify") = Field(
        None, description="a PEM CA bundle to trust instead of the system's; relative to "
        "this file (TLS only)")
    verify: Flag = Field(True, description="check the server's certificate and its name "
                         "(TLS only)")

    @classmethod
    def rules(cls, data: dict[str, Any]) -> Iterable[tuple[tuple, str]]:
        tls = data.get("tls") is True
        if tls and data.get("starttls") is not None:
            yield ("starttls",), "use either tls: true or starttls, not both"
        if not tls and data.get("starttls") is None:
            for key in _TLS_ONLY:
                if key in data and data[key] is not None:
                    yield (key,), "needs tls: true or starttls (there is no TLS without them)"
        yield from ca_file_rule(data, "verify")


class Options(Section):
    """One TCP connection per run, on the event loop: a port open, a banner or an answer,
    TLS and its certificate (thousands cost sockets, not threads)."""

    tcp: Annotated[
        Connection, Says("must be a mapping with at least `host:` and `port:`"),
    ] = Field(description="the connection and what must happen on it")


KEYS = frozenset(Options.model_fields)
OPTIONS = frozenset(Connection.model_fields)


def build(options: Options, base_dir: str) -> TcpProbe:
    """The probe, from validated options: bytes, regex and TLS context made once."""
    spec = options.tcp
    context = None
    if spec.tls or spec.starttls is not None:
        context, _ = load_context(spec.verify, spec.ca_file, base_dir, "tcp.ca_file")
    return TcpProbe(
        host=spec.host,
        port=spec.port,
        literal=ip_literal(spec.host) is not None,
        send=None if spec.send is None else spec.send.encode("utf-8"),
        expect=spec.expect,
        context=context,
        server_name=spec.server_name or spec.host,
        starttls=spec.starttls,
        cert_min_days=spec.cert_min_days,
    )


def parse(options: dict[str, Any], base_dir: str) -> TcpProbe:
    """Validate the check's `tcp:` mapping and build the probe; OptionError lists every
    problem."""
    return build(validate(Options, options, base_dir), base_dir)
