"""The HTTP probe's requests: where one goes (Target) and its bytes, prepared once (Hop)."""

from __future__ import annotations

import re
import ssl
from urllib.parse import quote, urlsplit

from watchdog import __version__
from watchdog.probes.net import ip_literal

USER_AGENT = f"pd-watchdog/{__version__}"
# RFC 3986 reserved + unreserved + "%": keep what the user wrote, quote only the rest
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~-._"
# Most URLs: http(s), a host name or IPv4 address, a port, a path and a query of characters
# quote() keeps. Split by this in ~1/4 of urlsplit's time (each check's URL is split once,
# at load: ~5 % of validating 10,000 checks); anything else goes through urlsplit, and the
# two give the same Target for every URL this matches (test_probe_http_url.py, hypothesis).
_PLAIN_URL = re.compile(r"(https?)://([A-Za-z0-9.-]+)(?::([0-9]{1,5}))?"
                        r"(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?(?:\?([A-Za-z0-9._~!$&'()*+,;=:@%/?-]*))?")


class _Target:
    """Where one request goes, split once: scheme, host, port, request target, Host header."""

    __slots__ = ("url", "tls", "host", "port", "path", "host_header", "literal")

    def __init__(self, url: str, tls: bool, host: str, port: int, path: str, host_header: str):
        self.url = url
        self.tls = tls
        self.host = host
        self.port = port
        self.path = path
        self.host_header = host_header
        self.literal = ip_literal(host) is not None  # an IP address: no lookup needed

    @classmethod
    def from_url(cls, url: str) -> _Target:
        """Raise ValueError with a message that says what to fix."""
        plain = _PLAIN_URL.fullmatch(url.strip())
        if plain is not None:
            scheme, host, port, path, query = plain.groups()
            if port is None or int(port) <= 65535:  # else urlsplit says it is out of range
                return cls._of(url, scheme, host.lower(), port and int(port), path or "/",
                               query)
        return cls.from_split(url)

    @classmethod
    def from_split(cls, url: str) -> _Target:
        """from_url() through urlsplit: any URL (the plain ones give the same Target)."""
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"is not a valid URL ({exc})") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise ValueError("must start with http:// or https://")
        host = parts.hostname
        if not host:
            raise ValueError("has no host name (write it as https://host/path)")
        if "@" in parts.netloc:  # what username/password test, without parsing it twice
            raise ValueError("credentials in the URL are not supported; use headers.Authorization")
        return cls._of(url, scheme, host, port, quote(parts.path or "/", safe=_URL_SAFE),
                       parts.query and quote(parts.query, safe=_URL_SAFE))

    @classmethod
    def _of(cls, url: str, scheme: str, host: str, port: int | None, path: str,
            query: str | None) -> _Target:
        literal = ip_literal(host)
        if literal is None:
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError:
                raise ValueError(f"has an invalid host name: {host}") from None
        tls = scheme == "https"
        if port is None:
            port = 443 if tls else 80
        if query:
            path += "?" + query
        shown = f"[{host}]" if literal is not None and literal.version == 6 else host
        host_header = shown if port == (443 if tls else 80) else f"{shown}:{port}"
        return cls(url, tls, host, port, path, host_header)

    @property
    def origin(self) -> tuple[bool, str, int]:
        return self.tls, self.host, self.port


class _Hop:
    """One request ready to send: target, the exact bytes, and the TLS context."""

    __slots__ = ("target", "method", "headers", "body", "context", "request")

    def __init__(
        self,
        target: _Target,
        method: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        context: ssl.SSLContext | None,
    ):
        self.target = target
        self.method = method
        self.headers = headers
        self.body = body
        self.context = context
        lines = [f"{method} {target.path} HTTP/1.1"]
        names = {name.lower() for name, _ in headers}
        if "host" not in names:
            lines.append(f"Host: {target.host_header}")
        if "user-agent" not in names:
            lines.append(f"User-Agent: {USER_AGENT}")
        if "accept" not in names:
            lines.append("Accept: */*")
        lines.extend(f"{name}: {value}" for name, value in headers)
        lines.append("Connection: close")
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        elif method in ("POST", "PUT", "PATCH"):
            lines.append("Content-Length: 0")
        self.request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
