"""`NetworkService`: Docker's `/networks` operations (the network backend).

create, list with filters, inspect, remove, prune, connect and disconnect,
with Docker's checks and texts; events for each change.  Bridges are made
when a network is created (so its subnet is visibly taken on the host) and
removed with the network.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import time
from collections.abc import Callable
from typing import Any

from dockyard.backend import NetworkCreateResult
from dockyard.backend.swarm import NOT_A_MANAGER
from dockyard.engine.containers.store import ContainerStore
from dockyard.engine.containers.views import labels_match, parse_until
from dockyard.engine.events import EventBus
from dockyard.engine.networks.endpoints import (
    ContainerNetworking,
    check_attachable,
    ifname_for,
    primary_network,
)
from dockyard.engine.networks.records import (
    BRIDGE_OPTIONS,
    BRIDGED_DRIVERS,
    NetworkRecord,
    SubnetConfig,
)
from dockyard.engine.networks.store import NetworkStore, new_network_id
from dockyard.engine.swarm.state import new_object_id
from dockyard.errors import Conflict, Forbidden, InvalidParameter, NotFound
from dockyard.network import ipam
from dockyard.network.links import IFNAMSIZ
from dockyard.oci.options import check_network
from dockyard.oci.schema import (
    decode_network_connect,
    decode_network_create,
    decode_network_disconnect,
)

LIST_FILTERS = {"dangling", "driver", "id", "label", "name", "scope", "type"}
PRUNE_FILTERS = {"until", "label", "label!"}
KNOWN_BRIDGE_OPTIONS = set(BRIDGE_OPTIONS.values()) | {
    "com.docker.network.bridge.inhibit_ipv4", "com.docker.network.container_iface_prefix"}


class NetworkService:
    def __init__(self, store: NetworkStore, containers: ContainerStore,
                 networking: ContainerNetworking, events: EventBus,
                 pools: tuple[ipam.Pool, ...], host_routes: Any) -> None:
        self.store = store
        self.containers = containers
        self.networking = networking
        self.events = events
        self.pools = pools
        self._host_routes = host_routes          # () -> list of the host's route networks
        # () -> the swarm's address pools while the node is in a swarm, else
        # None (set by the swarm service)
        self.cluster_pools: Callable[[], tuple[ipam.Pool, ...] | None] = lambda: None

    def _emit(self, net: NetworkRecord, action: str, **extra: str) -> None:
        # a swarm network is made and removed in the swarm's scope; a
        # container joins or leaves it on this node (dockerd's scopes)
        scope = net.scope if action in ("create", "destroy") else "local"
        self.events.emit("network", action, net.id,
                         {"name": net.name, "type": net.driver, **extra}, scope=scope)

    # ------------------------------------------------------------ create
    async def create(self, raw: Any) -> NetworkCreateResult:
        if not isinstance(raw, dict):
            raise InvalidParameter("invalid JSON: network config must be an object")
        body = decode_network_create(raw)      # Go's types and field names
        name = body.get("Name")
        if not isinstance(name, str) or not name:
            raise InvalidParameter("invalid name: name is empty")
        if self.store.name_taken(name):
            raise Conflict(f"network with name {name} already exists")
        driver = body.get("Driver") or "bridge"
        if driver in ("host", "null"):
            raise Forbidden(f"only one instance of \"{driver}\" network is allowed")
        if driver not in BRIDGED_DRIVERS:
            raise NotFound(f'plugin "{driver}" not found')
        scope = body.get("Scope") or ""
        if scope not in ("", "local", "swarm", "global"):
            raise InvalidParameter(f"invalid scope: {scope}")
        if scope == "global":
            raise InvalidParameter("global scope networks need a cluster store, which "
                                   "dockyard does not have: use the swarm scope")
        if driver == "overlay" and scope == "local":
            raise Forbidden("cannot downgrade network scope for overlay networks")
        if body.get("Ingress") and driver != "overlay":
            raise Forbidden("Ingress network can only be global scope network")
        swarm = driver == "overlay" or scope == "swarm"
        pools = self.cluster_pools() if swarm else self.pools
        if pools is None:      # (403: Docker's API description says so for overlay)
            raise Forbidden(NOT_A_MANAGER)
        if body.get("EnableIPv4") is False:
            raise InvalidParameter("IPv6-only networks (EnableIPv4 false) are not supported")
        if body.get("ConfigOnly") or (body.get("ConfigFrom") or {}).get("Network"):
            raise InvalidParameter("config-only and config-from networks are not "
                                   "supported by this engine")
        ingress = bool(body.get("Ingress"))
        if ingress:
            if body.get("Attachable"):
                raise InvalidParameter("rpc error: code = InvalidArgument desc = ingress "
                                       "network cannot be attachable")
            present = next((n for n in self.store if n.ingress), None)
            if present is not None:
                raise Conflict(f"rpc error: code = AlreadyExists desc = ingress network "
                               f"({present.id}) is already present")
        options = {str(k): str(v) for k, v in (body.get("Options") or {}).items()}
        _check_options(driver, options)
        nid = new_object_id() if swarm else new_network_id()
        bridge = "" if ingress else options.get(BRIDGE_OPTIONS["name"]) or f"dy-{nid[:12]}"
        if len(bridge) > IFNAMSIZ:
            raise InvalidParameter(f"bridge name {bridge} is longer than {IFNAMSIZ} characters")
        if bridge and any(n.bridge == bridge for n in self.store):
            raise Conflict(f"bridge name {bridge} is already used by another network")
        mtu = int(options.get(BRIDGE_OPTIONS["mtu"]) or 1500)
        ipam_body = body.get("IPAM") or {}
        # An IPv6 subnet without EnableIPv6: dockerd 20.10 records the subnet
        # and gives no container an IPv6 address.  dockyard does not keep an
        # option it will not act on: the subnet turns IPv6 on, and inspect
        # says so.
        ipv6 = bool(body.get("EnableIPv6")) or any(
            ":" in str((cfg or {}).get("Subnet") or "") for cfg in ipam_body.get("Config") or [])
        subnets = self._subnets(ipam_body, ipv6, pools)
        net = NetworkRecord(
            id=nid, name=name, driver=driver, created=time.time_ns(), bridge=bridge,
            subnets=subnets, ipv6=ipv6, internal=bool(body.get("Internal")),
            attachable=bool(body.get("Attachable")),
            labels={str(k): str(v) for k, v in (body.get("Labels") or {}).items()},
            options=options,
            ipam_options=dict((body.get("IPAM") or {}).get("Options") or {}) or None,
            mtu=mtu, scope="swarm" if swarm else "local", ingress=ingress)
        await self._add(net)
        return NetworkCreateResult(id=net.id, warning="")

    async def _add(self, net: NetworkRecord) -> None:
        self.store.add(net)
        try:
            await self.networking.plumbing.ensure_bridge(net)
            await self.networking.sync()
        except BaseException:
            self.store.remove(net)
            await self.networking.plumbing.remove_bridge(net)
            raise
        self._emit(net, "create")

    async def create_ingress(self) -> None:
        """The swarm's `ingress` network, as `swarm init` makes it: the first
        subnet of the swarm's pool.  It has no bridge here: it carries a
        routing mesh for services, and dockyard runs no services."""
        pools = self.cluster_pools()
        assert pools is not None
        await self._add(NetworkRecord(
            id=new_object_id(), name="ingress", driver="overlay", created=time.time_ns(),
            subnets=self._subnets({}, False, pools), scope="swarm", ingress=True))

    async def remove_swarm_networks(self) -> None:
        """The node leaves its swarm: every swarm-scoped network goes, and
        the containers on them are disconnected first (dockerd's force leave)."""
        for net in [n for n in self.store if n.scope == "swarm"]:
            for c in list(self.containers):
                wanted = dict(c.networking_config.get("EndpointsConfig") or {})
                if net.name not in c.endpoints and net.name not in wanted:
                    continue
                async with self.containers.lock(c):
                    if net.name in c.endpoints:
                        await self.networking.detach(c, net.name)
                        self._emit(net, "disconnect", container=c.id)
                    wanted.pop(net.name, None)
                    c.networking_config["EndpointsConfig"] = wanted
                    self.containers.save(c)
            self.store.remove(net)
            await self.networking.plumbing.remove_bridge(net)
            self._emit(net, "destroy")
        await self.networking.sync()
        if all(n.predefined for n in self.store):
            await self.networking.plumbing.teardown_if_idle(self.store, self.containers)

    def _taken(self) -> list[ipam.IPNetwork]:
        taken: list[ipam.IPNetwork] = []
        for n in self.store:
            taken += [ipam.parse_subnet(s.subnet) for s in n.subnets]
        return taken + list(self._host_routes())

    def _subnets(self, ipam_body: dict[str, Any], ipv6: bool,
                 pools: tuple[ipam.Pool, ...]) -> list[SubnetConfig]:
        if (ipam_body.get("Driver") or "default") != "default":
            raise NotFound(f'plugin "{ipam_body.get("Driver")}" not found')
        out: list[SubnetConfig] = []
        taken = self._taken()
        for cfg in ipam_body.get("Config") or []:
            sub = str(cfg.get("Subnet") or "")
            if not sub:
                raise InvalidParameter("invalid IPAM config: a subnet is required")
            try:
                net = ipaddress.ip_network(sub, strict=False)
            except ValueError:
                raise InvalidParameter(f"Invalid subnet {sub} : invalid CIDR address: "
                                       f"{sub}") from None
            ipam.check_subnet_free(net, [t for t in taken if t.version == net.version])
            alloc = ipam.SubnetAllocator.create(net, cfg.get("Gateway") or None,
                                                cfg.get("IPRange") or None)
            aux = {str(k): str(v) for k, v in (cfg.get("AuxiliaryAddresses") or {}).items()}
            for host, addr in aux.items():
                try:
                    ok = ipaddress.ip_address(addr) in net
                except ValueError:
                    ok = False
                if not ok:
                    raise InvalidParameter(f"invalid auxiliary address {host}={addr}: not "
                                           f"in subnet {net}")
            out.append(SubnetConfig(subnet=str(net), gateway=str(alloc.gateway),
                                    ip_range=str(cfg.get("IPRange") or ""), user_subnet=True,
                                    aux=aux))
            taken.append(net)
        if not any(":" not in s.subnet for s in out):
            net4 = ipam.choose_subnet(pools, [t for t in taken if t.version == 4])
            out.insert(0, SubnetConfig(subnet=str(net4), gateway=str(next(net4.hosts()))))
        if ipv6 and not any(":" in s.subnet for s in out):
            raise InvalidParameter("an IPv6 network needs an IPv6 --subnet (no default IPv6 "
                                   "pool is configured)")
        return out

    # ------------------------------------------------------------ inspect, list
    def _containers_on(self, net: NetworkRecord) -> dict[str, Any]:
        out = {}
        for c in self.containers:
            raw = c.endpoints.get(net.name)
            if raw is None or raw.get("network_id") != net.id:
                continue
            out[c.id] = {"Name": c.name, "EndpointID": raw["endpoint_id"],
                         "MacAddress": raw["mac"],
                         "IPv4Address": f"{raw['ip']}/{raw['prefixlen']}" if raw["ip"] else "",
                         "IPv6Address": f"{raw['ip6']}/{raw['prefixlen6']}"
                         if raw["ip6"] else ""}
        return out

    def inspect(self, ref: str, scope: str = "") -> dict[str, Any]:
        net = self.store.get(ref)
        # dockerd looks the network up within the scope asked for
        if scope and scope != net.scope:
            raise NotFound(f"network {ref} not found")
        return net.to_json(self._containers_on(net))

    def list_networks(self, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        for k in filters:
            if k not in LIST_FILTERS:
                raise InvalidParameter(f"invalid filter '{k}'")
        for t in filters.get("type", []):
            if t not in ("custom", "builtin"):
                raise InvalidParameter(f"invalid filter: 'type'='{t}'")
        for d in filters.get("dangling", []):
            if d.lower() not in ("true", "false", "1", "0"):
                raise InvalidParameter(f"invalid filter 'dangling={d}'")
        out = []
        for net in self.store:
            if not self._matches(net, filters):
                continue
            out.append(net.to_json(self._containers_on(net)))
        return out

    def _matches(self, net: NetworkRecord, f: dict[str, list[str]]) -> bool:
        if f.get("driver") and net.driver not in f["driver"]:
            return False
        if f.get("id") and not any(net.id.startswith(v) for v in f["id"]):
            return False
        if f.get("name") and not any(v in net.name or fnmatch.fnmatch(net.name, v)
                                     for v in f["name"]):
            return False
        if f.get("scope") and net.scope not in f["scope"]:
            return False
        if f.get("type"):
            kind = "builtin" if net.predefined else "custom"
            if kind not in f["type"]:
                return False
        if f.get("dangling"):
            want = f["dangling"][0].lower() in ("true", "1")
            dangling = not net.predefined and not self._in_use(net)
            if dangling != want:
                return False
        return labels_match(net.labels, f)

    def _in_use(self, net: NetworkRecord) -> bool:
        for c in self.containers:
            if net.name in c.endpoints or \
                    net.name in (c.networking_config.get("EndpointsConfig") or {}) or \
                    primary_network(c.host_config) in (net.name, net.id):
                return True
        return False

    # ------------------------------------------------------------ remove
    async def remove(self, ref: str) -> None:
        net = self.store.get(ref)
        if net.predefined:
            raise Forbidden(f"{net.name} is a pre-defined network and cannot be removed")
        active = [c for c in self.containers if net.name in c.endpoints]
        if active:
            raise Forbidden(f"error while removing network: network {net.name} id {net.id} "
                            "has active endpoints")
        self.store.remove(net)
        await self.networking.plumbing.remove_bridge(net)
        await self.networking.sync()
        if all(n.predefined for n in self.store):
            # the last user network went (a compose project's `down`): with
            # nothing attached either, nothing of the engine stays on the host
            await self.networking.plumbing.teardown_if_idle(self.store, self.containers)
        self._emit(net, "destroy")

    async def prune(self, filters: dict[str, list[str]]) -> dict[str, Any]:
        for k in filters:
            if k not in PRUNE_FILTERS:
                raise InvalidParameter(f"invalid filter '{k}'")
        until = parse_until(filters.get("until"))
        deleted = []
        for net in list(self.store):
            if net.predefined or net.ingress or self._in_use(net):
                # (the routing mesh's network goes only when asked for by name)
                continue
            if until is not None and net.created >= until:
                continue
            if not labels_match(net.labels, filters):
                continue
            await self.remove(net.id)
            deleted.append(net.name)
        # nothing attached anywhere: the default bridge and the rules go too
        # (they come back with the next container)
        await self.networking.settle()
        await self.networking.plumbing.teardown_if_idle(self.store, self.containers)
        return {"NetworksDeleted": deleted or None}

    # ------------------------------------------------------------ connect
    async def connect(self, ref: str, body: Any) -> None:
        opts = decode_network_connect(body)
        net = self.store.get(ref)
        c = self.containers.get(opts.get("Container") or "")
        mode = primary_network(c.host_config)
        if mode in ("host", "none") or mode.startswith("container:"):
            raise Forbidden("container sharing network namespace with another container or "
                            "host cannot be connected to any other network")
        if net.driver not in BRIDGED_DRIVERS:
            raise Forbidden("container cannot be disconnected from host network or "
                            "connected to host network")
        check_attachable(net)
        settings = dict(opts.get("EndpointConfig") or {})
        check_network({}, {"EndpointsConfig": {net.name: settings}})
        self.networking._check_endpoint_settings(net, settings)
        wanted = dict(c.networking_config.get("EndpointsConfig") or {})
        if net.name in c.endpoints or (not c.state.running and net.name in wanted):
            raise Forbidden(f"endpoint with name {c.name} already exists in network "
                            f"{net.name}")
        async with self.containers.lock(c):
            if c.state.running:
                netns = str(self.containers.netns_path(c))
                await self.networking.attach(c, net, netns, settings,
                                             ifname_for(settings, len(c.endpoints)),
                                             default_route=False)
            wanted[net.name] = settings
            c.networking_config["EndpointsConfig"] = wanted
            if c.state.running:
                await self.networking.sync()    # its names, and its links' aliases
            self.containers.save(c)
        self._emit(net, "connect", container=c.id)

    async def disconnect(self, ref: str, body: Any) -> None:
        opts = decode_network_disconnect(body)
        container, force = opts.get("Container") or "", bool(opts.get("Force"))
        net = self.store.get(ref)
        try:
            c = self.containers.get(container)
        except NotFound:
            if force:
                return
            raise
        wanted = dict(c.networking_config.get("EndpointsConfig") or {})
        if net.name not in c.endpoints and net.name not in wanted:
            raise Forbidden(f"container {c.id} is not connected to network {net.name}")
        async with self.containers.lock(c):
            if net.name in c.endpoints:
                await self.networking.detach(c, net.name)
                await self.networking.sync()
            wanted.pop(net.name, None)
            c.networking_config["EndpointsConfig"] = wanted
            if primary_network(c.host_config) == net.name:
                # the container keeps running without its primary network, as in Docker
                pass
            self.containers.save(c)
        self._emit(net, "disconnect", container=c.id)


OVERLAY_OPTIONS = {BRIDGE_OPTIONS["mtu"]}


def _check_options(driver: str, options: dict[str, str]) -> None:
    """A driver's options: each one is applied, or the create is refused."""
    if driver == "bridge":
        unknown = sorted(set(options) - KNOWN_BRIDGE_OPTIONS)
        if unknown:
            raise InvalidParameter(f"unknown bridge option {unknown[0]}")
        return
    for key in sorted(options):
        if key == "encrypted":
            raise InvalidParameter(
                "encrypted overlay networks are not supported by dockyard: its swarm is one "
                "node, and no traffic leaves it to be encrypted")
        if key == "com.docker.network.driver.overlay.vxlanid_list":
            raise InvalidParameter(
                f"{key} is not supported by dockyard: its overlay networks are bridges on "
                "this host, with no VXLAN")
        if key not in OVERLAY_OPTIONS:
            raise InvalidParameter(f"unknown overlay option {key}")
