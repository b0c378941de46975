"""A PostgreSQL connection URL that never shows its password.

`Dsn` holds the URL as written (`text`, for the driver only); printing it, logging it or
putting it in an error message gives the redacted form, so a password cannot leak through
an f-string someone writes later. Backend-neutral and import-light: the config, the store
and the command line all use it, none of them needs the driver for it.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field

SCHEMES = ("postgresql", "postgres")
MASK = "***"


@dataclass(frozen=True)
class Dsn:
    """postgresql://user:password@host:port/db?options; str() and repr() hide the password."""

    text: str = field(repr=False)

    def __str__(self) -> str:
        return redact(self.text)

    def __repr__(self) -> str:
        return f"Dsn({redact(self.text)!r})"

    @property
    def password(self) -> str:
        """The password, from the user part or a password= option ("" if none)."""
        return password_of(self.text)


def problem(text: str) -> str | None:
    """Why `text` is not a PostgreSQL URL we can use (None: it is); says it redacted."""
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError as exc:
        return f"is not a valid URL ({exc}): {redact(text)!r}"
    if parts.scheme not in SCHEMES:
        shown = redact(text)
        return (f"must be a postgresql:// URL, not {shown!r} — e.g. "
                "postgresql://watchdog@db.example.net/watchdog")
    if any(ch.isspace() for ch in text):
        return f"must not contain spaces (percent-encode them): {redact(text)!r}"
    return None


def redact(text: str) -> str:
    """`text` with its password (user part and password= option) replaced by ***."""
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError:
        return MASK
    netloc = parts.netloc
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = userinfo.split(":", 1)[0] + ":" + MASK + "@" + hosts
    query = parts.query
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        if any(key == "password" for key, _ in pairs):
            query = "&".join(f"{key}={MASK}" if key == "password" else
                             f"{key}={urllib.parse.quote(value, safe='')}"
                             for key, value in pairs)
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def password_of(text: str) -> str:
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError:
        return ""
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        return urllib.parse.unquote(userinfo.split(":", 1)[1])
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if key == "password":
            return value
    return ""


def secrets_of(text: str) -> set[str]:
    """What to mask in logs: the password as written and decoded, and the whole URL."""
    found = {text}
    password = password_of(text)
    if password:
        found.add(password)
        userinfo = urllib.parse.urlsplit(text).netloc.rpartition("@")[0]
        if ":" in userinfo:
            found.add(userinfo.split(":", 1)[1])
    return found
