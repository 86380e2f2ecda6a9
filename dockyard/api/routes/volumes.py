"""Volume routes (moby's volume router): parse, call the volume backend, shape."""

from __future__ import annotations

from dockyard.api.server import Request, Response, Router, empty_response, json_response
from dockyard.backend import VolumeBackend
from dockyard.errors import Unavailable


class VolumeRoutes:
    def __init__(self, backend: VolumeBackend) -> None:
        self.backend = backend

    def register(self, r: Router) -> None:
        r.add("GET", "/volumes", self.list_volumes)
        r.add("POST", "/volumes/create", self.create)
        r.add("POST", "/volumes/prune", self.prune)
        r.add("GET", "/volumes/{name}", self.inspect)
        r.add("DELETE", "/volumes/{name}", self.remove)
        r.add("PUT", "/volumes/{name}", self.update)

    async def list_volumes(self, req: Request) -> Response:
        return json_response(self.backend.list_volumes(req.filters()))

    async def create(self, req: Request) -> Response:
        return json_response(await self.backend.create(await req.json()), 201)

    async def inspect(self, req: Request) -> Response:
        return json_response(self.backend.inspect(req.params["name"]))

    async def remove(self, req: Request) -> Response:
        await self.backend.remove(req.params["name"], req.query_bool("force"))
        return empty_response(204)

    async def update(self, req: Request) -> Response:
        """Only cluster volumes are updated, and they need swarm mode (dockerd's
        answer on a node that is not a swarm manager)."""
        raise Unavailable("volume update only valid for cluster volumes, but swarm is "
                          "unavailable")

    async def prune(self, req: Request) -> Response:
        return json_response(await self.backend.prune(req.filters(), req.api_version))
