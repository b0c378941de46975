"""The bytes of one TCP connection, as an asyncio Protocol the probe awaits: lines for the
STARTTLS dialogues, a match for `expect`, a drained write for `send`.

Bounded by READ_CAP: a connection is read up to 64 KiB in all (greeting, dialogue and what
`expect` looks at together); past that the Protocol stops reading, so a server that floods
costs the probe 64 KiB and no more, and the run says what it was waiting for.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import TypeVar

READ_CAP = 64 * 1024
T = TypeVar("T")


class Stream(asyncio.Protocol):
    """One connection's reads, kept in `buffer` (what is not consumed yet), and its state:
    `total` bytes read, `eof`, `full` (READ_CAP read: no more is), and `stage`, what the
    run is doing now (its timeout is worded with it)."""

    __slots__ = ("transport", "buffer", "total", "eof", "full", "waiter", "drained", "stage")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.total = 0
        self.eof = False
        self.full = False
        self.waiter: asyncio.Future[None] | None = None
        self.drained: asyncio.Future[None] | None = None
        self.stage = "connecting"

    # --- asyncio's calls -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(0)  # type: ignore[attr-defined]  # see drain()

    def data_received(self, data: bytes) -> None:
        if self.full:
            return
        room = READ_CAP - self.total
        if len(data) >= room:
            data = data[:room]
            self.full = True
            self.transport.pause_reading()  # type: ignore[union-attr]
        self.buffer += data
        self.total += len(data)
        self._wake()

    def eof_received(self) -> None:
        self.eof = True
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self._wake()
        self.resume_writing()

    def pause_writing(self) -> None:
        if self.drained is None or self.drained.done():
            self.drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    # --- what the probe awaits -----------------------------------------------------

    async def until(self, ready: Callable[[], T | None]) -> T | None:
        """`ready()`'s first answer that is not None, tried after every read; None once
        nothing more will come (the server closed, or READ_CAP is read)."""
        while True:
            got = ready()
            if got is not None:
                return got
            if self.eof or self.full:
                return None
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter

    async def line(self) -> bytes | None:
        """The next line, its line end dropped; None when no whole line will come."""
        return await self.until(self._take_line)

    def _take_line(self) -> bytes | None:
        end = self.buffer.find(b"\n")
        if end < 0:
            return None
        line = bytes(self.buffer[:end]).rstrip(b"\r")
        del self.buffer[: end + 1]
        return line

    async def take(self, size: int) -> bytes | None:
        """The next `size` bytes; None when they will not all come."""
        def ready() -> bytes | None:
            if len(self.buffer) < size:
                return None
            got = bytes(self.buffer[:size])
            del self.buffer[:size]
            return got

        return await self.until(ready)

    async def write(self, data: bytes) -> None:
        """Send `data` and wait until the transport has handed all of it to the kernel
        (an abort right after a plain write would drop what is still buffered)."""
        self.transport.write(data)  # type: ignore[union-attr]
        if self.drained is not None and not self.drained.done():
            await self.drained

    async def expect(self, text: bytes | None, regex: re.Pattern[bytes] | None) -> bool:
        """True once what was read contains `text` / matches `regex`; False when it never
        will (closed, or READ_CAP read without it)."""
        seen = [0]  # where the next search for `text` starts: each byte is looked at once

        def found() -> bool | None:
            if regex is not None:  # CRLF is a line end too: `$` matches before it
                return True if regex.search(self.buffer.replace(b"\r\n", b"\n")) else None
            assert text is not None
            if self.buffer.find(text, seen[0]) >= 0:
                return True
            seen[0] = max(0, len(self.buffer) - len(text) + 1)
            return None

        return await self.until(found) is True
