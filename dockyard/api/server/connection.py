"""The connection loop: a client socket's bytes through h11 to the dispatcher
and back, with the limits that keep the daemon safe from its clients.

One h11 connection object serves one request: it parses the head and the
body and frames the response; what it holds after the request (the next
pipelined request, or stdin sent ahead of a hijack) is taken back through
its `trailing_data` and handed to the next request or to the hijacked
stream.  The bytes we read ourselves wait in `_pending` until then.  The
data of a chunked body is the exception: `framing.ChunkedDecoder` takes it
from the socket's reads itself, and h11 gets the body from the last chunk
(or the first unusual size line) on.

Limits (all in `Limits`, so tests can shrink them): the head size (431
beyond it), the time a head may take once it has started (408), the time
a connection may sit idle between requests, the number of connections
(the longest idle one makes room for a new one), how much a client may
send ahead while a response streams, and what an unread request body may
cost before the connection is closed instead of drained.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

import h11

from dockyard.api.server.deadline import ReadDeadline
from dockyard.api.server.framing import (
    HEAD_END,
    BadRequest,
    ChunkedDecoder,
    ChunkedGuard,
    check_head,
    check_request,
    is_chunked,
)
from dockyard.api.server.hijack import HijackedStream
from dockyard.api.server.request import Body, ClientGone, Request
from dockyard.api.server.responses import (
    Response,
    empty_response,
    error_head_and_body,
    error_response,
    raw_head,
    reason_phrase,
    whole_response,
)
from dockyard.errors import DockyardError, InvalidParameter, NotModified

log = logging.getLogger("dockyard.http")

READ_SIZE = 256 * 1024
# a request body's reads: whatever the socket has, up to this
BODY_READ_SIZE = 1024 * 1024
# StreamReader's flow-control mark: it stops reading the socket at twice this
STREAM_LIMIT = 256 * 1024


def default_max_connections() -> int:
    """1000, or half the file descriptors the process may open if that is less
    (the rest are for containers' monitors, logs and attach sockets)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1000
    return max(16, min(1000, soft // 2))


# the client's states once its request body has ended: a client that said
# `Connection: close` is MUST_CLOSE (or CLOSED) rather than DONE
_BODY_READ = (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.MIGHT_SWITCH_PROTOCOL,
              h11.SWITCHED_PROTOCOL)


@dataclass
class Limits:
    max_head: int = 64 * 1024               # request line + headers; 431 beyond
    head_timeout: float = 30.0              # from a head's first byte to its end; 408
    idle_timeout: float = 300.0             # between requests on a kept-alive connection
    max_connections: int = field(default_factory=default_max_connections)
    max_trailer: int = 16 * 1024            # a chunked body's trailer section
    pipeline_buffer: int = 64 * 1024        # read ahead while a response streams
    discard_body: int = 1024 * 1024         # unread body dropped to keep the connection
    websocket_max_message: int = 1024 * 1024
    tls_handshake_timeout: float = 10.0     # from a TLS client's connect to a finished handshake
    max_tls_handshakes: int = 256           # handshakes under way on one listener


Dispatch = Callable[[Request], Awaitable[Response]]


class BodyError(InvalidParameter):
    """The client broke the request body's framing; the connection closes."""


def _shorten(text: str, limit: int = 200) -> str:
    # h11 quotes the offending line, which may be most of a 64 KiB head
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass(frozen=True)
class ParsedHead:
    """What h11 and our framing rules made of one request head without a
    body: the same bytes always parse to the same request."""

    method: str
    target: str
    path: str
    headers: dict[str, str]
    query: dict[str, list[str]]
    http_version: str
    raw_headers: list[tuple[bytes, bytes]]
    keep_alive: bool


# heads remembered per server: a client sends the same few again and again
# (`_ping` before every CLI command, a poll of one container's state)
HEAD_CACHE_ENTRIES = 512
HEAD_CACHE_MAX_BYTES = 2048


class HttpServer:
    """Accepts connections (asyncio's client callback) and keeps their count."""

    def __init__(self, dispatch: Dispatch, default_headers: dict[str, str] | None = None,
                 limits: Limits | None = None) -> None:
        self.dispatch = dispatch
        self.default_headers = dict(default_headers or {})
        self.limits = limits or Limits()
        self._connections: set[HttpConnection] = set()
        self.heads: dict[bytes, ParsedHead] = {}

    def remember_head(self, head: bytes, parsed: ParsedHead) -> None:
        if len(head) > HEAD_CACHE_MAX_BYTES:
            return
        if len(self.heads) >= HEAD_CACHE_ENTRIES:
            self.heads.clear()
        self.heads[head] = parsed

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= self.limits.max_connections and not self._evict_idle():
            await self._refuse(writer)
            return
        conn = HttpConnection(self, reader, writer)
        self._connections.add(conn)
        try:
            await conn.run()
        finally:
            self._connections.discard(conn)

    def _evict_idle(self) -> bool:
        """Close the connection that has waited longest for a request."""
        idle = [c for c in self._connections if c.idle_since is not None]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c.idle_since or 0.0)
        self._connections.discard(oldest)
        oldest.close()
        return True

    async def _refuse(self, writer: asyncio.StreamWriter) -> None:
        log.warning("refusing a connection: %d connections are busy", len(self._connections))
        writer.write(error_head_and_body(503, "too many connections", self.default_headers))
        with contextlib.suppress(ConnectionError, OSError):
            await writer.drain()
        writer.close()


class HttpConnection:
    """One client connection, one request at a time (pipelined ones wait)."""

    def __init__(self, server: HttpServer, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.limits = server.limits
        self._reader = reader
        self._writer = writer
        self._pending = bytearray()       # read from the socket, not yet given to h11
        self._deadline = ReadDeadline()
        self._eof = False
        self.idle_since: float | None = None
        # the request being served; None while a remembered head's request
        # needs no h11 (see _conn)
        self._h11: h11.Connection | None = h11.Connection(h11.SERVER)
        self._head = b""
        self._body_read = False
        self._keep_alive = True
        self._guard: ChunkedGuard | None = None
        self._chunks: ChunkedDecoder | None = None
        self._method = "GET"
        self._status = 200
        self._head_sent = False
        self._framed_here = False         # the response was framed without h11
        self._broken = False

    @property
    def websocket_max_message(self) -> int:
        return self.limits.websocket_max_message

    def close(self) -> None:
        self.idle_since = None
        self._deadline.close()
        with contextlib.suppress(Exception):
            self._writer.close()

    async def run(self) -> None:
        try:
            while await self._serve_one():
                pass
        except (ConnectionError, OSError):
            pass
        except Exception:
            log.exception("connection failed")
        finally:
            self.close()

    # ------------------------------------------------------------ one request
    async def _serve_one(self) -> bool:
        try:
            head = await self._read_head()
            if head is None:
                return False
            req = self._parse(head)
        except BadRequest as e:
            log.debug("bad request: %s", e.message)
            await self._write_error(e.status, e.message)
            return False
        try:
            resp = await self.server.dispatch(req)
        except ClientGone:
            return False
        except NotModified:
            resp = empty_response(304)
        except DockyardError as e:
            resp = error_response(e.status, e.message)
        try:
            keep = await resp.send(self, req)
        except BodyError as e:
            if not self._head_sent:
                await self._write_error(400, e.message)
            return False
        return keep and await self._next_cycle()

    async def _read_head(self) -> bytes | None:
        """The next request head, None when the client is done or idled out."""
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        scanned = 0
        while True:
            # RFC 9112 2.2: empty lines before a request line are ignored
            while self._pending.startswith((b"\r\n", b"\n")):
                del self._pending[:2 if self._pending[0] == 0x0D else 1]
                scanned = 0
            m = HEAD_END.search(self._pending, max(0, scanned - 3))
            scanned = m.end() if m else len(self._pending)
            if scanned > self.limits.max_head:
                raise BadRequest("request header too large", 431)
            if m:
                head = bytes(self._pending[:scanned])
                del self._pending[:scanned]
                self.idle_since = None
                return head
            if self._eof:
                if self._pending:
                    raise BadRequest("malformed request: incomplete request head")
                return None
            if not self._pending:
                if self.idle_since is None:
                    self.idle_since = loop.time()
                timeout = self.idle_since + self.limits.idle_timeout - loop.time()
            else:
                self.idle_since = None
                if deadline is None:
                    deadline = loop.time() + self.limits.head_timeout
                timeout = deadline - loop.time()
            try:
                await self._read_more(max(timeout, 0.0))
            except TimeoutError:
                if self._pending:
                    raise BadRequest("timed out reading the request head", 408) from None
                return None

    def _parse(self, head: bytes) -> Request:
        parsed = self.server.heads.get(head)
        if parsed is None:
            parsed = self._parse_new(head)
        else:
            self._h11 = None            # made from the head if it is needed after all
            self._guard = None
            self._chunks = None
        self._head = head
        self._body_read = False
        self._keep_alive = parsed.keep_alive
        self._method = parsed.method
        self._status = 200
        self._head_sent = False
        self._framed_here = False
        self._broken = False
        return Request(
            method=parsed.method, target=parsed.target, path=parsed.path,
            headers=dict(parsed.headers),
            query={k: list(v) for k, v in parsed.query.items()},
            body=Body(self._receive_body), http_version=parsed.http_version,
            raw_headers=list(parsed.raw_headers), watch_client=self.watch_client,
        )

    def _parse_new(self, head: bytes) -> ParsedHead:
        check_head(head)
        h = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_head)
        h.receive_data(head)
        try:
            ev = h.next_event()
        except h11.RemoteProtocolError as e:
            raise BadRequest(f"malformed request: {_shorten(str(e))}",
                             431 if e.error_status_hint == 431 else 400) from None
        if not isinstance(ev, h11.Request):
            raise BadRequest("malformed request")
        check_request(ev)
        self._h11 = h
        chunked = is_chunked(ev)
        self._guard = ChunkedGuard(self.limits.max_trailer) if chunked else None
        # (a client waiting for 100 Continue gets it from h11's side)
        self._chunks = (ChunkedDecoder() if chunked and not h.they_are_waiting_for_100_continue
                        else None)
        target = ev.target.decode("ascii")
        parts = urlsplit(target)
        headers: dict[str, str] = {}
        for name, value in ev.headers:
            k, v = name.decode("latin-1"), value.decode("latin-1")
            headers[k] = f"{headers[k]}, {v}" if k in headers else v
        parsed = ParsedHead(
            method=ev.method.decode("ascii").upper(), target=target,
            path=unquote(parts.path) or "/", headers=headers,
            query=parse_qs(parts.query, keep_blank_values=True),
            http_version=ev.http_version.decode("ascii"), raw_headers=list(ev.headers),
            keep_alive=bool(h._cstate.keep_alive))
        if not chunked and "content-length" not in headers:
            self.server.remember_head(head, parsed)
        return parsed

    @property
    def _conn(self) -> h11.Connection:
        """h11's view of the request: for a remembered head, made now from
        the same bytes, as the request's first parse left it."""
        if self._h11 is None:
            h = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_head)
            h.receive_data(self._head)
            h.next_event()                 # the Request
            if self._body_read:
                h.next_event()             # its (empty) body's end, as read before
            self._h11 = h
        return self._h11

    async def _next_cycle(self) -> bool:
        """After a response: whether the connection can take another request."""
        if self._h11 is None:
            # a remembered head (no body) answered by send_whole: nothing
            # read past the head, and h11 would be DONE on both sides
            return self._framed_here and not self._broken
        h = self._h11
        if self._broken or (h.our_state is not h11.DONE and not self._framed_here):
            return False
        if h.their_state is h11.SEND_BODY:
            # the handler left (part of) the body: drop a little, else close
            dropped = 0
            try:
                while dropped <= self.limits.discard_body:
                    data = await self._receive_body()
                    if not data:
                        break
                    dropped += len(data)
            except BodyError:
                return False
            if h.their_state is not h11.DONE:
                return False
        if h.their_state is not h11.DONE:
            return False
        ahead, _closed = h.trailing_data
        self._pending[:0] = ahead
        return True

    # ------------------------------------------------------------ input
    async def _read_more(self, timeout: float | None) -> None:
        try:
            if timeout is None:
                data = await self._reader.read(READ_SIZE)
            else:
                data = await self._deadline.read(self._reader, READ_SIZE, timeout)
        except TimeoutError:
            raise
        except (ConnectionError, OSError):
            data = b""
        if data:
            self._pending += data
        else:
            self._eof = True

    async def _receive_body(self) -> bytes:
        """The next piece of the request body, b"" at its end."""
        if self._h11 is None:
            self._body_read = True         # a remembered head has no body
            return b""
        if self._chunks is not None and not self._chunks.handed_over:
            return await self._receive_chunks(self._chunks)
        h = self._h11
        while True:
            if h.their_state in _BODY_READ:
                return b""       # read to its end already (h11 would wait for more)
            try:
                ev = h.next_event()
            except h11.RemoteProtocolError as e:
                self._broken = True
                raise BodyError(f"malformed request body: {_shorten(str(e))}") from None
            if isinstance(ev, h11.Data):
                return bytes(ev.data)
            if isinstance(ev, h11.EndOfMessage) or ev is h11.PAUSED:
                return b""
            if ev is not h11.NEED_DATA:
                self._broken = True
                raise BodyError("malformed request body")
            if h.they_are_waiting_for_100_continue:
                self._writer.write(h.send(h11.InformationalResponse(
                    status_code=100, headers=[], reason=b"Continue")) or b"")
            await self._feed_body()

    async def _receive_chunks(self, dec: ChunkedDecoder) -> bytes:
        """The next piece of a chunked body, decoded here from large reads
        (see ChunkedDecoder) until it hands the body's rest to h11: one
        piece per read rather than one per chunk."""
        buf = bytes(self._pending)
        self._pending.clear()
        while True:
            pieces: list[memoryview] = []
            try:
                used = dec.decode(buf, pieces)
            except BadRequest as e:
                self._broken = True
                raise BodyError(e.message) from None
            rest = buf[used:]
            if pieces or dec.handed_over:
                self._pending += rest
                if not pieces:
                    return await self._receive_body()
                if len(pieces) == 1 and len(pieces[0]) == len(buf):
                    return buf
                return b"".join(pieces)
            data = await self._read_body_bytes()
            if not data:
                self._broken = True
                raise BodyError("malformed request body: peer closed connection without "
                                "sending complete message body (incomplete chunked read)")
            buf = rest + data if rest else data

    async def _read_body_bytes(self) -> bytes:
        """What the socket has of a request body, up to BODY_READ_SIZE; b"" at its end."""
        if not self._eof:
            try:
                data = await self._reader.read(BODY_READ_SIZE)
            except (ConnectionError, OSError):
                data = b""
            if data:
                return data
            self._eof = True
        return b""

    async def _feed_body(self) -> None:
        if self._pending:
            data = bytes(self._pending)
            self._pending.clear()
        else:
            data = await self._read_body_bytes()
        if data:
            if self._guard is not None and not self._guard.done:
                try:
                    self._guard.feed(data)
                except BadRequest as e:
                    self._broken = True
                    raise BodyError(e.message) from None
            self._conn.receive_data(data)
        else:
            self._conn.receive_data(b"")

    # ------------------------------------------------------------ the Channel responses use
    async def finish_request_body(self) -> None:
        while await self._receive_body():
            pass

    async def send_head(self, status: int, headers: dict[str, str]) -> None:
        h = {**self.server.default_headers, **headers}
        if self._broken:
            h["Connection"] = "close"
        self._status = status
        self._writer.write(self._conn.send(h11.Response(
            status_code=status, headers=list(h.items()), reason=reason_phrase(status))) or b"")
        self._head_sent = True

    async def send_whole(self, status: int, headers: dict[str, str], body: bytes) -> None:
        """A response whose body is all here: head, body and end in one write."""
        h = {**self.server.default_headers, **headers}
        if self._broken:
            h["Connection"] = "close"
        self._status = status
        sized = status in (204, 304) or any(k.lower() == "content-length" for k in h)
        if not sized or (self._h11 is not None and self._h11.our_state is not h11.SEND_RESPONSE):
            # no length given (h11 chooses chunks or close) or an unusual state
            parts = [self._conn.send(h11.Response(
                status_code=status, headers=list(h.items()), reason=reason_phrase(status))) or b""]
            self._head_sent = True
            if body and self._method != "HEAD" and status not in (204, 304):
                parts += self._conn.send_with_data_passthrough(h11.Data(data=body)) or []
            parts.append(self._conn.send(h11.EndOfMessage()) or b"")
            self._writer.write(b"".join(parts))
        else:
            # the common answer, framed here as h11 would (tests compare the
            # bytes); h11 keeps reading the client's side of the connection
            keep = self._h11_keeps_alive()
            self._writer.write(whole_response(
                status, h, b"" if self._method == "HEAD" else body, keep_alive=keep))
            self._head_sent = True
            # a response that says close ends the connection, as through h11
            self._framed_here = keep and not any(
                k.lower() == "connection" and "close" in v.lower() for k, v in h.items())
        await self._writer.drain()

    def _h11_keeps_alive(self) -> bool:
        # h11 keeps a connection only for an HTTP/1.1 request without
        # `Connection: close`; it has read that request already
        return self._keep_alive

    async def send_data(self, data: bytes) -> None:
        if self._method == "HEAD" or self._status in (204, 304) or not data:
            return
        pieces = self._conn.send_with_data_passthrough(h11.Data(data=data)) or []
        if len(data) <= 65536:
            # one send(2) for the chunk's size line, data and CRLF (an event,
            # a log line), not three; a big chunk is not copied for that
            pieces = [b"".join(pieces)]
        for piece in pieces:
            self._writer.write(piece)
        await self._writer.drain()

    async def end(self) -> None:
        self._writer.write(self._conn.send(h11.EndOfMessage()) or b"")
        await self._writer.drain()

    @contextlib.asynccontextmanager
    async def watch_client(self) -> AsyncIterator[asyncio.Event]:
        """Notice a client that leaves while a response streams.

        What it sends meanwhile (its next pipelined request) is kept for
        later, up to `pipeline_buffer`; beyond that reading stops until the
        response is done."""
        gone = asyncio.Event()

        async def watch() -> None:
            while not self._eof and len(self._pending) < self.limits.pipeline_buffer:
                await self._read_more(None)
            if self._eof:
                gone.set()

        task = asyncio.create_task(watch())
        try:
            yield gone
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def hijack_upgrade(self, headers: dict[str, str]) -> HijackedStream:
        try:
            head = self._conn.send(h11.InformationalResponse(
                status_code=101, headers=list(headers.items()), reason=b"UPGRADED")) or b""
        except h11.LocalProtocolError:
            # h11 switches only on a request that proposed it; write it ourselves
            head = raw_head(101, "UPGRADED", headers)
        return await self.hijack_raw(head)

    async def hijack_raw(self, head: bytes) -> HijackedStream:
        self._head_sent = True
        self._writer.write(head)
        await self._writer.drain()
        ahead, _closed = self._conn.trailing_data
        early = ahead + bytes(self._pending)
        self._pending.clear()
        return HijackedStream(self._reader, self._writer, early, self._eof)

    async def _write_error(self, status: int, message: str) -> None:
        self._writer.write(error_head_and_body(status, message, self.server.default_headers))
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.drain()
