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
from dockyard.engine import ops
from dockyard.engine.stats import encode, stats_service


async def stats(req: Request) -> Response:
    stream = req.query_bool("stream", True)
    # one-shot exists since API 1.41; older clients always get two samples
    one_shot = req.query_bool("one-shot") if req.api_version >= (1, 41) else False
    # Looked up before any byte is sent so an unknown container is a 404.
    objects = await stats_service(req.engine).stats(req.params["id"], stream=stream,
                                                    one_shot=one_shot)
    if not stream:
        # dockerd answers a plain (non-chunked) JSON body here
        first: dict[str, Any] | None = None
        async for obj in objects:
            first = obj
            break
        await objects.aclose()
        return BytesResponse(encode(first or {}), 200, "application/json")

    async def gen() -> AsyncIterator[bytes]:
        async for obj in objects:
            yield encode(obj)

    return stream_response(gen(), "application/json")


async def top(req: Request) -> Response:
    return json_response(await ops.top(req.engine, req.params["id"], req.query_get("ps_args")))


async def update(req: Request) -> Response:
    body = await req.json()
    warnings = await ops.update(req.engine, req.params["id"], body, req.api_version)
    return json_response({"Warnings": warnings or []})


def register(r: Router) -> None:
    r.add("GET", "/containers/{id}/stats", stats)
    r.add("GET", "/containers/{id}/top", top)
    r.add("POST", "/containers/{id}/update", update)
