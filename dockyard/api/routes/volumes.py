"""Volume routes (moby's volume router): parse, call the volume backend, shape."""

from __future__ import annotations

from dockyard.api.server import Request, Response, Router, empty_response, json_response
from dockyard.backend import VolumeBackend


class VolumeRoutes:
    def __init__(self, backend: VolumeBackend) -> None:
        self.backend = backend

    def register(self, r: Router) -> None:
        r.add("GET", "/volumes", self.list_volumes)
        r.add("POST", "/volumes/create", self.create)
        r.add("POST", "/volumes/prune", self.prune)
        r.add("GET", "/volumes/{name}", self.inspect)
        r.add("DELETE", "/volumes/{name}", self.remove)

    async def list_volumes(self, req: Request) -> Response:
        return json_response(self.backend.list_volumes(req.filters()))

    async def create(self, req: Request) -> Response:
        return json_response(await self.backend.create(await req.json()), 201)

    async def inspect(self, req: Request) -> Response:
        return json_response(self.backend.inspect(req.params["name"]))

    async def remove(self, req: Request) -> Response:
        await self.backend.remove(req.params["name"], req.query_bool("force"))
        return empty_response(204)

    async def prune(self, req: Request) -> Response:
        return json_response(await self.backend.prune(req.filters(), req.api_version))
