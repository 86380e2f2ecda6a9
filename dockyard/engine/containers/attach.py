"""Attaching clients to a container's stdio through conmon's attach socket.

`AttachWaiters` holds the clients that attached to a created container
before it started: the lifecycle hands them the attach socket between the
runtime's create and start, so the first bytes the process writes are not
lost.  `ContainerAttach` checks an attach request, then bridges the
client's stdin and an output sink to the socket; the API layer owns the
connection and the framing.  Detach keys use Docker's syntax and default.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from dockyard.backend import STDERR, STDOUT, AttachOptions, AttachPlan, OutputSink, StdinSource
from dockyard.engine.containers.record import Container
from dockyard.engine.containers.store import ContainerStore
from dockyard.engine.logs.service import LogService
from dockyard.errors import Conflict, InvalidParameter
from dockyard.runtime import conmon
from dockyard.runtime.attach import AttachConnection
from dockyard.runtime.conmon import ContainerLayout

log = logging.getLogger("dockyard.attach")

DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p, ctrl-q
# what is taken from the client at once; conmon gets it in packets it can take
STDIN_READ = 256 * 1024
_CTRL_PUNCT = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}

# Called with the started container's layout, or None when it will not start.
StartHook = Callable[[ContainerLayout | None], Awaitable[None]]


def parse_detach_keys(spec: str | None) -> bytes:
    """Docker's detach key syntax: `ctrl-p,ctrl-q`, `a`, `ctrl-@`, `ctrl-[`..."""
    if spec is None or spec == "":
        return DEFAULT_DETACH_KEYS
    out = bytearray()
    for key in spec.split(","):
        k = key.strip().lower()
        if len(k) == 1 and k.isascii():
            # one byte, as Go's term.ToBytes counts: a character outside
            # ASCII is two or more bytes in UTF-8, so not a key
            out.append(ord(key.strip()))
        elif k.startswith("ctrl-") and len(k) == 6:
            ch = k[5]
            if "a" <= ch <= "z":
                out.append(ord(ch) - ord("a") + 1)
            elif ch in _CTRL_PUNCT:
                out.append(_CTRL_PUNCT[ch])
            else:
                raise InvalidParameter(f"Invalid detach keys ({spec}) provided")
        else:
            raise InvalidParameter(f"Invalid detach keys ({spec}) provided")
    return bytes(out)


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


async def forward_stdin(stdin: StdinSource, conn: AttachConnection,
                        scanner: DetachScanner | None) -> bool:
    """Copy client bytes to the process's stdin until EOF (False) or the
    detach keys (True); a broken client connection counts as EOF."""
    try:
        while True:
            data = await stdin.read(STDIN_READ)
            if not data:
                return False
            fwd, hit = scanner.feed(data) if scanner else (data, False)
            if fwd:
                await conn.write_stdin(fwd)
            if hit:
                return True
    except (ConnectionError, OSError):
        return False


class AttachWaiters:
    """Clients attached to a container that has not started yet."""

    def __init__(self) -> None:
        self._hooks: dict[str, list[StartHook]] = {}

    def add(self, c: Container, hook: StartHook) -> None:
        self._hooks.setdefault(c.id, []).append(hook)

    def remove(self, c: Container, hook: StartHook) -> None:
        with contextlib.suppress(ValueError):
            self._hooks.get(c.id, []).remove(hook)

    async def started(self, c: Container, layout: ContainerLayout) -> None:
        """The runtime created the container: connect the waiting clients."""
        for hook in self._hooks.pop(c.id, []):
            try:
                await hook(layout)
            except Exception:
                log.exception("attaching to %s failed", c.id[:12])

    async def cancelled(self, c: Container) -> None:
        """The container will not start (start failed, or it was removed)."""
        for hook in self._hooks.pop(c.id, []):
            with contextlib.suppress(Exception):
                await hook(None)


def check_attachable(c: Container) -> None:
    if c.state.status == "paused":
        raise Conflict(f"container {c.id} is paused, unpause the container before attach")
    if c.state.status == "restarting":
        raise Conflict(f"container {c.id} is restarting, wait until the container is running")


