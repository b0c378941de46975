"""The HTTP probe's options: the check's `http:` mapping as a model, built into an HttpProbe.

Everything that can be done once is done here, not per run: the request bytes and the TLS
context (shared between probes with the same trust settings).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints

from watchdog.config.fields import (
    DOC_DEFAULT,
    EnvAlternative,
    Flag,
    Says,
    ScalarText,
    Section,
    ShortDuration,
    one_or_many,
    problem,
    regex_text,
)
from watchdog.probes.base import validate
from watchdog.probes.http.jsonbody import JsonAssertions, JsonCheck
from watchdog.probes.http.probe import HttpProbe
from watchdog.probes.http.request import _Hop, _Target
from watchdog.probes.tls_options import CertMinDays, ca_file_rule, ca_file_type, load_context

NAME = "http"

_MANAGED_HEADERS = {
    "content-length": "set automatically from body/json",
    "transfer-encoding": "the probe sends a fixed-length body",
    "connection": "the probe always sends Connection: close",
}
# RFC 3986 reserved + unreserved + "%": keep what the user wrote, quote only the rest


class _Url(str):
    """A URL that validated, with its _Target: splitting it costs as much as the rest of
    the check's validation, so build() reuses it."""

    __slots__ = ("target",)


def _url(value: str) -> str:
    try:
        target = _Target.from_url(value)
    except ValueError as exc:
        raise problem(str(exc)) from None
    url = _Url(value)
    url.target = target
    return url


def _settable(name: str) -> str:
    reason = _MANAGED_HEADERS.get(name.lower())
    if reason is not None:
        raise problem(f"cannot be set: {reason}")
    return name


def _latin1(text: str) -> str:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        raise problem("must be Latin-1 text (percent-encode other characters)") from None
    return text


def _json_value(value: Any) -> Any:
    try:
        _json_dumps(value)
    except (TypeError, ValueError) as exc:
        raise problem(f"cannot be sent as JSON: {exc}") from None
    return value


def _plain_http(url: Any) -> bool:
    try:
        return isinstance(url, str) and not _Target.from_url(url).tls
    except ValueError:
        return False


_TOKEN_PATTERN = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$"
Url = Annotated[
    str, AfterValidator(_url),
    Says("must be a string such as https://example.com/health",
         missing="required: the http:// or https:// address to request", null_is_unset=True),
]
HeaderName = Annotated[
    str, StringConstraints(pattern=_TOKEN_PATTERN), AfterValidator(_settable),
    Says("is not a valid header name (letters, digits, -)"),
]
HeaderValue = Annotated[
    ScalarText, StringConstraints(pattern=r"^[^\r\n\x00]*$"), AfterValidator(_latin1),
    Says("must be a string or number; quote it",
         string_pattern_mismatch="must not contain line breaks or NUL"),
]
StatusCode = Annotated[
    int, Field(ge=100, le=599), Says("must be a status code from 100 to 599, or a list of them"),
]


