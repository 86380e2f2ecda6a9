"""A connection taken over by a handler: raw bytes both ways (attach, exec).

The client may have sent bytes right behind its request (stdin it had ready,
or a websocket's first frames); those come out of `read` first.  A client
that half-closes its side (the CLI does when stdin ends) still gets
everything written here until the handler is done.
"""

from __future__ import annotations

import asyncio
import contextlib


class HijackedStream:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 early: bytes = b"", eof: bool = False) -> None:
        self._reader = reader
        self._writer = writer
        self._early = early
        self._eof = eof

    async def read(self, n: int = 65536) -> bytes:
        """Up to `n` bytes from the client; b"" at its EOF or once it has gone."""
        if self._early:
            data, self._early = self._early[:n], self._early[n:]
            return data
        if self._eof:
            return b""
        try:
            data = await self._reader.read(n)
        except (ConnectionError, OSError):
            data = b""
        if not data:
            self._eof = True
        return data

    def write(self, data: bytes) -> None:
        # Writes after the client went away are dropped here; drain() says so.
        if data and not self._writer.transport.is_closing():
            self._writer.write(data)

    async def drain(self) -> None:
        """Wait for the written bytes to leave; ConnectionError once the client has gone."""
        if self._writer.transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        await self._writer.drain()

    def close(self) -> None:
        self._eof = True
        with contextlib.suppress(Exception):
            self._writer.close()
