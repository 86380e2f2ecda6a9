"""Network routes (moby's network router): parse, call the network backend, shape."""

from __future__ import annotations

from dockyard.api.server import Request, Response, Router, empty_response, json_response
from dockyard.backend import NetworkBackend


class NetworkRoutes:
    def __init__(self, backend: NetworkBackend) -> None:
        self.backend = backend

    def register(self, r: Router) -> None:
        r.add("GET", "/networks", self.list_networks)
        r.add("POST", "/networks/create", self.create)
        r.add("POST", "/networks/prune", self.prune)
        r.add("GET", "/networks/{id}", self.inspect)
        r.add("POST", "/networks/{id}/connect", self.connect)
        r.add("POST", "/networks/{id}/disconnect", self.disconnect)
        r.add("DELETE", "/networks/{id}", self.remove)

    async def list_networks(self, req: Request) -> Response:
        return json_response(self.backend.list_networks(req.filters()))

    async def create(self, req: Request) -> Response:
        res = await self.backend.create(await req.json())
        return json_response({"Id": res.id, "Warning": res.warning}, 201)

    async def inspect(self, req: Request) -> Response:
        return json_response(self.backend.inspect(req.params["id"],
                                                  req.query_get("scope") or ""))

    async def remove(self, req: Request) -> Response:
        await self.backend.remove(req.params["id"])
        return empty_response(204)

    async def prune(self, req: Request) -> Response:
        return json_response(await self.backend.prune(req.filters()))

    async def connect(self, req: Request) -> Response:
        await self.backend.connect(req.params["id"], await req.json())
        return empty_response(200)

    async def disconnect(self, req: Request) -> Response:
        await self.backend.disconnect(req.params["id"], await req.json())
        return empty_response(200)
