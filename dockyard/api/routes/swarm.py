"""Swarm mode's routes, answered as a Docker Engine that is not in a swarm.

dockyard runs no swarm: every swarm, node, service, task, secret and config
request gets the answer a standalone dockerd gives (503, "not a swarm
manager"), so clients that probe or clean up swarm state (docker-py's test
teardown leaves the swarm with force) behave as against a standalone
engine; joining or making a swarm is refused as not supported.
"""

from __future__ import annotations

from dockyard.api.server import Request, Response, Router
from dockyard.errors import NotImplementedByEngine, Unavailable

NOT_A_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or '
                 '"docker swarm join" to connect this node to swarm and try again.')
NOT_IN_A_SWARM = "This node is not part of a swarm"
NO_SWARM_MODE = "swarm mode is not supported by dockyard"

_AREAS = ("nodes", "services", "tasks", "secrets", "configs")


class SwarmRoutes:
    def register(self, r: Router) -> None:
        for method, path in (("GET", "/swarm"), ("POST", "/swarm/update"),
                             ("GET", "/swarm/unlockkey"), ("POST", "/swarm/unlock")):
            r.add(method, path, self.not_a_manager)
        r.add("POST", "/swarm/leave", self.leave)
        r.add("POST", "/swarm/init", self.unsupported)
        r.add("POST", "/swarm/join", self.unsupported)
        for area in _AREAS:
            for method in ("GET", "POST", "DELETE"):
                r.add(method, f"/{area}", self.not_a_manager)
                r.add(method, f"/{area}/{{rest:.+}}", self.not_a_manager)

    async def not_a_manager(self, req: Request) -> Response:
        raise Unavailable(NOT_A_MANAGER)

    async def leave(self, req: Request) -> Response:
        raise Unavailable(NOT_IN_A_SWARM)

    async def unsupported(self, req: Request) -> Response:
        raise NotImplementedByEngine(NO_SWARM_MODE)
