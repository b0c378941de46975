"""The DNS probe's options: the check's `dns:` mapping as a model, built into a DnsProbe.

The question, the server and the expected records are parsed here, once per config load;
a run only builds the query message (a fresh ID each time) and asks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

from watchdog.config.fields import DOC_DEFAULT, Says, Section, one_or_many, problem, regex_text
from watchdog.probes.base import validate
from watchdog.probes.dns import records

if TYPE_CHECKING:
    from watchdog.probes.dns.probe import DnsProbe

NAME = "dns"
RCODES = ("NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN",
          "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE")


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _name(value: str) -> str:
    if records.is_ip(value):
        return value  # a PTR's address (the rules refuse it for other types)
    import dns.name  # on first use (see records.py)

    try:
        dns.name.from_text(value)
    except dns.name.EmptyLabel:
        raise problem("is not a DNS name: it has an empty label (two dots in a row?)") from None
    except Exception as exc:  # LabelTooLong, NameTooLong, ...
        raise problem(f"is not a DNS name: {exc}") from None
    return value


def _server(value: str) -> str:
    try:
        records.parse_server(value)
    except ValueError as exc:
        raise problem(str(exc)) from None
    return value


Rcode = Annotated[
    Literal[RCODES], BeforeValidator(_upper),
    Says("must be a response code: " + ", ".join(RCODES) + ", or a list of them"),
]
Value = Annotated[
    str, StringConstraints(min_length=1),
    Says("must be a record's value as text, such as 192.0.2.1 or '10 mail.example.com'"),
]


class Match(Section):
    """Every answer of the queried type must match this regular expression."""

    regex: Annotated[
        str, StringConstraints(min_length=1), AfterValidator(regex_text),
        Says("must be a non-empty regular expression string",
             missing="required: the regular expression every answer must match"),
    ] = Field(description="a regular expression searched in each answer's text")


class Question(Section):
    """One DNS query per run and what its answer must be; the whole run (a server name's
    lookup, UDP, the TCP retry) is bounded by the check's timeout."""

    name: Annotated[
        str, StringConstraints(min_length=1), AfterValidator(_name),
        Says("must be a DNS name such as www.example.com (for PTR: an IP address too)",
             missing="required: the DNS name to ask for"),
    ] = Field(description="the name to ask for; with type PTR an IP address may be given "
              "(its reverse name is asked for)")
    type: Annotated[
        Literal[records.TYPES], BeforeValidator(_upper),
        Says("must be one of " + ", ".join(records.TYPES),
             missing="required: the record type (" + ", ".join(records.TYPES) + ")"),
    ] = Field(description="the record type to ask for")
    server: Annotated[
        str, StringConstraints(min_length=1), AfterValidator(_server),
        Says("must be host, host:port or [IPv6]:port, e.g. 127.0.0.53:53"),
    ] | None = Field(None, description="the DNS server to ask (port 53 unless given)",
                     json_schema_extra={DOC_DEFAULT: "the first nameserver of "
                                        "/etc/resolv.conf"})
    protocol: Annotated[
        Literal["udp", "tcp"], BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v),
        Says("must be udp or tcp"),
    ] | None = Field(None, description="ask over this protocol only", json_schema_extra={
        DOC_DEFAULT: "udp, then tcp when the answer is truncated"})
    rcode: one_or_many(
        Rcode, Says("must be a response code: " + ", ".join(RCODES) + ", or a list of them",
                    too_short="must list at least one response code"),
        min_length=1, single=str,
    ) = Field(["NOERROR"], description="the response codes that pass",
              json_schema_extra={DOC_DEFAULT: "NOERROR"})
    expect: Annotated[
        list[Value] | Match,
        Says("must be a list of values (such as [192.0.2.1]) or {regex: ...}"),
    ] | None = Field(None, description="the answers: exactly these values (in any order), "
                     "or {regex: ...} that every answer matches")
    min_answers: Annotated[
        int, Field(ge=0),
        Says("must be a whole number, 0 or more", greater_than_equal="must be 0 or more"),
    ] | None = Field(None, description="fewer answers of the queried type fail the check",
                     json_schema_extra={DOC_DEFAULT: "1 when rcode is NOERROR, else 0"})

    @classmethod
    def rules(cls, data: dict[str, Any]) -> Iterable[tuple[tuple, str]]:
        kind = data.get("type")
        kind = kind.upper() if isinstance(kind, str) else None
        name = data.get("name")
        if isinstance(name, str) and records.is_ip(name) and kind in records.TYPES \
                and kind != "PTR":
            yield ("name",), "an IP address is a name only for type PTR (its reverse name)"
        expect = data.get("expect")
        if kind in records.TYPES and isinstance(expect, list):
            if not expect:
                yield ("expect",), "must list at least one value (or use min_answers: 0)"
            for i, value in enumerate(expect):
                if isinstance(value, str) and value:
                    try:
                        records.expected(kind, value)
                    except ValueError as exc:
                        yield ("expect", i), str(exc)


class Options(Section):
    """One DNS query per run, on the event loop (thousands cost sockets, not threads)."""

    dns: Annotated[
        Question, Says("must be a mapping with at least `name:` and `type:`"),
    ] = Field(description="the question and what its answer must be")


KEYS = frozenset(Options.model_fields)


def build(options: Options, base_dir: str) -> DnsProbe:
    """The probe, from validated options: the question, server and expected records
    parsed once (dnspython is imported here, by the first dns check)."""
    import dns.rcode

    from watchdog.probes.dns.probe import DnsProbe

    spec = options.dns
    rcodes = frozenset(dns.rcode.from_text(code) for code in spec.rcode)
    expect = regex = None
    expect_text = ""
    if isinstance(spec.expect, Match):
        regex = re.compile(spec.expect.regex)
    elif spec.expect is not None:
        expect = frozenset(records.expected(spec.type, value) for value in spec.expect)
        expect_text = ", ".join(spec.expect)
    min_answers = spec.min_answers
    if min_answers is None:
        min_answers = 1 if rcodes == {dns.rcode.NOERROR} else 0
    return DnsProbe(
        qname=records.query_name(spec.name, spec.type),
        type_text=spec.type,
        server=None if spec.server is None else records.parse_server(spec.server),
        protocol=spec.protocol,
        rcodes=rcodes,
        expect=expect,
        expect_text=expect_text,
        regex=regex,
        min_answers=min_answers,
    )


def parse(options: dict[str, Any], base_dir: str) -> DnsProbe:
    """Validate the check's `dns:` mapping and build the probe; OptionError lists every
    problem."""
    return build(validate(Options, options, base_dir), base_dir)
