"""Bridge a hijacked client connection to a container's conmon attach socket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from dockyard.engine.record import Container
from dockyard.errors import Conflict, InvalidParameter
from dockyard.runtime.attach import AttachConnection

if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerManager

log = logging.getLogger("dockyard.attach")

DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p, ctrl-q


def parse_detach_keys(spec: str | None) -> bytes:
    """Docker's detach key syntax: `ctrl-p,ctrl-q`, `a`, `ctrl-@`, `ctrl-[`..."""
    if spec is None or spec == "":
        return DEFAULT_DETACH_KEYS
    out = bytearray()
    for key in spec.split(","):
        k = key.strip().lower()
        if len(k) == 1:
            out.append(ord(key.strip()))
        elif k.startswith("ctrl-") and len(k) == 6:
            ch = k[5]
            if "a" <= ch <= "z":
                out.append(ord(ch) - ord("a") + 1)
            elif ch in "@[\\]^_":
                out.append({"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}[ch])
            else:
                raise InvalidParameter(f"Invalid detach keys ({spec}) provided")
        else:
            raise InvalidParameter(f"Invalid detach keys ({spec}) provided")
    return bytes(out)


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxI", stream, len(data)) + data


class DetachScanner:
    """Finds the detach sequence in stdin; holds back a partial match."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        buf = self.held + data
        self.held = b""
        if not self.keys:
            return buf, False
        idx = buf.find(self.keys)
        if idx >= 0:
            return buf[:idx], True
        for n in range(min(len(self.keys) - 1, len(buf)), 0, -1):
            if buf.endswith(self.keys[:n]):
                self.held = buf[-n:]
                return buf[:-n], False
        return buf, False


async def forward_stdin(reader: Any, conn: AttachConnection,
                        scanner: DetachScanner | None) -> bool:
    """Copy client bytes to the process's stdin until EOF (False) or the
    detach keys (True); a broken client connection counts as EOF."""
    try:
        while True:
            data = await reader.read(32768)
            if not data:
                return False
            fwd, hit = scanner.feed(data) if scanner else (data, False)
            if fwd:
                await conn.write_stdin(fwd)
            if hit:
                return True
    except (ConnectionError, OSError):
        return False


async def attach_session(
    m: ContainerManager, c: Container, reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter, *, stdin: bool, stdout: bool, stderr: bool, stream: bool,
    logs: bool, detach_keys: bytes, multiplexed: bool,
    replay: Callable[[], Any] | None = None,
) -> None:
    tty = bool(c.config.get("Tty"))
    use_stdin = stdin and bool(c.config.get("OpenStdin"))

    def out(stream_no: int, data: bytes) -> None:
        if not data:
            return
        writer.write(frame(stream_no, data) if multiplexed and not tty else data)

    if logs and replay is not None:
        async for stream_no, data in replay():
            if (stream_no == 1 and stdout) or (stream_no == 2 and stderr):
                out(stream_no, data)
        await writer.drain()
    if not stream:
        return
    m.emit(c, "attach")
    conn: AttachConnection | None = None
    if c.state.running:
        conn = await AttachConnection.connect(m.layout(c).attach_socket)
    else:
        ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        async def hook(layout: Any) -> None:
            if layout is None:
                ready.set_result(None)
                return
            ready.set_result(await AttachConnection.connect(layout.attach_socket))

        # The CLI half-closes its side at once when it sends no stdin, so an
        # EOF here says nothing: wait for the start (or the removal).
        m.add_attach_hook(c, hook)
        try:
            conn = await ready
        finally:
            m.remove_attach_hook(c, hook)
        if conn is None:
            return
    assert conn is not None
    detached = asyncio.Event()

    async def pump_in() -> None:
        if await forward_stdin(reader, conn, DetachScanner(detach_keys)):
            detached.set()
            return
        if c.config.get("StdinOnce") and not tty:
            await conn.close_stdin()

    async def pump_out() -> None:
        while True:
            chunk = await conn.receive()
            if chunk is None:
                return
            if (chunk.stream == 1 and stdout) or (chunk.stream == 2 and stderr):
                out(chunk.stream, chunk.data)
                await writer.drain()

    tasks = [asyncio.ensure_future(pump_out())]
    in_task = asyncio.ensure_future(pump_in()) if use_stdin else None
    det = asyncio.ensure_future(detached.wait())
    try:
        await asyncio.wait(tasks + [det], return_when=asyncio.FIRST_COMPLETED)
    except (ConnectionError, OSError):
        pass
    finally:
        for t in tasks + [det] + ([in_task] if in_task else []):
            t.cancel()
        conn.close()
        with contextlib.suppress(Exception):
            await writer.drain()
        if detached.is_set():
            m.emit(c, "detach")


def check_attachable(c: Container) -> None:
    if c.state.status == "paused":
        raise Conflict(f"container {c.id} is paused, unpause the container before attach")
    if c.state.status == "restarting":
        raise Conflict(f"container {c.id} is restarting, wait until the container is running")


Writer = Callable[[bytes], Awaitable[None]]
