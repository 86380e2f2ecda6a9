"""Swarm mode's routes (moby's swarm router): swarm, nodes, and the cluster
objects (services, tasks, secrets, configs), each answered by the swarm
backend.  A node in no swarm answers as a standalone dockerd (503, "not a
swarm manager"), which is what clients that probe or clean up swarm state
expect.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from dockyard.api.server import Request, Response, Router, empty_response, json_response
from dockyard.backend.swarm import SwarmBackend

Handler = Callable[[Request], Awaitable[Response]]


class SwarmRoutes:
    def __init__(self, backend: SwarmBackend) -> None:
        self.backend = backend

    def register(self, r: Router) -> None:
        r.add("POST", "/swarm/init", self.init)
        r.add("POST", "/swarm/join", self.join)
        r.add("POST", "/swarm/leave", self.leave)
        r.add("GET", "/swarm", self.inspect)
        r.add("POST", "/swarm/update", self.update)
        r.add("GET", "/swarm/unlockkey", self.unlock_key)
        r.add("POST", "/swarm/unlock", self.unlock)
        r.add("GET", "/nodes", self.nodes)
        r.add("GET", "/nodes/{id}", self.node)
        r.add("POST", "/nodes/{id}/update", self.update_node)
        r.add("DELETE", "/nodes/{id}", self.remove_node)
        for kind in ("services", "tasks", "secrets", "configs"):
            r.add("GET", f"/{kind}", self._list(kind))
            r.add("GET", f"/{kind}/{{id}}", self._inspect(kind))
            if kind in ("services", "tasks"):
                r.add("GET", f"/{kind}/{{id}}/logs", self._inspect(kind))
            if kind != "tasks":
                r.add("POST", f"/{kind}/create", self._create(kind))
                r.add("POST", f"/{kind}/{{id}}/update", self._update(kind))
                r.add("DELETE", f"/{kind}/{{id}}", self._remove(kind))

    # ------------------------------------------------------------ swarm
    async def init(self, req: Request) -> Response:
        return json_response(await self.backend.init(await req.json()))

    async def join(self, req: Request) -> Response:
        await self.backend.join(await req.json())
        return empty_response(200)

    async def leave(self, req: Request) -> Response:
        await self.backend.leave(req.query_bool("force"))
        return empty_response(200)

    async def inspect(self, req: Request) -> Response:
        return json_response(self.backend.inspect())

    async def update(self, req: Request) -> Response:
        await self.backend.update(
            await req.json(), req.query_get("version") or "",
            req.query_bool("rotateWorkerToken"), req.query_bool("rotateManagerToken"),
            req.query_bool("rotateManagerUnlockKey"))
        return empty_response(200)

    async def unlock_key(self, req: Request) -> Response:
        return json_response(self.backend.unlock_key())

    async def unlock(self, req: Request) -> Response:
        await self.backend.unlock(await req.json())
        return empty_response(200)

    # ------------------------------------------------------------ nodes
    async def nodes(self, req: Request) -> Response:
        return json_response(self.backend.nodes(req.filters()))

    async def node(self, req: Request) -> Response:
        return json_response(self.backend.node(req.params["id"]))

    async def update_node(self, req: Request) -> Response:
        await self.backend.update_node(req.params["id"], req.query_get("version") or "",
                                       await req.json())
        return empty_response(200)

    async def remove_node(self, req: Request) -> Response:
        await self.backend.remove_node(req.params["id"], req.query_bool("force"))
        return empty_response(200)

    # ------------------------------------------------------------ cluster objects
    def _list(self, kind: str) -> Handler:
        async def handler(req: Request) -> Response:
            return json_response(self.backend.objects(kind, req.filters()))
        return handler

    def _inspect(self, kind: str) -> Handler:
        async def handler(req: Request) -> Response:
            return json_response(self.backend.object(kind, req.params["id"]))
        return handler

    def _create(self, kind: str) -> Handler:
        async def handler(req: Request) -> Response:
            return json_response(await self.backend.create_object(kind, await req.json()),
                                 201)
        return handler

    def _update(self, kind: str) -> Handler:
        async def handler(req: Request) -> Response:
            await self.backend.update_object(kind, req.params["id"],
                                             req.query_get("version") or "", await req.json())
            return empty_response(200)
        return handler

    def _remove(self, kind: str) -> Handler:
        async def handler(req: Request) -> Response:
            await self.backend.remove_object(kind, req.params["id"])
            return empty_response(204)
        return handler
