"""A parsed request as route handlers see it: the head, Docker's query
conventions, and the body, streamed from the connection on demand; and
`cancel_on_disconnect`, for work that must stop when its client leaves."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, Self, TypeVar

from dockyard.errors import InvalidParameter

T = TypeVar("T")

# A body larger than this is not JSON any route expects; streamed bodies
# (load, import, cp) never go through read_all.
MAX_JSON_BODY = 64 * 1024 * 1024
# Go's decoder stops at 10000 levels; Python's recurses on the C stack and
# gives up near 1000, so the limit is lower here.  Docker's deepest request
# struct nests six levels, so no real client comes near it.
MAX_JSON_DEPTH = 512
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class JSONFloat(float):
    """A JSON number with a fraction or exponent, keeping its text: Go's
    decoder quotes the literal (`number 1e23`) when it does not fit a field."""

    text: str

    def __new__(cls, text: str) -> Self:
        obj = super().__new__(cls, text)
        obj.text = text
        return obj


def _no_constant(name: str) -> Any:
    # Python's NaN/Infinity extension is not JSON
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")


def _check_depth(text: str) -> None:
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    depths = accumulate(1 if b in "[{" else -1 for b in brackets)
    for i, depth in enumerate(depths):
        if depth > MAX_JSON_DEPTH:
            raise InvalidParameter(
                f"invalid JSON: invalid character '{brackets[i]}' exceeded max depth")


def decode_json(text: str) -> Any:
    """One JSON value and nothing after it, as Docker's API decodes bodies:
    nesting is bounded and only standard JSON is accepted."""
    _check_depth(text)
    try:
        obj, end = json.JSONDecoder(parse_float=JSONFloat,
                                    parse_constant=_no_constant).raw_decode(text)
    except RecursionError:
        raise InvalidParameter("invalid JSON: exceeded max depth") from None
    except ValueError as e:
        raise InvalidParameter(f"invalid JSON: {e}") from None
    if text[end:].strip():
        raise InvalidParameter("unexpected content after JSON")
    return obj


class Body:
    """The request body, pulled from the connection as the handler reads it.

    `receive` returns the next piece of the body, b"" once it is complete;
    it raises InvalidParameter when the client breaks the framing.  Nothing
    is buffered here: a `docker load` body flows through in pieces."""

    def __init__(self, receive: Callable[[], Awaitable[bytes]]) -> None:
        self._receive = receive
        self._done = False
        self._finished = asyncio.Event()

    @property
    def done(self) -> bool:
        return self._done

    async def wait_done(self) -> None:
        """Until the handler has read the body to its end."""
        await self._finished.wait()

    async def read_some(self) -> bytes:
        if self._done:
            return b""
        data = await self._receive()
        if not data:
            self._done = True
            self._finished.set()
        return data

    async def chunks(self) -> AsyncIterator[bytes]:
        while not self._done:
            data = await self.read_some()
            if data:
                yield data

    async def read_all(self, limit: int = MAX_JSON_BODY) -> bytes:
        buf = bytearray()
        async for c in self.chunks():
            buf += c
            if len(buf) > limit:
                raise InvalidParameter("request body too large")
        return bytes(buf)


def no_body() -> Body:
    async def empty() -> bytes:
        return b""

    return Body(empty)


@dataclass
class Request:
    method: str
    target: str
    path: str                                  # percent-decoded exactly once
    headers: dict[str, str]                    # lower-case names
    query: dict[str, list[str]]
    body: Body = field(default_factory=no_body)
    api_version: tuple[int, int] = (1, 51)
    params: dict[str, str] = field(default_factory=dict)
    http_version: str = "1.1"
    # the head's fields as received (names lower-case), for the websocket handshake
    raw_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    # the connection's watch for a departed client (once the body is read)
    watch_client: Callable[[], AbstractAsyncContextManager[asyncio.Event]] | None = None

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
        return parse_filters(self.query_get("filters"))

    async def json(self, *, allow_empty: bool = True) -> Any:
        data = await self.body.read_all()
        if not data.strip():
            if allow_empty:
                return None
            raise InvalidParameter("invalid JSON: empty body")
        # as Go's decoder: bytes that are not UTF-8 become U+FFFD in strings
        # (and are a syntax error anywhere else)
        return decode_json(data.decode("utf-8", errors="replace").lstrip())

    def body_chunks(self) -> AsyncIterator[bytes]:
        return self.body.chunks()

    @property
    def wants_upgrade(self) -> bool:
        """The client asked to take the connection over (attach, exec start).

        Like dockerd, only the `Upgrade` header counts, not `Connection`."""
        return bool(self.headers.get("upgrade", "").strip())


class ClientGone(Exception):
    """The client closed its connection before its answer: nothing is sent."""


async def cancel_on_disconnect(req: Request, work: Awaitable[T]) -> T:
    """Run `work`; a client that closes its connection once the request body
    has been read (it may still be waiting for the answer) cancels it, and
    ClientGone is raised here.  A client gone while its body is being read
    shows up as a body error to whatever reads it."""
    task = asyncio.ensure_future(work)
    watch = req.watch_client
    if watch is None:
        return await task
    left = False

    async def watcher() -> None:
        nonlocal left
        await req.body.wait_done()
        async with watch() as gone:
            await gone.wait()
        left = True
        task.cancel()

    w = asyncio.create_task(watcher())
    try:
        return await task
    except asyncio.CancelledError:
        if left and task.cancelled():
            current = asyncio.current_task()
            if current is None or not current.cancelling():
                raise ClientGone() from None
        raise
    finally:
        w.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await w


def parse_filters(raw: str | None) -> dict[str, list[str]]:
    """Docker's filters query: `{"k":{"v":true}}` or the older `{"k":["v"]}`.

    As dockerd's filters.FromJSON: anything else (bad JSON, another shape,
    a value of another type) is 400 "invalid filter", without the decoder's
    words; null is no filter, and a value mapped to false is still given."""
    if raw is None or raw.strip() == "":
        return {}
    try:
        obj = decode_json(raw.strip())
    except InvalidParameter:
        raise InvalidParameter("invalid filter") from None
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise InvalidParameter("invalid filter")
    # one shape for the whole object, as Go decodes it
    if all(v is None or (isinstance(v, dict) and all(
            x is None or isinstance(x, bool) for x in v.values())) for v in obj.values()):
        return {k: [str(x) for x in (v or {})] for k, v in obj.items()}
    if all(v is None or (isinstance(v, list) and all(isinstance(x, str) for x in v))
           for v in obj.values()):
        return {k: list(v or []) for k, v in obj.items()}
    raise InvalidParameter("invalid filter")
