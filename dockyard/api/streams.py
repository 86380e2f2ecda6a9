"""Docker's stream formats on a taken-over connection.

Without a terminal, attach, exec and logs multiplex stdout and stderr: each
frame is a stream byte, three zero bytes and a big-endian 32-bit length
(docker's stdcopy).  With one, the bytes go out raw.  The engine writes
(stream, bytes) to an `OutputSink`; these sinks pick the format.
"""

from __future__ import annotations

import struct
from typing import Any, Protocol

from dockyard.api.server.jsonbody import json_bytes

MUX = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"

_HEADER = struct.Struct(">BxxxI")


def frame(stream: int, data: bytes) -> bytes:
    """One stdcopy frame."""
    return _HEADER.pack(stream, len(data)) + data


def frames(records: list[tuple[int, bytes]]) -> bytes:
    """A stdcopy frame for each (stream, data), joined (a log batch holds
    many small records: one copy of each, not two)."""
    parts: list[bytes] = []
    add, pack = parts.append, _HEADER.pack
    for stream, data in records:
        add(pack(stream, len(data)))
        add(data)
    return b"".join(parts)



class ByteWriter(Protocol):
    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...


class StreamSink:
    """An OutputSink over a byte connection: multiplexed or raw."""

    def __init__(self, conn: ByteWriter, multiplexed: bool) -> None:
        self._conn = conn
        self._multiplexed = multiplexed

    def write(self, stream: int, data: bytes) -> None:
        if data:
            self._conn.write(frame(stream, data) if self._multiplexed else data)

    async def drain(self) -> None:
        await self._conn.drain()


def json_line(obj: Any) -> bytes:
    """One JSON document and a newline, compact, as Go's json.Encoder writes."""
    return json_bytes(obj)
