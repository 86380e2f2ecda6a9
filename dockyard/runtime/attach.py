"""An asyncio client for conmon's attach socket.

Protocol (conmon 2.1.6 conn_sock.c / ctr_stdio.c):
- AF_UNIX SOCK_SEQPACKET at BUNDLE/attach (with --full-attach).
- conmon -> us: one packet per read of the container's stdout/stderr
  pipe (at most 8192 payload bytes), prefixed by one stream byte:
  2 = stdout, 3 = stderr.  With a tty everything arrives as stdout.
  Output is sent only to clients connected at that moment; anything
  earlier is only in the log file, so attach before `start`.
- us -> conmon: every packet's bytes go to the container's stdin
  (only when conmon was started with -i).  Never send an empty packet:
  a zero-length read is how conmon recognises a hang-up.
- stdin EOF: shutdown(SHUT_WR) (or closing the socket) makes conmon's read
  return 0; it then closes the container's stdin pipe -- unless it runs
  with --leave-stdin-open.  With a tty, closing does not deliver EOF to
  the program (the pty stays open); send ^D (b"\\x04") instead.
  Any client hanging up counts, so a client that only reads output would
  also close stdin of a -i container: share one connection per container.
- When the container exits conmon drains its pipes to every client and
  closes the sockets: the iterator ends after the last output.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Self

STDIN = 0
STDOUT = 1
STDERR = 2

# conmon's stream bytes on the attach socket, mapped to fd numbers.
_CONMON_STREAM = {2: STDOUT, 3: STDERR}

# conmon sends at most STDIO_BUF_SIZE (8192) + 1 bytes per packet; a
# SEQPACKET read with a smaller buffer would silently truncate.
_RECV_SIZE = 65536
# what one receive_batch gathers at most
BATCH_BYTES = 256 * 1024
_SUN_PATH_MAX = 107


@dataclass(frozen=True)
class OutputChunk:
    stream: int      # STDOUT or STDERR
    data: bytes


def decode_packet(packet: bytes) -> OutputChunk | None:
    """One attach-socket packet -> chunk (None for an unknown stream byte)."""
    if not packet:
        return None
    stream = _CONMON_STREAM.get(packet[0])
    if stream is None:
        return None
    return OutputChunk(stream, packet[1:])


class AttachConnection:
    """One connection to a container's (or exec session's) attach socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._stdin_closed = False
        self._eof_seen = False     # a batch read met conmon's close

    @classmethod
    async def connect(cls, path: str, timeout: float = 10) -> AttachConnection:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(_connect_long_path(sock, path), timeout)
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    async def receive(self) -> OutputChunk | None:
        """The next output chunk, or None once conmon has closed the socket."""
        if self._eof_seen:
            return None
        loop = asyncio.get_running_loop()
        while True:
            try:
                packet = await loop.sock_recv(self._sock, _RECV_SIZE)
            except (ConnectionResetError, OSError):
                return None
            if not packet:
                return None
            chunk = decode_packet(packet)
            if chunk is not None:
                return chunk

    async def receive_batch(self, limit: int = BATCH_BYTES) -> list[OutputChunk] | None:
        """The next output and whatever more conmon has already queued (up to
        about `limit` bytes), runs of one stream joined; None once conmon has
        closed the socket.  One wake-up per batch instead of per 8 KiB
        packet is what lets a fast writer's output through at pipe speed."""
        first = await self.receive()
        if first is None:
            return None
        chunks = [first]
        parts = [first.data]
        size = len(first.data)
        stream = first.stream
        while size < limit:
            try:
                packet = self._sock.recv(_RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break              # the next receive() reports the end
            if not packet:
                self._eof_seen = True
                break
            chunk = decode_packet(packet)
            if chunk is None:
                continue
            if chunk.stream != stream:
                chunks[-1] = OutputChunk(stream, b"".join(parts))
                chunks.append(chunk)
                parts, stream = [], chunk.stream
            parts.append(chunk.data)
            size += len(chunk.data)
        chunks[-1] = OutputChunk(stream, b"".join(parts))
        return chunks

    async def __aiter__(self) -> AsyncIterator[tuple[int, bytes]]:
        while True:
            chunk = await self.receive()
            if chunk is None:
                return
            yield chunk.stream, chunk.data

    async def write_stdin(self, data: bytes) -> None:
        """Send bytes to the container's stdin (in packets conmon can take)."""
        if self._stdin_closed:
            raise BrokenPipeError("stdin already closed")
        loop = asyncio.get_running_loop()
        view = memoryview(data)
        # conmon reads into a 32 KiB buffer; a larger SEQPACKET message
        # would be truncated, so split.
        step = 32768 - 1
        for off in range(0, len(view), step):
            await loop.sock_sendall(self._sock, view[off:off + step])

    async def close_stdin(self) -> None:
        """Half-close: conmon closes the container's stdin, output keeps flowing."""
        if self._stdin_closed:
            return
        self._stdin_closed = True
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self._sock.close()

    async def read_all(self) -> tuple[bytes, bytes]:
        """Convenience for tests and `docker run` without -d: all output."""
        out: list[bytes] = []
        err: list[bytes] = []
        async for stream, data in self:
            (out if stream == STDOUT else err).append(data)
        return b"".join(out), b"".join(err)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


async def _connect_long_path(sock: socket.socket, path: str) -> None:
    """connect() even when `path` exceeds sun_path's 108 bytes.

    A short path is used as is.  Otherwise we open the directory with O_PATH
    and connect to /proc/self/fd/N/NAME, which the kernel resolves like any
    path (conmon binds the same way).
    """
    loop = asyncio.get_running_loop()
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        await loop.sock_connect(sock, path)
        return
    dir_fd = os.open(os.path.dirname(path), os.O_PATH | os.O_CLOEXEC)
    try:
        await loop.sock_connect(sock, f"/proc/self/fd/{dir_fd}/{os.path.basename(path)}")
    finally:
        os.close(dir_fd)
