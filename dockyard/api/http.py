"""A small HTTP/1.1 server over asyncio streams, shaped for the Docker API.

Why not a framework: Docker's attach and exec turn the HTTP connection into
a raw two-way byte stream (with half-close), long polls such as `wait` must
send their headers at once, and load/import bodies must be streamed.  Owning
the connection makes all three plain code instead of framework internals.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from dockyard.errors import DockyardError, InvalidParameter, NotModified

log = logging.getLogger("dockyard.http")

MAX_HEAD = 64 * 1024
REASONS = {
    100: "Continue", 101: "Switching Protocols", 200: "OK", 201: "Created",
    204: "No Content", 304: "Not Modified", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
    413: "Payload Too Large", 500: "Internal Server Error", 501: "Not Implemented",
    503: "Service Unavailable",
}

Handler = Callable[["Request"], Awaitable["Response"]]


class BodyReader:
    """The request body, read lazily from the connection (length or chunked)."""

    def __init__(self, reader: asyncio.StreamReader, length: int | None, chunked: bool) -> None:
        self._reader = reader
        self._remaining = length or 0
        self._chunked = chunked
        self._chunk_left = 0
        self._done = not chunked and not length

    @property
    def done(self) -> bool:
        return self._done

    async def read_some(self, n: int = 256 * 1024) -> bytes:
        if self._done:
            return b""
        if not self._chunked:
            data = await self._reader.read(min(n, self._remaining))
            if not data:
                raise InvalidParameter("unexpected EOF in request body")
            self._remaining -= len(data)
            if self._remaining <= 0:
                self._done = True
            return data
        if self._chunk_left == 0:
            line = await self._reader.readline()
            if not line:
                raise InvalidParameter("unexpected EOF in chunked request body")
            try:
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            except ValueError as e:
                raise InvalidParameter("malformed chunked request body") from e
            if size == 0:
                # trailers end with an empty line
                while True:
                    t = await self._reader.readline()
                    if t in (b"\r\n", b"\n", b""):
                        break
                self._done = True
                return b""
            self._chunk_left = size
        data = await self._reader.read(min(n, self._chunk_left))
        if not data:
            raise InvalidParameter("unexpected EOF in chunked request body")
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            await self._reader.readline()  # CRLF after the chunk
        return data

    async def chunks(self) -> AsyncIterator[bytes]:
        while not self._done:
            data = await self.read_some()
            if data:
                yield data

    async def read_all(self, limit: int = 64 * 1024 * 1024) -> bytes:
        buf = bytearray()
        async for c in self.chunks():
            buf += c
            if len(buf) > limit:
                raise InvalidParameter("request body too large")
        return bytes(buf)

    async def drain(self) -> None:
        async for _ in self.chunks():
            pass


@dataclass
class Request:
    method: str
    target: str
    path: str
    headers: dict[str, str]
    query: dict[str, list[str]]
    body: BodyReader
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    api_version: tuple[int, int] = (1, 51)
    params: dict[str, str] = field(default_factory=dict)
    engine: Any = None

    # --- query helpers (Docker's conventions) ---
    def query_get(self, name: str, default: str | None = None) -> str | None:
        v = self.query.get(name)
        return v[0] if v else default

    def query_all(self, name: str) -> list[str]:
        return list(self.query.get(name, []))

    def query_bool(self, name: str, default: bool = False) -> bool:
        v = self.query.get(name)
        if not v:
            return default
        s = v[0].strip().lower()
        return s not in ("", "0", "no", "false", "none")

    def query_int(self, name: str, default: int | None = None) -> int | None:
        v = self.query_get(name)
        if v is None or v == "":
            return default
        try:
            return int(v)
        except ValueError as e:
            raise InvalidParameter(f"invalid value for {name}: {v!r}") from e

    def filters(self) -> dict[str, list[str]]:
        raw = self.query_get("filters")
        return parse_filters(raw)

    async def json(self, *, allow_empty: bool = True) -> Any:
        data = await self.body.read_all()
        if not data.strip():
            if allow_empty:
                return None
            raise InvalidParameter("invalid JSON: empty body")
        try:
            obj, end = json.JSONDecoder().raw_decode(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidParameter(f"invalid JSON: {e}") from e
        if data.decode("utf-8")[end:].strip():
            raise InvalidParameter("unexpected content after JSON")
        return obj

    def body_chunks(self) -> AsyncIterator[bytes]:
        return self.body.chunks()

    @property
    def wants_upgrade(self) -> bool:
        return "upgrade" in self.headers.get("connection", "").lower() or "upgrade" in self.headers


def parse_filters(raw: str | None) -> dict[str, list[str]]:
    """Docker's filters query: `{"k":{"v":true}}` or the older `{"k":["v"]}`."""
    if raw is None or raw.strip() == "":
        return {}
    try:
        obj = json.loads(raw)
    except ValueError as e:
        raise InvalidParameter(f"invalid filter: {e}") from e
    if not isinstance(obj, dict):
        raise InvalidParameter("invalid filter: filters must be a JSON object")
    out: dict[str, list[str]] = {}
    for k, v in obj.items():
        if isinstance(v, dict):
            out[k] = [str(x) for x, on in v.items() if on]
        elif isinstance(v, list):
            out[k] = [str(x) for x in v]
        elif isinstance(v, str):
            out[k] = [v]
        else:
            raise InvalidParameter(f"invalid filter: bad value for '{k}'")
    return out


