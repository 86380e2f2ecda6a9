"""`SwarmService`: swarm mode as a one-node swarm that serves networks.

`docker swarm init` makes this engine the manager (and leader) of a swarm
of one node, with Docker's `ingress` network; swarm-scoped networks (the
`overlay` driver, or `--scope swarm`) can then be made, and containers join
the attachable ones.  On one node an overlay network is a bridge on this
host: containers on it reach and resolve each other, nothing crosses to
another host.  What needs a second node or an orchestrator is refused with
501: joining, services (and so their tasks), secrets, configs, autolock, a
certificate authority.  `docker swarm leave --force` takes the swarm's
networks away (containers on them are disconnected, as dockerd does).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dockyard.backend.swarm import ALREADY_IN_A_SWARM, NOT_A_MANAGER, NOT_IN_A_SWARM
from dockyard.engine.containers.views import labels_match
from dockyard.engine.networks.service import NetworkService
from dockyard.engine.swarm.state import (
    SwarmState,
    check_node_spec,
    check_spec,
    new_join_token,
    new_state,
)
from dockyard.errors import (
    InvalidParameter,
    NotFound,
    NotImplementedByEngine,
    Unavailable,
)
from dockyard.network import links
from dockyard.network.ipam import Pool

log = logging.getLogger("dockyard.swarm")

NO_JOIN = ("joining a swarm is not supported by dockyard: its swarm mode is a swarm of "
           "one node")
NO_ORCHESTRATOR = ("{what} are not supported by dockyard: its swarm mode is one node that "
                   "serves swarm-scoped networks, with no orchestrator")
LEAVE_AS_MANAGER = ("You are attempting to leave the swarm on a node that is participating "
                    "as a manager. Removing the last manager erases all current state of the "
                    "swarm. Use `--force` to ignore this message. ")
KINDS = {"services": "service", "tasks": "task", "secrets": "secret", "configs": "config"}
NODE_FILTERS = {"id", "label", "membership", "name", "node.label", "role"}
OBJECT_FILTERS = {
    "services": {"id", "label", "mode", "name"},
    "tasks": {"desired-state", "id", "label", "name", "node", "service"},
    "secrets": {"id", "label", "name", "names"},
    "configs": {"id", "label", "name", "names"},
}


class SwarmService:
    def __init__(self, data_root: Path, networks: NetworkService,
                 describe: Callable[[], dict[str, Any]]) -> None:
        self.dir = data_root / "swarm"
        self.networks = networks
        self.describe = describe         # the node's Description (hostname, resources)
        self.state: SwarmState | None = None
        self._lock = asyncio.Lock()
        networks.cluster_pools = self.pools

    def load(self) -> None:
        try:
            self.state = SwarmState.load(self.dir)
        except (OSError, ValueError, TypeError) as e:
            log.error("the swarm state is unreadable, this node is in no swarm: %s", e)
            self.state = None

    def pools(self) -> tuple[Pool, ...] | None:
        """The swarm's address pools while the node is in a swarm, else None."""
        return self.state.pools() if self.state is not None else None

    def _active(self) -> SwarmState:
        if self.state is None:
            raise Unavailable(NOT_A_MANAGER)
        return self.state

    # ------------------------------------------------------------ membership
    async def init(self, body: Any) -> str:
        async with self._lock:
            if self.state is not None:
                raise Unavailable(ALREADY_IN_A_SWARM)
            state = await asyncio.to_thread(new_state, body, links.interface_ipv4,
                                            links.default_source_ipv4)
            # the state first: the ingress network is made from its pool
            await asyncio.to_thread(state.save, self.dir)
            self.state = state
            try:
                await self.networks.create_ingress()
            except BaseException:
                self.state = None
                await asyncio.to_thread(self._forget)
                raise
            return state.node_id

    async def join(self, body: Any) -> None:
        if self.state is not None:
            raise Unavailable(ALREADY_IN_A_SWARM)
        raise NotImplementedByEngine(NO_JOIN)

    async def leave(self, force: bool) -> None:
        async with self._lock:
            if self.state is None:
                raise Unavailable(NOT_IN_A_SWARM)
            if not force:
                raise Unavailable(LEAVE_AS_MANAGER)
            # no new swarm network from here on; the file goes last, so a
            # crash in between leaves a swarm to leave again
            state, self.state = self.state, None
            try:
                await self.networks.remove_swarm_networks()
            except BaseException:
                self.state = state
                raise
            await asyncio.to_thread(self._forget)

    def _forget(self) -> None:
        (self.dir / "state.json").unlink(missing_ok=True)

    def inspect(self) -> dict[str, Any]:
        return self._active().cluster_json()

    async def update(self, body: Any, version: str, rotate_worker: bool,
                     rotate_manager: bool, rotate_unlock_key: bool) -> None:
        async with self._lock:
            state = self._active()
            _check_version(version, state.version)
            if not isinstance(body, dict):
                raise InvalidParameter("invalid JSON: the swarm spec must be an object")
            if rotate_unlock_key:
                raise NotImplementedByEngine("autolock is not supported by dockyard: there "
                                             "is no unlock key to rotate")
            spec = check_spec(body)
            state.spec = spec
            if rotate_worker:
                state.worker_token = new_join_token(state.cluster_secret)
            if rotate_manager:
                state.manager_token = new_join_token(state.cluster_secret)
            state.version += 1
            state.updated = time.time_ns()
            await asyncio.to_thread(state.save, self.dir)

    def unlock_key(self) -> dict[str, Any]:
        self._active()
        return {"UnlockKey": ""}

    async def unlock(self, body: Any) -> None:
        if self.state is None:
            raise Unavailable(NOT_IN_A_SWARM)
        raise InvalidParameter("swarm is not locked!")

    def info(self) -> dict[str, Any]:
        if self.state is None:
            return {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                    "ControlAvailable": False, "Error": "", "RemoteManagers": None}
        return self.state.info_json()

    # ------------------------------------------------------------ nodes
    def nodes(self, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        state = self._active()
        _check_filters(filters, NODE_FILTERS)
        node = state.node_json(self.describe())
        hostname = node["Description"].get("Hostname", "")
        if filters.get("id") and not any(state.node_id.startswith(v) for v in filters["id"]):
            return []
        if filters.get("name") and not any(hostname.startswith(v) for v in filters["name"]):
            return []
        if filters.get("role") and "manager" not in filters["role"]:
            return []
        if filters.get("membership") and "accepted" not in filters["membership"]:
            return []
        # node.label: the node's own labels; label: the engine's, of which
        # dockyard has none
        if not labels_match(state.node_spec.get("Labels") or {},
                            {"label": filters.get("node.label", [])}) or \
                not labels_match({}, {"label": filters.get("label", [])}):
            return []
        return [node]

    def node(self, ref: str) -> dict[str, Any]:
        state = self._active()
        node = state.node_json(self.describe())
        if ref and (state.node_id.startswith(ref) or
                    ref == node["Description"].get("Hostname")):
            return node
        raise NotFound(f"node {ref} not found")

    async def update_node(self, ref: str, version: str, body: Any) -> None:
        async with self._lock:
            self.node(ref)
            state = self._active()
            _check_version(version, state.node_version)
            state.node_spec = check_node_spec(body)
            state.node_version += 1
            state.node_updated = time.time_ns()
            await asyncio.to_thread(state.save, self.dir)

    async def remove_node(self, ref: str, force: bool) -> None:
        state = self._active()
        self.node(ref)
        raise InvalidParameter(
            f"rpc error: code = FailedPrecondition desc = node {state.node_id} is a cluster "
            "manager and is a member of the raft cluster. It must be demoted to worker "
            "before removal")

    # ------------------------------------------------------------ services and the rest
    def objects(self, kind: str, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        self._active()
        _check_filters(filters, OBJECT_FILTERS[kind])
        return []        # none can be made here

    def object(self, kind: str, ref: str) -> dict[str, Any]:
        self._active()
        raise NotFound(f"{KINDS[kind]} {ref} not found")

    async def create_object(self, kind: str, body: Any) -> dict[str, Any]:
        self._active()
        raise NotImplementedByEngine(NO_ORCHESTRATOR.format(what=kind.capitalize()))

    async def update_object(self, kind: str, ref: str, version: str, body: Any) -> None:
        self.object(kind, ref)

    async def remove_object(self, kind: str, ref: str) -> None:
        self.object(kind, ref)


def _check_version(version: str, current: int) -> None:
    if not version.isdigit():
        raise InvalidParameter(f"invalid swarm version '{version}': a number is needed")
    if int(version) != current:
        raise InvalidParameter("rpc error: code = Unknown desc = update out of sequence")


def _check_filters(filters: dict[str, list[str]], known: set[str]) -> None:
    for k in filters:
        if k not in known:
            raise InvalidParameter(f"invalid filter '{k}'")
