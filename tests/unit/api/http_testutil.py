"""Helpers for the server tests: a real server on a unix socket in a
temporary directory, run by its own event loop in a thread, so tests can
talk raw bytes to it with plain blocking sockets."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.api.app import App
from dockyard.api.server import (
    HijackedStream,
    HijackResponse,
    Request,
    Router,
    WebSocket,
    WebSocketResponse,
    cancel_on_disconnect,
    json_response,
    stream_response,
)


@dataclass
class Seen:
    """What the test handlers observed, for assertions."""

    stream_closed: threading.Event = field(default_factory=threading.Event)
    body_pieces: list[int] = field(default_factory=list)
    work_started: threading.Event = field(default_factory=threading.Event)
    work_cancelled: threading.Event = field(default_factory=threading.Event)


def make_router(seen: Seen) -> Router:
    r = Router()

    async def echo(req: Request):
        return json_response({"body": await req.json(), "path": req.path, "params": req.params})

    async def upload(req: Request):
        h = hashlib.sha256()
        size = 0
        async for piece in req.body_chunks():
            seen.body_pieces.append(len(piece))
            h.update(piece)
            size += len(piece)
        return json_response({"size": size, "sha256": h.hexdigest()})

    async def upload_then_stream(req: Request):
        # the body is read to its end before the stream starts (as load and import do)
        size = len(await req.body.read_all())

        async def gen() -> AsyncIterator[bytes]:
            yield b"%d\n" % size

        return stream_response(gen(), "text/plain")

    async def forever(req: Request):
        async def gen() -> AsyncIterator[bytes]:
            try:
                while True:
                    yield b"tick\n"
                    await asyncio.sleep(0.05)
            finally:
                seen.stream_closed.set()

        return stream_response(gen(), "text/plain")

    async def work(req: Request):
        # reads its body, then works for `seconds` unless its client leaves
        size = len(await req.body.read_all())
        seconds = float(req.query_get("seconds") or "60")

        async def job() -> int:
            seen.work_started.set()
            try:
                await asyncio.sleep(seconds)
            except asyncio.CancelledError:
                seen.work_cancelled.set()
                raise
            return size

        return json_response({"size": await cancel_on_disconnect(req, job())})

    async def hijack(req: Request):
        async def run(stream: HijackedStream) -> None:
            # echo the client's bytes upper-cased until its EOF, then say so
            while True:
                data = await stream.read(4096)
                if not data:
                    break
                stream.write(data.upper())
                await stream.drain()
            stream.write(b"[eof]")
            await stream.drain()

        return HijackResponse(run, "application/vnd.docker.raw-stream", {"X-Extra": "1"})

    async def ws_echo(req: Request):
        async def run(ws: WebSocket) -> None:
            while (msg := await ws.receive()) is not None:
                await ws.send(b"echo:" + msg)

        return WebSocketResponse(run)

    r.add("POST", "/echo/{id}", echo)
    r.add("GET", "/containers/{id}/json", echo)
    r.add("POST", "/upload", upload)
    r.add("GET", "/forever", forever)
    r.add("POST", "/upload-stream", upload_then_stream)
    r.add("POST", "/hijack", hijack)
    r.add("POST", "/work", work)
    r.add("GET", "/ws", ws_echo)
    r.add("GET", "/_ping", ping)
    return r


async def ping(req: Request):
    return json_response("OK")


@dataclass
class Server:
    path: str
    app: App
    loop: asyncio.AbstractEventLoop
    seen: Seen

    @property
    def limits(self):  # type: ignore[no-untyped-def]
        return self.app.server.limits

    def connect(self, timeout: float = 5) -> socket.socket:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(timeout)
        s.connect(self.path)
        return s

    def exchange(self, raw: bytes, timeout: float = 5) -> bytes:
        """Send `raw`, then read until the server closes."""
        with self.connect(timeout) as s:
            s.sendall(raw)
            return read_to_eof(s, timeout)

    def ping(self) -> bytes:
        return self.exchange(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")

    def connections(self) -> int:
        return self.app.server.connection_count


def read_to_eof(s: socket.socket, timeout: float = 5) -> bytes:
    s.settimeout(timeout)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = s.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return out    # closed with our bytes unread: the kernel says reset
        if not data:
            return out
        out += data
    raise AssertionError(f"server did not close the connection; got {out[:300]!r}")


def read_until(s: socket.socket, marker: bytes, timeout: float = 5) -> bytes:
    s.settimeout(timeout)
    out = b""
    while marker not in out:
        data = s.recv(65536)
        if not data:
            raise AssertionError(f"EOF before {marker!r}; got {out[:300]!r}")
        out += data
    return out


def status_of(resp: bytes) -> int:
    return int(resp.split(b" ", 2)[1])


def body_of(resp: bytes) -> bytes:
    return resp.split(b"\r\n\r\n", 1)[1]


def message_of(resp: bytes) -> str:
    return json.loads(body_of(resp))["message"]


async def _shut_down(app: App) -> None:
    await app.close()
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in others:
        t.cancel()
    await asyncio.gather(*others, return_exceptions=True)


@contextmanager
def running_server(tmp_path: Path) -> Iterator[Server]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    seen = Seen()
    app = App(make_router(seen))
    path = str(tmp_path / "s.sock")
    asyncio.run_coroutine_threadsafe(app.listen_unix(path, group=None), loop).result(5)
    try:
        yield Server(path, app, loop, seen)
    finally:
        asyncio.run_coroutine_threadsafe(_shut_down(app), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
