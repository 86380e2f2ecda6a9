"""conmon's parent pipes, read and written without blocking the event loop.

conmon talks to its launcher over inherited pipe fds named in environment
variables (_OCI_SYNCPIPE, _OCI_STARTPIPE, _OCI_ATTACHPIPE).  On the sync
and attach pipes it writes one JSON object per line:
`{"data": N}` or `{"data": N, "message": "runtime stderr"}`.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class PipeMessage:
    data: int
    message: str | None = None


def parse_pipe_message(line: bytes) -> PipeMessage:
    """One line from a conmon pipe (API version 1 uses the key "data")."""
    rec = json.loads(line)
    value = rec.get("data", rec.get("pid", rec.get("exit_code", -1)))
    return PipeMessage(int(value), rec.get("message"))


class InboundPipe:
    """A pipe conmon writes to: our end reads JSON lines asynchronously."""

    def __init__(self) -> None:
        self.read_fd, self.child_fd = os.pipe2(os.O_CLOEXEC)
        self._reader: asyncio.StreamReader | None = None
        self._transport: asyncio.ReadTransport | None = None

    def child_started(self) -> None:
        """Drop our copy of conmon's end so EOF means conmon is gone."""
        if self.child_fd >= 0:
            os.close(self.child_fd)
            self.child_fd = -1

    async def _ensure_reader(self) -> asyncio.StreamReader:
        if self._reader is None:
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader(limit=1 << 20)
            protocol = asyncio.StreamReaderProtocol(reader)
            # connect_read_pipe takes ownership of the file object (and fd).
            pipe = os.fdopen(self.read_fd, "rb", buffering=0)
            self._transport, _ = await loop.connect_read_pipe(lambda: protocol, pipe)
            self._reader = reader
        return self._reader

    async def receive(self) -> PipeMessage | None:
        """The next message, or None at EOF (conmon exited without one)."""
        reader = await self._ensure_reader()
        line = await reader.readline()
        if not line.strip():
            return None
        return parse_pipe_message(line)

    def close(self) -> None:
        self.child_started()
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        elif self.read_fd >= 0:
            os.close(self.read_fd)
        self.read_fd = -1


class OutboundPipe:
    """A pipe conmon reads from (the start pipe): one byte wakes it."""

    def __init__(self) -> None:
        self.child_fd, self.write_fd = os.pipe2(os.O_CLOEXEC)

    def child_started(self) -> None:
        if self.child_fd >= 0:
            os.close(self.child_fd)
            self.child_fd = -1

    def signal(self) -> None:
        # A pipe write of a few bytes never blocks on an empty pipe.
        os.write(self.write_fd, b"0")

    def close(self) -> None:
        self.child_started()
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1