# --------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------

class Response:
    status: int = 200
    headers: dict[str, str]

    async def send(self, conn: Connection, req: Request) -> bool:
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

    async def send(self, conn: Connection, req: Request) -> bool:
        body = b"" if self.status in (204, 304) or req.method == "HEAD" else self.body
        h = dict(self.headers)
        if self.status not in (204, 304):
            h.setdefault("Content-Length", str(len(self.body)))
        conn.write_head(self.status, h)
        if body:
            conn.writer.write(body)
        await conn.writer.drain()
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

    async def send(self, conn: Connection, req: Request) -> bool:
        h = dict(self.headers)
        h["Transfer-Encoding"] = "chunked"
        conn.write_head(self.status, h)
        await conn.writer.drain()
        await req.body.drain()
        gone = asyncio.Event()
        watcher = asyncio.create_task(_watch_eof(req.reader, gone))
        it = self.chunks.__aiter__()
        try:
            while True:
                nxt = asyncio.ensure_future(it.__anext__())
                gone_wait = asyncio.ensure_future(gone.wait())
                done, _ = await asyncio.wait({nxt, gone_wait},
                                             return_when=asyncio.FIRST_COMPLETED)
                if nxt not in done:
                    nxt.cancel()
                    # the client left: whatever the stream raises now is moot
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration,
                                             Exception):
                        await nxt
                    return False
                gone_wait.cancel()
                try:
                    chunk = nxt.result()
                except StopAsyncIteration:
                    break
                if chunk:
                    conn.writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    await conn.writer.drain()
            conn.writer.write(b"0\r\n\r\n")
            await conn.writer.drain()
            return not gone.is_set()
        except (ConnectionError, asyncio.IncompleteReadError):
            return False
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
            aclose = getattr(it, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):  # closing a finished stream
                    await aclose()


async def _watch_eof(reader: asyncio.StreamReader, gone: asyncio.Event) -> None:
    """Mark the client gone when it closes its side during a streamed response.

    Waits without consuming: a keep-alive client may already be sending its
    next request, which must stay in the buffer for the connection loop."""
    try:
        if not reader._buffer and not reader.at_eof():
            await reader._wait_for_data("watch_eof")
    except (ConnectionError, RuntimeError):
        pass
    if reader.at_eof() or reader.exception() is not None:
        gone.set()


