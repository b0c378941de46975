"""The HTTP probe's requests: where one goes (Target) and its bytes, prepared once (Hop)."""

from __future__ import annotations

import ssl
from urllib.parse import quote, urlsplit

from watchdog import __version__
from watchdog.probes.net import ip_literal

USER_AGENT = f"pd-watchdog/{__version__}"
# RFC 3986 reserved + unreserved + "%": keep what the user wrote, quote only the rest
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~-._"


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
        literal = ip_literal(host)
        if literal is None:
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError:
                raise ValueError(f"has an invalid host name: {host}") from None
        tls = scheme == "https"
        if port is None:
            port = 443 if tls else 80
        path = quote(parts.path or "/", safe=_URL_SAFE)
        if parts.query:
            path += "?" + quote(parts.query, safe=_URL_SAFE)
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
