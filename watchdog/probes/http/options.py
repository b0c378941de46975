"""The HTTP probe's options: the check's `http:` mapping, validated into an HttpProbe.

Everything that can be done once is done here, not per run: the request bytes and the TLS
context (shared between probes with the same trust settings).
"""

from __future__ import annotations

import os
import re
import ssl
from typing import Any

from watchdog.probes._util import (
    parse_duration,
    scalar_text,
    unknown_keys,
)
from watchdog.probes.base import OptionError
from watchdog.probes.http.probe import HttpProbe
from watchdog.probes.http.request import _Hop, _Target
from watchdog.probes.net import tls_context

KEYS = frozenset({"http"})
OPTIONS = frozenset(
    {
        "url", "method", "headers", "body", "json", "verify_tls", "ca_file",
        "follow_redirects", "expect_status", "body_contains", "body_regex",
        "max_response_time", "cert_min_days",
    }
)

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_HEADER_VALUE = re.compile(r"[\r\n\0]")
_MANAGED_HEADERS = {
    "content-length": "set automatically from body/json",
    "transfer-encoding": "the probe sends a fixed-length body",
    "connection": "the probe always sends Connection: close",
}


def parse(options: dict[str, Any], base_dir: str) -> HttpProbe:
    """Validate the check's `http:` mapping; raise OptionError listing every problem."""
    spec = options.get("http")
    if not isinstance(spec, dict):
        raise OptionError([("http", "must be a mapping with at least `url: https://...`")])
    problems = unknown_keys(spec, OPTIONS, "http.")

    def bad(key: str, message: str) -> None:
        problems.append((f"http.{key}", message))

    url = spec.get("url")
    target = None
    if url is None:
        bad("url", "required: the http:// or https:// address to request")
    elif not isinstance(url, str):
        bad("url", "must be a string such as https://example.com/health")
    else:
        try:
            target = _Target.from_url(url)
        except ValueError as exc:
            bad("url", str(exc))

    method = spec.get("method", "GET")
    if not isinstance(method, str) or not _TOKEN.fullmatch(method):
        bad("method", "must be an HTTP method name such as GET, HEAD or POST")
        method = "GET"
    method = method.upper()

    headers = _parse_headers(spec.get("headers"), bad)

    body: bytes | None = None
    if "body" in spec and "json" in spec:
        bad("json", "use either body or json, not both")
    elif "body" in spec:
        if isinstance(spec["body"], str):
            body = spec["body"].encode("utf-8")
        else:
            bad("body", "must be a string (use json: to send structured data)")
    elif "json" in spec:
        try:
            body = _json_dumps(spec["json"])
        except (TypeError, ValueError) as exc:
            bad("json", f"cannot be sent as JSON: {exc}")
        else:
            if not any(name.lower() == "content-type" for name, _ in headers):
                headers.append(("Content-Type", "application/json"))

    verify = _flag(spec, "verify_tls", True, bad)
    follow = _flag(spec, "follow_redirects", True, bad)

    ca_path = None
    ca_file = spec.get("ca_file")
    if ca_file is not None:
        if not isinstance(ca_file, str) or not ca_file:
            bad("ca_file", "must be the path of a PEM CA bundle")
        elif not verify:
            bad("ca_file", "has no effect with verify_tls: false; remove one of them")
        else:
            ca_path = os.path.normpath(os.path.join(base_dir, os.path.expanduser(ca_file)))
            if not os.path.isfile(ca_path):
                bad("ca_file", f"file not found: {ca_path}")
                ca_path = None

    expect, expect_text = _parse_expect(spec.get("expect_status"), bad)

    contains = spec.get("body_contains")
    contains_text = None
    if contains is not None:
        contains_text = scalar_text(contains)
        if not contains_text:
            bad("body_contains", "must be a non-empty string")

    regex = None
    pattern = spec.get("body_regex")
    if pattern is not None:
        if not isinstance(pattern, str) or not pattern:
            bad("body_regex", "must be a non-empty regular expression string")
        else:
            try:
                regex = re.compile(pattern)
            except re.error as exc:
                bad("body_regex", f"invalid regular expression: {exc}; quote it in YAML")

    max_time = None
    if spec.get("max_response_time") is not None:
        try:
            max_time = parse_duration(spec["max_response_time"])
        except ValueError as exc:
            bad("max_response_time", str(exc))

    cert_min_days = spec.get("cert_min_days")
    if cert_min_days is not None:
        if isinstance(cert_min_days, bool) or not isinstance(cert_min_days, int):
            bad("cert_min_days", "must be a whole number of days, 0 or more")
            cert_min_days = None
        elif cert_min_days < 0:
            bad("cert_min_days", "must be 0 or more")
            cert_min_days = None
        elif target is not None and not target.tls:
            bad("cert_min_days", "needs an https:// url (there is no certificate on http://)")

    context = None
    if target is not None and target.tls:
        try:
            context = tls_context(verify, ca_path)
        except (OSError, ssl.SSLError) as exc:
            bad("ca_file", f"cannot load CA bundle {ca_path}: {exc}")
    elif ca_path is not None:  # only redirects can use it; make sure it loads now
        try:
            tls_context(verify, ca_path)
        except (OSError, ssl.SSLError) as exc:
            bad("ca_file", f"cannot load CA bundle {ca_path}: {exc}")

    if problems:
        raise OptionError(problems)
    assert target is not None
    first = _Hop(target, method, headers, body, context)
    return HttpProbe(
        url=url,
        first=first,
        follow=follow,
        verify=verify,
        ca_path=ca_path,
        expect=expect,
        expect_text=expect_text,
        contains=contains_text,
        regex=regex,
        max_time=max_time,
        cert_min_days=cert_min_days,
    )


def _flag(spec: dict, key: str, default: bool, bad) -> bool:
    value = spec.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        bad(key, "must be true or false")
        return default
    return value


def _parse_headers(raw: Any, bad) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    if raw is None:
        return headers
    if not isinstance(raw, dict):
        bad("headers", "must be a mapping of Header-Name: value")
        return headers
    for name, value in raw.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            bad(f"headers.{name}", "is not a valid header name (letters, digits, -)")
            continue
        if name.lower() in _MANAGED_HEADERS:
            bad(f"headers.{name}", f"cannot be set: {_MANAGED_HEADERS[name.lower()]}")
            continue
        text = scalar_text(value)
        if text is None:
            bad(f"headers.{name}", "must be a string or number; quote it")
        elif _BAD_HEADER_VALUE.search(text):
            bad(f"headers.{name}", "must not contain line breaks or NUL")
        else:
            try:
                text.encode("latin-1")
            except UnicodeEncodeError:
                bad(f"headers.{name}", "must be Latin-1 text (percent-encode other characters)")
                continue
            headers.append((name, text))
    return headers


def _parse_expect(raw: Any, bad) -> tuple[frozenset[int] | None, str]:
    if raw is None:
        return None, "2xx"
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        bad("expect_status", "must list at least one status code")
        return None, "2xx"
    codes = []
    for i, item in enumerate(items):
        where = f"expect_status[{i}]" if isinstance(raw, list) else "expect_status"
        if isinstance(item, bool) or not isinstance(item, int) or not 100 <= item <= 599:
            bad(where, "must be a status code from 100 to 599, or a list of them")
        else:
            codes.append(item)
    return frozenset(codes), ", ".join(str(c) for c in sorted(set(codes)))


def _json_dumps(value: Any) -> bytes:
    import json  # only checks that send JSON pay for the import

    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