HijackFn = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class HijackResponse(Response):
    """Take over the connection for a raw stream (attach, exec start).

    With an `Upgrade` request header the answer is `101 UPGRADED`; without,
    Docker's fallback `200 OK` with the raw-stream media type."""

    def __init__(self, fn: HijackFn, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.fn = fn
        self.content_type = content_type
        self.headers = dict(extra or {})

    async def send(self, conn: Connection, req: Request) -> bool:
        await req.body.drain()
        if req.wants_upgrade:
            h = {"Content-Type": self.content_type, "Connection": "Upgrade", "Upgrade": "tcp"}
            h.update(self.headers)
            lines = ["HTTP/1.1 101 UPGRADED"] + [f"{k}: {v}" for k, v in h.items()]
        else:
            lines = ["HTTP/1.1 200 OK", "Content-Type: application/vnd.docker.raw-stream"]
            lines += [f"{k}: {v}" for k, v in self.headers.items()]
        conn.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await conn.writer.drain()
        await self.fn(req.reader, conn.writer)
        return False


class UpgradeResponse(Response):
    """Take over the connection after a status block of our own (websocket)."""

    def __init__(self, lines: list[str], fn: HijackFn) -> None:
        self.lines = lines
        self.fn = fn
        self.headers = {}

    async def send(self, conn: Connection, req: Request) -> bool:
        await req.body.drain()
        conn.writer.write(("\r\n".join(self.lines) + "\r\n\r\n").encode())
        await conn.writer.drain()
        await self.fn(req.reader, conn.writer)
        return False


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
    return BytesResponse(body, status, "application/json", headers)


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
                yield (json.dumps(item, separators=(",", ":")) + "\r\n").encode()
        except DockyardError as e:
            yield (json.dumps({"errorDetail": {"message": e.message}, "error": e.message})
                   + "\r\n").encode()

    return StreamResponse(gen(), status, "application/json")


def error_response(status: int, message: str) -> Response:
    if status == 304:
        return empty_response(304)
    return json_response({"message": message}, status)


# --------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------

_PARAM = re.compile(r"\{(\w+)(?::([^}]+))?\}")


class Router:
    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        def repl(m: re.Match[str]) -> str:
            return f"(?P<{m.group(1)}>{m.group(2) or '[^/]+'})"

        rx = re.compile("^" + _PARAM.sub(repl, pattern) + "/?$")
        self._routes.append((method.upper(), rx, handler))
        if method.upper() == "GET":
            self._routes.append(("HEAD", rx, handler))

    def match(self, method: str, path: str) -> tuple[Handler | None, dict[str, str], bool]:
        """Return (handler, params, path_known)."""
        known = False
        for m, rx, h in self._routes:
            mm = rx.match(path)
            if mm:
                known = True
                if m == method:
                    return h, {k: unquote(v) for k, v in mm.groupdict().items()}, True
        return None, {}, known


# --------------------------------------------------------------------------
# Connections
# --------------------------------------------------------------------------

class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.default_headers: dict[str, str] = {}

    def write_head(self, status: int, headers: dict[str, str]) -> None:
        h = dict(self.default_headers)
        h.update(headers)
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
        lines += [f"{k}: {v}" for k, v in h.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))


RequestHandler = Callable[[Request], Awaitable[Response]]


async def read_request(conn: Connection) -> Request | None:
    try:
        head = await conn.reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError:
        raise InvalidParameter("request header too large") from None
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, _ver = lines[0].split(" ", 2)
    except ValueError:
        raise InvalidParameter("malformed request line") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    length = None
    if not chunked and "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise InvalidParameter("bad Content-Length") from None
    parts = urlsplit(target)
    return Request(
        method=method.upper(), target=target, path=unquote(parts.path) or "/",
        headers=headers, query=parse_qs(parts.query, keep_blank_values=True),
        body=BodyReader(conn.reader, length, chunked), reader=conn.reader, writer=conn.writer,
    )


async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           dispatch: RequestHandler, default_headers: dict[str, str]) -> None:
    conn = Connection(reader, writer)
    conn.default_headers = default_headers
    try:
        while True:
            try:
                req = await read_request(conn)
            except DockyardError as e:
                conn.write_head(400, {"Content-Type": "application/json", "Connection": "close"})
                writer.write(json.dumps({"message": e.message}).encode())
                await writer.drain()
                return
            if req is None:
                return
            try:
                resp = await dispatch(req)
            except NotModified:
                resp = empty_response(304)
            except DockyardError as e:
                resp = error_response(e.status, e.message)
            keep = await resp.send(conn, req)
            if not keep or req.headers.get("connection", "").lower() == "close":
                return
            try:
                await req.body.drain()
            except DockyardError:
                return
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    except Exception:
        log.exception("connection failed")
    finally:
        with contextlib.suppress(Exception):
            writer.close()
