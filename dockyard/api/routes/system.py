"""System routes: ping, version, info, events."""

from __future__ import annotations

from collections.abc import AsyncIterator

from dockyard.api.params import event_time
from dockyard.api.server import (
    BytesResponse,
    Request,
    Response,
    Router,
    json_response,
    stream_response,
)
from dockyard.api.streams import json_line
from dockyard.backend import DiskUsageOptions, EventsOptions, SystemBackend
from dockyard.errors import InvalidParameter

_PING_HEADERS = {
    "Builder-Version": "1",
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
    "Swarm": "inactive",
}


class SystemRoutes:
    def __init__(self, backend: SystemBackend) -> None:
        self.backend = backend

    def register(self, r: Router) -> None:
        r.add("GET", "/_ping", self.ping)
        r.add("GET", "/version", self.version)
        r.add("GET", "/info", self.info)
        r.add("GET", "/events", self.events)
        r.add("GET", "/system/df", self.disk_usage)

    async def ping(self, req: Request) -> Response:
        if req.method == "HEAD":
            return BytesResponse(b"", 200, "text/plain; charset=utf-8",
                                 {**_PING_HEADERS, "Content-Length": "0"})
        return BytesResponse(b"OK", 200, "text/plain; charset=utf-8", _PING_HEADERS)

    async def version(self, req: Request) -> Response:
        return json_response(self.backend.version())

    async def info(self, req: Request) -> Response:
        return json_response(self.backend.info())

    async def disk_usage(self, req: Request) -> Response:
        types = req.query_all("type")
        opts = DiskUsageOptions()
        if types and req.api_version >= (1, 42):
            known = ("container", "image", "volume", "build-cache")
            for t in types:
                if t not in known:
                    raise InvalidParameter(f"unknown object type: {t}")
            opts = DiskUsageOptions(containers="container" in types, images="image" in types,
                                    volumes="volume" in types,
                                    build_cache="build-cache" in types)
        return json_response(await self.backend.disk_usage(opts))

    async def events(self, req: Request) -> Response:
        since = event_time(req.query_get("since"))
        until = event_time(req.query_get("until"))
        if since is not None and until is not None and since > until:
            raise InvalidParameter("`since` time must be before `until` time")
        events = self.backend.events(EventsOptions(since, until, req.filters()))

        async def gen() -> AsyncIterator[bytes]:
            async for ev in events:
                yield json_line(ev)

        return stream_response(gen(), "application/json")