class ContainerAttach:
    def __init__(self, store: ContainerStore, waiters: AttachWaiters, logs: LogService) -> None:
        self.store = store
        self.waiters = waiters
        self.logs = logs

    def plan(self, ref: str, opts: AttachOptions) -> AttachPlan:
        """Check the request (404, 409, bad detach keys) before the takeover."""
        c = self.store.get(ref)
        check_attachable(c)
        keys = parse_detach_keys(opts.detach_keys)

        async def run(stdin: StdinSource, out: OutputSink) -> None:
            await self._session(c, opts, keys, stdin, out)

        return AttachPlan(tty=bool(c.config.get("Tty")), run=run)

    async def resize(self, ref: str, height: int, width: int) -> None:
        c = self.store.get(ref)
        if not c.state.running:
            raise Conflict(f"container {c.id} is not running")
        if c.config.get("Tty"):
            try:
                await conmon.resize(self.store.layout(c), height, width)
            except OSError:
                raise Conflict(f"container {c.id} is not running") from None
        self.store.emit(c, "resize", height=str(height), width=str(width))

    async def _connect(self, c: Container) -> AttachConnection | None:
        if c.state.running:
            return await AttachConnection.connect(self.store.layout(c).attach_socket)
        ready: asyncio.Future[AttachConnection | None] = \
            asyncio.get_running_loop().create_future()

        async def hook(layout: ContainerLayout | None) -> None:
            ready.set_result(None if layout is None
                             else await AttachConnection.connect(layout.attach_socket))

        # The CLI half-closes its side at once when it sends no stdin, so an
        # EOF here says nothing: wait for the start (or the removal).
        self.waiters.add(c, hook)
        try:
            return await ready
        finally:
            self.waiters.remove(c, hook)

    async def _session(self, c: Container, opts: AttachOptions, keys: bytes,
                       stdin: StdinSource, out: OutputSink) -> None:
        tty = bool(c.config.get("Tty"))
        use_stdin = opts.stdin and bool(c.config.get("OpenStdin"))

        def wanted(stream_no: int) -> bool:
            return (stream_no == STDOUT and opts.stdout) or (stream_no == STDERR and opts.stderr)

        if opts.logs:
            async for stream_no, data in self.logs.replay(c):
                if wanted(stream_no) and data:
                    out.write(stream_no, data)
            await out.drain()
        if not opts.stream:
            return
        self.store.emit(c, "attach")
        conn = await self._connect(c)
        if conn is None:
            return
        detached = asyncio.Event()

        async def pump_in() -> None:
            # as dockerd: detach keys are looked for only on a terminal; any
            # other stdin is data, passed through byte for byte
            scanner = DetachScanner(keys) if tty else None
            if await forward_stdin(stdin, conn, scanner):
                detached.set()
                return
            if c.config.get("StdinOnce") and not tty:
                await conn.close_stdin()

        async def pump_out() -> None:
            while True:
                batch = await conn.receive_batch()
                if batch is None:
                    return
                for chunk in batch:
                    if wanted(chunk.stream) and chunk.data:
                        out.write(chunk.stream, chunk.data)
                await out.drain()

        out_task = asyncio.ensure_future(pump_out())
        in_task = asyncio.ensure_future(pump_in()) if use_stdin else None
        det = asyncio.ensure_future(detached.wait())
        try:
            await asyncio.wait([out_task, det], return_when=asyncio.FIRST_COMPLETED)
        except (ConnectionError, OSError):
            pass
        finally:
            tasks = [out_task, det, *([in_task] if in_task else [])]
            for t in tasks:
                t.cancel()
            # they let go of the socket's fd in the event loop before it is
            # closed: a closed fd's number is the next open's, anywhere
            await asyncio.gather(*tasks, return_exceptions=True)
            conn.close()
            with contextlib.suppress(Exception):
                await out.drain()
            if detached.is_set():
                self.store.emit(c, "detach")
