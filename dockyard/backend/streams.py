"""The two ends of an attached stream, as the engine sees them.

The API layer owns the connection and its framing (Docker's multiplexed
stream, a raw stream, websocket messages); the engine reads the client's
stdin from a `StdinSource` and writes the container's output, tagged with
its stream number, to an `OutputSink`.
"""

from __future__ import annotations

from typing import Protocol

STDIN, STDOUT, STDERR = 0, 1, 2


class StdinSource(Protocol):
    async def read(self, n: int = 65536) -> bytes:
        """Up to `n` bytes from the client; b"" once it has no more to send
        (end of its stdin, or the connection went away)."""
        ...


class OutputSink(Protocol):
    def write(self, stream: int, data: bytes) -> None:
        """Queue `data` for the client as output of `stream` (STDOUT, STDERR)."""
        ...

    async def drain(self) -> None:
        """Wait until the queued output has been handed to the connection;
        raises ConnectionError once the client has gone."""
        ...
