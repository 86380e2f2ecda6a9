"""Registry routes: `POST /auth` (docker login) and `GET /distribution/{name}/json`
(moby's system and distribution routers), over the images backend."""

from __future__ import annotations

from dockyard.api.server import Request, Response, Router, json_response
from dockyard.backend import ImageBackend
from dockyard.errors import InvalidParameter


class DistributionRoutes:
    def __init__(self, backend: ImageBackend) -> None:
        self.backend = backend

    def register(self, r: Router) -> None:
        r.add("POST", "/auth", self.auth)
        r.add("GET", "/distribution/{name:.+}/json", self.inspect)

    async def auth(self, req: Request) -> Response:
        body = await req.json()
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise InvalidParameter("json: cannot unmarshal array into Go value of type "
                                   "registry.AuthConfig" if isinstance(body, list) else
                                   "invalid JSON: the body must be an object")
        return json_response(await self.backend.login(body))

    async def inspect(self, req: Request) -> Response:
        return json_response(await self.backend.distribution_inspect(
            req.params["name"], req.headers.get("x-registry-auth", "")))
