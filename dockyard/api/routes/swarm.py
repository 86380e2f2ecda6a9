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

# moby's swarm-mode routes, exactly (other methods and paths are 404s there too)
_MANAGER_ROUTES = (
    ("GET", "/swarm"), ("GET", "/swarm/unlockkey"), ("POST", "/swarm/update"),
    ("POST", "/swarm/unlock"),
    ("GET", "/services"), ("POST", "/services/create"), ("GET", "/services/{id}"),
    ("POST", "/services/{id}/update"), ("DELETE", "/services/{id}"),
    ("GET", "/services/{id}/logs"),
    ("GET", "/nodes"), ("GET", "/nodes/{id}"), ("DELETE", "/nodes/{id}"),
    ("POST", "/nodes/{id}/update"),
    ("GET", "/tasks"), ("GET", "/tasks/{id}"), ("GET", "/tasks/{id}/logs"),
    ("GET", "/secrets"), ("POST", "/secrets/create"), ("GET", "/secrets/{id}"),
    ("DELETE", "/secrets/{id}"), ("POST", "/secrets/{id}/update"),
    ("GET", "/configs"), ("POST", "/configs/create"), ("GET", "/configs/{id}"),
    ("DELETE", "/configs/{id}"), ("POST", "/configs/{id}/update"),
)


class SwarmRoutes:
    def register(self, r: Router) -> None:
        for method, path in _MANAGER_ROUTES:
            r.add(method, path, self.not_a_manager)
        r.add("POST", "/swarm/leave", self.leave)
        r.add("POST", "/swarm/init", self.unsupported)
        r.add("POST", "/swarm/join", self.unsupported)

    async def not_a_manager(self, req: Request) -> Response:
        raise Unavailable(NOT_A_MANAGER)

    async def leave(self, req: Request) -> Response:
        raise Unavailable(NOT_IN_A_SWARM)

    async def unsupported(self, req: Request) -> Response:
        raise NotImplementedByEngine(NO_SWARM_MODE)
