"""Routes for operating running containers: stats, top, update."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from dockyard.api.server import (
    BytesResponse,
    Request,
    Response,
    Router,
    json_response,
    stream_response,
)
from dockyard.api.streams import json_line
from dockyard.backend import ContainerBackend, StatsOptions


class ContainerOpsRoutes:
    def __init__(self, backend: ContainerBackend) -> None:
        self.backend = backend

    def register(self, r: Router) -> None:
        r.add("GET", "/containers/{id}/stats", self.stats)
        r.add("GET", "/containers/{id}/top", self.top)
        r.add("POST", "/containers/{id}/update", self.update)

    async def stats(self, req: Request) -> Response:
        stream = req.query_bool("stream", True)
        # one-shot exists since API 1.41; older clients always get two samples
        one_shot = req.query_bool("one-shot") if req.api_version >= (1, 41) else False
        # Looked up before any byte is sent so an unknown container is a 404.
        objects = await self.backend.stats(req.params["id"],
                                           StatsOptions(stream=stream, one_shot=one_shot))
        if not stream:
            # dockerd answers a plain (non-chunked) JSON body here
            first: dict[str, Any] | None = None
            async for obj in objects:
                first = obj
                break
            await objects.aclose()
            return BytesResponse(json_line(first or {}), 200, "application/json")

        async def gen() -> AsyncIterator[bytes]:
            async for obj in objects:
                yield json_line(obj)

        return stream_response(gen(), "application/json")

    async def top(self, req: Request) -> Response:
        return json_response(await self.backend.top(req.params["id"], req.query_get("ps_args")))

    async def update(self, req: Request) -> Response:
        body = await req.json()
        warnings = await self.backend.update(req.params["id"], body, req.api_version)
        return json_response({"Warnings": warnings or []})