class Request(Section):
    """The request to make and what the answer must be. The whole run, redirects
    included, is bounded by the check's timeout."""

    url: Url = Field(description="the http:// or https:// address to request")
    method: Annotated[
        str, StringConstraints(pattern=_TOKEN_PATTERN), EnvAlternative(),
        Says("must be an HTTP method name such as GET, HEAD or POST"),
    ] = Field("GET", description="the request method")
    headers: Annotated[
        dict[HeaderName, HeaderValue] | None, Says("must be a mapping of Header-Name: value"),
    ] = Field(None, description="request header fields (Header-Name: value)")
    body: Annotated[str, Says("must be a string (use json: to send structured data)")] = Field(
        None, description="the request body, as text")
    json_body: Annotated[Any, AfterValidator(_json_value)] = Field(
        None, alias="json", description="a request body sent as JSON (with Content-Type: "
        "application/json unless headers set one); not with body")
    verify_tls: Flag = Field(True, description="check the server's certificate")
    ca_file: ca_file_type("verify_tls") = Field(
        None, description="a PEM CA bundle to trust instead of the system's; relative to "
        "this file")
    follow_redirects: Flag = Field(True, description="follow up to 5 redirects")
    expect_status: one_or_many(
        StatusCode, Says("must be a status code from 100 to 599, or a list of them",
                         too_short="must list at least one status code"), min_length=1,
    ) | None = Field(None, description="the status codes that pass", json_schema_extra={
        DOC_DEFAULT: "any 2xx"})
    body_contains: Annotated[
        ScalarText, StringConstraints(min_length=1), Says("must be a non-empty string"),
    ] | None = Field(None, description="text the body must contain")
    body_regex: Annotated[
        str, StringConstraints(min_length=1), AfterValidator(regex_text),
        Says("must be a non-empty regular expression string"),
    ] | None = Field(None, description="a regular expression the body must match")
    body_json: JsonAssertions | None = Field(
        None, description="JMESPath assertions on the body read as JSON: a list of {path, "
        "equals} or {path, regex}")
    max_response_time: ShortDuration | None = Field(
        None, description="a slower answer fails the check")
    cert_min_days: CertMinDays | None = Field(
        None, description="fail when the server's certificate expires sooner (https:// only)")

    @classmethod
    def rules(cls, data: dict[str, Any]) -> Iterable[tuple[tuple, str]]:
        if "body" in data and "json" in data:
            yield ("json",), "use either body or json, not both"
        yield from ca_file_rule(data, "verify_tls")
        days = data.get("cert_min_days")
        if isinstance(days, int) and not isinstance(days, bool) and days >= 0 \
                and _plain_http(data.get("url")):
            yield ("cert_min_days",), "needs an https:// url (there is no certificate on http://)"


class Options(Section):
    """One HTTP request per run, on the event loop (thousands cost sockets, not threads)."""

    http: Annotated[Request, Says("must be a mapping with at least `url: https://...`")] = Field(
        description="the request and what its answer must be")


KEYS = frozenset(Options.model_fields)
OPTIONS = frozenset(field.alias or name for name, field in Request.model_fields.items())


def build(options: Options, base_dir: str) -> HttpProbe:
    """The probe, from validated options: request bytes and TLS context made once."""
    spec = options.http
    target = spec.url.target if isinstance(spec.url, _Url) else _Target.from_url(spec.url)
    headers = list((spec.headers or {}).items())
    body: bytes | None = None
    if spec.body is not None:
        body = spec.body.encode("utf-8")
    elif "json_body" in spec.model_fields_set:
        body = _json_dumps(spec.json_body)
        if not any(name.lower() == "content-type" for name, _ in headers):
            headers.append(("Content-Type", "application/json"))
    context, ca_path = None, None
    if target.tls or spec.ca_file is not None:  # only redirects may use it: it must load now
        loaded, ca_path = load_context(spec.verify_tls, spec.ca_file, base_dir, "http.ca_file")
        context = loaded if target.tls else None
    expect = None if spec.expect_status is None else frozenset(spec.expect_status)
    expect_text = "2xx" if expect is None else ", ".join(str(c) for c in sorted(expect))
    return HttpProbe(
        url=str(spec.url),
        first=_Hop(target, spec.method.upper(), headers, body, context),
        follow=spec.follow_redirects,
        verify=spec.verify_tls,
        ca_path=ca_path,
        expect=expect,
        expect_text=expect_text,
        contains=spec.body_contains,
        regex=None if spec.body_regex is None else re.compile(spec.body_regex),
        json_checks=tuple(JsonCheck.of(item) for item in spec.body_json or ()),
        max_time=spec.max_response_time,
        cert_min_days=spec.cert_min_days,
    )


def parse(options: dict[str, Any], base_dir: str) -> HttpProbe:
    """Validate the check's `http:` mapping and build the probe; OptionError lists every
    problem."""
    return build(validate(Options, options, base_dir), base_dir)


def _json_dumps(value: Any) -> bytes:
    import json  # only checks that send JSON pay for the import

    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
