"""STARTTLS: each protocol's greeting and upgrade, spoken as a client, up to the point where
the TLS handshake starts. A server that does not offer the upgrade, or refuses it, fails the
run in words that say which (a Failure); a server that is not speaking the protocol at all
is named by what it sent.

  smtp      220 greeting, EHLO, STARTTLS listed in the answer, STARTTLS -> 220 (RFC 3207)
  imap      * OK greeting, a1 STARTTLS -> a1 OK (RFC 9051)
  pop3      +OK greeting, STLS -> +OK (RFC 2595)
  ftp       220 greeting, AUTH TLS -> 234 (RFC 4217)
  postgres  SSLRequest -> S (the PostgreSQL protocol: no greeting; N is a refusal)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from watchdog.probes.net import Failure
from watchdog.probes.tcp.stream import READ_CAP, Stream

SHOWN_CHARS = 80
EHLO = b"EHLO pd-watchdog\r\n"
SSL_REQUEST = b"\x00\x00\x00\x08\x04\xd2\x16\x2f"  # length 8, code 80877103


def shown(line: bytes) -> str:
    """A server's line as a summary quotes it: decoded, at most SHOWN_CHARS."""
    text = line.decode("utf-8", "replace").strip()
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


async def _line(stream: Stream, waiting_for: str) -> bytes:
    stream.stage = f"waiting for {waiting_for}"
    line = await stream.line()
    if line is None:
        if stream.full:
            raise Failure(f"{waiting_for} has no line end in the first {READ_CAP // 1024} KiB "
                          "read")
        raise Failure(f"server closed the connection before {waiting_for}")
    return line


async def _reply(stream: Stream, waiting_for: str, name: str) -> tuple[bytes, list[bytes]]:
    """An SMTP/FTP reply: its code and lines ("250-..." continues, "250 ..." ends)."""
    lines: list[bytes] = []
    while True:
        line = await _line(stream, waiting_for)
        code = line[:3]
        if not code.isdigit() or line[3:4] not in (b"", b" ", b"-"):
            raise Failure(f"not an {name} server: it sent {shown(line)!r} as {waiting_for}")
        lines.append(line)
        if line[3:4] != b"-":
            return code, lines


async def _greeting(stream: Stream, name: str) -> None:
    """The 220 greeting of SMTP and FTP."""
    code, lines = await _reply(stream, f"the {name} greeting", name)
    if code != b"220":
        raise Failure(f"{name} server is not ready: {shown(lines[-1])}")


async def smtp(stream: Stream) -> None:
    await _greeting(stream, "SMTP")
    await stream.write(EHLO)
    code, lines = await _reply(stream, "the answer to EHLO", "SMTP")
    if code != b"250":
        raise Failure(f"SMTP server refused EHLO: {shown(lines[-1])}")
    if not any(line[4:].strip().upper() == b"STARTTLS" for line in lines[1:]):
        raise Failure("SMTP server does not offer STARTTLS (not in its answer to EHLO)")
    await stream.write(b"STARTTLS\r\n")
    code, lines = await _reply(stream, "the answer to STARTTLS", "SMTP")
    if code != b"220":
        raise Failure(f"SMTP server refused STARTTLS: {shown(lines[-1])}")


async def imap(stream: Stream) -> None:
    greeting = await _line(stream, "the IMAP greeting")
    if not greeting.upper().startswith(b"* OK"):
        raise Failure(f"unexpected IMAP greeting: {shown(greeting)!r} (expected * OK)")
    await stream.write(b"a1 STARTTLS\r\n")
    while True:  # untagged lines (* CAPABILITY ...) may come before the tagged answer
        line = await _line(stream, "the answer to STARTTLS")
        if line[:3].lower() == b"a1 ":
            break
    if line[3:5].upper() != b"OK":
        raise Failure(f"IMAP server refused STARTTLS: {shown(line)}")


async def pop3(stream: Stream) -> None:
    greeting = await _line(stream, "the POP3 greeting")
    if not greeting.startswith(b"+OK"):
        raise Failure(f"unexpected POP3 greeting: {shown(greeting)!r} (expected +OK)")
    await stream.write(b"STLS\r\n")
    answer = await _line(stream, "the answer to STLS")
    if not answer.startswith(b"+OK"):
        raise Failure(f"POP3 server refused STLS: {shown(answer)}")


async def ftp(stream: Stream) -> None:
    await _greeting(stream, "FTP")
    await stream.write(b"AUTH TLS\r\n")
    code, lines = await _reply(stream, "the answer to AUTH TLS", "FTP")
    if code != b"234":
        raise Failure(f"FTP server refused AUTH TLS: {shown(lines[-1])}")


async def postgres(stream: Stream) -> None:
    await stream.write(SSL_REQUEST)
    stream.stage = "waiting for the answer to SSLRequest"
    answer = await stream.take(1)
    if answer == b"S":
        return
    if answer == b"N":
        raise Failure("PostgreSQL server refused SSL (it answered N to SSLRequest: "
                      "ssl = off in postgresql.conf?)")
    if answer is None:
        raise Failure("server closed the connection before the answer to SSLRequest")
    raise Failure(f"not a PostgreSQL server: it answered {bytes(answer + stream.buffer)[:40]!r} "
                  "to SSLRequest")


PROTOCOLS: dict[str, Callable[[Stream], Awaitable[None]]] = {
    "smtp": smtp, "imap": imap, "pop3": pop3, "ftp": ftp, "postgres": postgres,
}
