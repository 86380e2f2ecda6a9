"""What handlers return, and how each kind goes out on the connection.

A response writes itself through a `Channel` (the connection's small
output interface: h11-framed head and body, a watch on the client while a
stream runs, and the hijack).  `send` returns whether the connection may
serve another request afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from http import HTTPStatus
from typing import Any, Protocol

import h11

from dockyard.api.server.hijack import HijackedStream
from dockyard.api.server.jsonbody import json_bytes
from dockyard.api.server.request import Request
from dockyard.api.server.websocket import HandshakeError, WebSocket, accept_handshake
from dockyard.errors import DockyardError


class Channel(Protocol):
    """The connection as a response sees it."""

    @property
    def websocket_max_message(self) -> int: ...

    async def finish_request_body(self) -> None:
        """Read and drop what the handler left of the request body."""
        ...

    async def send_head(self, status: int, headers: dict[str, str]) -> None: ...

    async def send_whole(self, status: int, headers: dict[str, str], body: bytes) -> None: ...

    async def send_data(self, data: bytes) -> None: ...

    async def end(self) -> None: ...

    def watch_client(self) -> AbstractAsyncContextManager[asyncio.Event]:
        """While entered, the event is set once the client has gone."""
        ...

    async def hijack_upgrade(self, headers: dict[str, str]) -> HijackedStream:
        """Answer `101 UPGRADED` with these headers and hand the connection over."""
        ...

    async def hijack_raw(self, head: bytes) -> HijackedStream:
        """Write `head` as it is and hand the connection over."""
        ...


class Response:
    status: int = 200
    headers: dict[str, str]

    async def send(self, ch: Channel, req: Request) -> bool:
        """Write the response; return False if the connection must close."""
        raise NotImplementedError


class BytesResponse(Response):
    def __init__(self, body: bytes, status: int = 200, content_type: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.body = body
        self.status = status
        self.headers = dict(headers or {})
        if content_type:
            self.headers["Content-Type"] = content_type

    async def send(self, ch: Channel, req: Request) -> bool:
        h = dict(self.headers)
        if self.status not in (204, 304):
            h.setdefault("Content-Length", str(len(self.body)))
        await ch.send_whole(self.status, h, self.body)
        return True


class StreamResponse(Response):
    """A chunked response fed by an async iterator; flushed chunk by chunk.

    The client closing the connection cancels the iterator (logs -f, events,
    stats and wait all rely on that to stop their work)."""

    def __init__(self, chunks: AsyncIterator[bytes], status: int = 200,
                 content_type: str = "application/json",
                 headers: dict[str, str] | None = None) -> None:
        self.chunks = chunks
        self.status = status
        self.headers = dict(headers or {})
        self.headers["Content-Type"] = content_type

    async def send(self, ch: Channel, req: Request) -> bool:
        await ch.finish_request_body()
        await ch.send_head(self.status, dict(self.headers))
        if req.method == "HEAD":
            # the head alone; a follow stream would never end
            aclose = getattr(self.chunks, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
            await ch.end()
            return True
        it = self.chunks.__aiter__()

        async def pump() -> None:
            async for chunk in it:
                if chunk:
                    await ch.send_data(chunk)

        try:
            async with ch.watch_client() as gone:
                # one task for the whole stream, not one per chunk: an event
                # stream with many subscribers sends many small chunks
                gone_wait = asyncio.ensure_future(gone.wait())
                pumping = asyncio.ensure_future(pump())
                try:
                    await asyncio.wait({pumping, gone_wait},
                                       return_when=asyncio.FIRST_COMPLETED)
                    if not pumping.done():
                        pumping.cancel()
                        # the client left: whatever the stream raises now is moot
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await pumping
                        return False
                    pumping.result()
                finally:
                    gone_wait.cancel()
                    pumping.cancel()
                await ch.end()
                return not gone.is_set()
        except ConnectionError:
            return False
        finally:
            aclose = getattr(it, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):  # closing a finished stream
                    await aclose()


HijackFn = Callable[[HijackedStream], Awaitable[None]]


class HijackResponse(Response):
    """Take over the connection for a raw stream (attach, exec start).

    With an `Upgrade` request header the answer is `101 UPGRADED`; without,
    Docker's fallback `200 OK` with the raw-stream media type, written as it
    is (the stream that follows is not chunked)."""

    def __init__(self, fn: HijackFn, content_type: str,
                 extra_headers: dict[str, str] | None = None) -> None:
        self.fn = fn
        self.content_type = content_type
        self.headers = dict(extra_headers or {})

    async def send(self, ch: Channel, req: Request) -> bool:
        await ch.finish_request_body()
        if req.wants_upgrade:
            h = {"Content-Type": self.content_type, "Connection": "Upgrade", "Upgrade": "tcp"}
            h.update(self.headers)
            stream = await ch.hijack_upgrade(h)
        else:
            h = {"Content-Type": "application/vnd.docker.raw-stream", **self.headers}
            stream = await ch.hijack_raw(raw_head(200, "OK", h))
        try:
            await self.fn(stream)
        finally:
            stream.close()
        return False


WebSocketFn = Callable[[WebSocket], Awaitable[None]]


class WebSocketResponse(Response):
    """Upgrade to a websocket (wsproto does the handshake) and hand it to `fn`.

    A request that is no proper websocket upgrade gets a 400."""

    def __init__(self, fn: WebSocketFn) -> None:
        self.fn = fn
        self.headers = {}

    async def send(self, ch: Channel, req: Request) -> bool:
        await ch.finish_request_body()
        try:
            proto, answer = accept_handshake(req.raw_headers, req.target)
        except HandshakeError as e:
            await error_response(400, f"bad websocket upgrade request: {e}").send(ch, req)
            return False
        ws = WebSocket(await ch.hijack_raw(answer), proto, ch.websocket_max_message)
        try:
            await self.fn(ws)
        finally:
            await ws.close()
        return False


def reason_phrase(status: int) -> bytes:
    return _PHRASES.get(status, b"Status")


_PHRASES = {s.value: s.phrase.encode() for s in HTTPStatus}


def whole_response(status: int, headers: dict[str, str], body: bytes, *,
                   keep_alive: bool) -> bytes:
    """A response with a known length, in the very bytes h11 writes for it
    (the unit tests compare the two): the headers in their order and, on a
    connection that ends, every `Connection` header taken out and its
    values, with `close` and without `keep-alive`, put back at the end one
    by one.  Header names and values come from our own code."""
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason_phrase(status))]
    tokens = {"close"}
    for k, v in headers.items():
        if not keep_alive and k.lower() == "connection":
            tokens.update(t.strip().lower() for t in v.split(","))
            continue
        lines.append(f"{k}: {v}\r\n".encode("latin-1"))
    if not keep_alive:
        tokens.discard("keep-alive")
        tokens.discard("")
        lines += [f"Connection: {t}\r\n".encode("latin-1") for t in sorted(tokens)]
    lines.append(b"\r\n")
    lines.append(body)
    return b"".join(lines)


def error_head_and_body(status: int, message: str, default_headers: dict[str, str]) -> bytes:
    """A complete `{"message": ...}` answer on a connection about to close."""
    body = (json.dumps({"message": message}) + "\n").encode()
    headers = {**default_headers, "Content-Type": "application/json",
               "Content-Length": str(len(body)), "Connection": "close"}
    h = h11.Connection(h11.SERVER)
    return b"".join([
        h.send(h11.Response(status_code=status, headers=list(headers.items()),
                            reason=reason_phrase(status))) or b"",
        h.send(h11.Data(data=body)) or b"",
        h.send(h11.EndOfMessage()) or b"",
    ])


def raw_head(status: int, reason: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}"]
    for k, v in headers.items():
        if any(c in k + v for c in "\r\n\0"):
            raise ValueError(f"bad header {k!r}")
        lines.append(f"{k}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return BytesResponse(json_bytes(obj), status, "application/json", headers)


def empty_response(status: int = 204, headers: dict[str, str] | None = None) -> Response:
    return BytesResponse(b"", status, None, headers)


def text_response(text: str, status: int = 200, content_type: str = "text/plain; charset=utf-8",
                  headers: dict[str, str] | None = None) -> Response:
    return BytesResponse(text.encode(), status, content_type, headers)


def stream_response(chunks: AsyncIterator[bytes], content_type: str = "application/octet-stream",
                    status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return StreamResponse(chunks, status, content_type, headers)


def json_stream_response(items: AsyncIterator[dict], status: int = 200) -> Response:
    """Docker's JSON progress stream; an error mid-stream becomes an error record."""

    async def gen() -> AsyncIterator[bytes]:
        try:
            async for item in items:
                yield json_bytes(item, b"\r\n")
        except DockyardError as e:
            yield (json.dumps({"errorDetail": {"message": e.message}, "error": e.message})
                   + "\r\n").encode()

    return StreamResponse(gen(), status, "application/json")


def error_response(status: int, message: str) -> Response:
    if status == 304:
        return empty_response(304)
    return json_response({"message": message}, status)
