"""System routes: ping, version, info, events."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

from dockyard.api.server import (
    BytesResponse,
    Request,
    Response,
    Router,
    json_response,
    stream_response,
)
from dockyard.engine.events import validate_event_filters
from dockyard.errors import InvalidParameter

_PING_HEADERS = {
    "Builder-Version": "1",
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
    "Swarm": "inactive",
}


async def ping(req: Request) -> Response:
    if req.method == "HEAD":
        return BytesResponse(b"", 200, "text/plain; charset=utf-8",
                             {**_PING_HEADERS, "Content-Length": "0"})
    return BytesResponse(b"OK", 200, "text/plain; charset=utf-8", _PING_HEADERS)


async def version(req: Request) -> Response:
    return json_response(req.engine.version())


async def info(req: Request) -> Response:
    return json_response(req.engine.info())


def parse_event_time(value: str | None, now: float) -> int | None:
    """Docker's since/until: Unix seconds with optional fraction (the CLI
    turns durations and dates into that form before sending)."""
    if value is None or value == "":
        return None
    try:
        if "." in value:
            sec, frac = value.split(".", 1)
            return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])
        return int(value) * 1_000_000_000
    except ValueError:
        raise InvalidParameter(f"invalid timestamp: {value!r}") from None


async def events(req: Request) -> Response:
    filters = req.filters()
    validate_event_filters(filters)
    now = time.time()
    since = parse_event_time(req.query_get("since"), now)
    until = parse_event_time(req.query_get("until"), now)
    if since is not None and until is not None and since > until:
        raise InvalidParameter("`since` time must be before `until` time")

    async def gen() -> AsyncIterator[bytes]:
        async for ev in req.engine.events.stream(since, until, filters):
            yield (json.dumps(ev.to_json(), separators=(",", ":")) + "\n").encode()

    return stream_response(gen(), "application/json")


def register(r: Router) -> None:
    r.add("GET", "/_ping", ping)
    r.add("GET", "/version", version)
    r.add("GET", "/info", info)
    r.add("GET", "/events", events)
