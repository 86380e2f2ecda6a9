"""`NetworkStore`: the network records, their names and address allocators.

Owns `<data-root>/networks/`.  The three predefined networks (`bridge`,
`host`, `none`) are made on the first start and keep their ids.  Address
allocators live in memory: at start they are refilled from the endpoints
of the containers that kept running, so a restarted daemon never hands out
an address that is in use.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from dockyard.engine.networks.records import BRIDGE_OPTIONS, NetworkRecord, SubnetConfig
from dockyard.errors import Conflict, InvalidParameter, NotFound
from dockyard.network import firewall, links
from dockyard.network.dns import DnsServer
from dockyard.network.ipam import (
    IPAddress,
    IPNetwork,
    Pool,
    SubnetAllocator,
    choose_subnet,
    parse_address,
    parse_subnet,
)
from dockyard.network.netns import release_netns_dir

log = logging.getLogger("dockyard.networks")

DEFAULT_BRIDGE = "dockyard0"
DEFAULT_DATA_ROOT = Path("/var/lib/dockyard")
PREDEFINED = ("bridge", "host", "none")


@dataclass(frozen=True)
class HostNames:
    """The names an engine gives to what it makes in the host's shared
    namespaces.  The engine on the default data root uses the plain ones;
    another engine on the same host (another data root, a test daemon) gets
    its own, so the two never rewrite each other's bridge or rules."""

    default_bridge: str
    chain_prefix: str

    @classmethod
    def for_data_root(cls, data_root: Path) -> HostNames:
        if data_root.resolve() == DEFAULT_DATA_ROOT:
            return cls(DEFAULT_BRIDGE, firewall.DEFAULT_PREFIX)
        tag = hashlib.sha256(str(data_root.resolve()).encode()).hexdigest()[:6]
        return cls(f"dy{tag}0", f"{firewall.DEFAULT_PREFIX}-{tag}")


def new_network_id() -> str:
    return secrets.token_hex(32)


class NetworkStore:
    def __init__(self, data_root: Path, default_bridge: str = DEFAULT_BRIDGE) -> None:
        self.dir = data_root / "networks"
        self.default_bridge = default_bridge
        self._by_id: dict[str, NetworkRecord] = {}
        self._names: dict[str, str] = {}
        self._v4: dict[str, SubnetAllocator] = {}
        self._v6: dict[str, SubnetAllocator] = {}

    # ------------------------------------------------------------ lookup
    def __iter__(self) -> Iterator[NetworkRecord]:
        return iter(sorted(self._by_id.values(), key=lambda n: n.created))

    def find(self, network_id: str) -> NetworkRecord | None:
        return self._by_id.get(network_id)

    def get(self, ref: str) -> NetworkRecord:
        """By full id, name, or unique id prefix (Docker's lookup order)."""
        if ref in self._by_id:
            return self._by_id[ref]
        if ref in self._names:
            return self._by_id[self._names[ref]]
        # ids are hex, or swarmkit's base 36 for swarm-scoped networks
        if ref and all(ch in "0123456789abcdefghijklmnopqrstuvwxyz" for ch in ref):
            hits = [n for nid, n in self._by_id.items() if nid.startswith(ref)]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise InvalidParameter(f"network {ref} is ambiguous ({len(hits)} matches found "
                                       "on name)")
        raise NotFound(f"network {ref} not found")

    def name_taken(self, name: str) -> bool:
        return name in self._names

    # ------------------------------------------------------------ changes
    def add(self, net: NetworkRecord) -> None:
        if net.name in self._names:
            raise Conflict(f"network with name {net.name} already exists")
        net.save(self.dir)
        self._by_id[net.id] = net
        self._names[net.name] = net.id
        self._make_allocators(net)

    def remove(self, net: NetworkRecord) -> None:
        self._by_id.pop(net.id, None)
        if self._names.get(net.name) == net.id:
            del self._names[net.name]
        self._v4.pop(net.id, None)
        self._v6.pop(net.id, None)
        try:
            (self.dir / f"{net.id}.json").unlink()
        except FileNotFoundError:
            pass

    def _make_allocators(self, net: NetworkRecord) -> None:
        for sub, allocators in ((net.subnet4(), self._v4), (net.subnet6(), self._v6)):
            if sub is None:
                continue
            alloc = SubnetAllocator.create(parse_subnet(sub.subnet), sub.gateway or None,
                                           sub.ip_range or None)
            alloc.taken.update(parse_address(a) for a in sub.aux.values())
            allocators[net.id] = alloc

    # ------------------------------------------------------------ addresses
    def allocator(self, net: NetworkRecord, v6: bool = False) -> SubnetAllocator | None:
        return (self._v6 if v6 else self._v4).get(net.id)

    def claim(self, net: NetworkRecord, address: str) -> None:
        """An address a running container holds (found again at start)."""
        if not address:
            return
        addr: IPAddress = parse_address(address)
        alloc = self.allocator(net, addr.version == 6)
        if alloc is not None:
            alloc.taken.add(addr)

    # ------------------------------------------------------------ disk
    def load(self, default_subnet: Callable[[], str]) -> None:
        """Read every network record; make the predefined ones if missing
        (`default_subnet` chooses the default bridge's, the first time)."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for path in sorted(self.dir.glob("*.json")):
            try:
                net = NetworkRecord.load(path)
            except (OSError, ValueError, TypeError) as e:
                log.error("skipping unreadable network record %s: %s", path.name, e)
                continue
            self._by_id[net.id] = net
            self._names[net.name] = net.id
            try:
                self._make_allocators(net)
            except InvalidParameter as e:
                log.error("network %s has an unusable subnet: %s", net.name, e.message)
        for name in PREDEFINED:
            if name not in self._names:
                self.add(self._predefined(name, default_subnet() if name == "bridge" else "",
                                          self.default_bridge))

    def subnets_in_use(self) -> list[IPNetwork]:
        return [parse_subnet(s.subnet) for n in self._by_id.values() for s in n.subnets]

    @staticmethod
    def _predefined(name: str, subnet: str, bridge: str) -> NetworkRecord:
        now = time.time_ns()
        if name == "bridge":
            gateway = str(next(parse_subnet(subnet).hosts()))
            return NetworkRecord(
                id=new_network_id(), name="bridge", driver="bridge", created=now,
                bridge=bridge, predefined=True,
                subnets=[SubnetConfig(subnet=subnet, gateway=gateway)],
                options={BRIDGE_OPTIONS["default_bridge"]: "true",
                         BRIDGE_OPTIONS["icc"]: "true",
                         BRIDGE_OPTIONS["masquerade"]: "true",
                         BRIDGE_OPTIONS["host_binding"]: "0.0.0.0",
                         BRIDGE_OPTIONS["name"]: bridge,
                         BRIDGE_OPTIONS["mtu"]: "1500"})
        return NetworkRecord(id=new_network_id(), name=name,
                             driver="host" if name == "host" else "null", created=now,
                             predefined=True)


def default_bridge_subnet(bip: str | None, pools: tuple[Pool, ...], store: NetworkStore) -> str:
    """The default bridge's subnet: daemon `bip` (its gateway/prefix), else
    the first pool subnet clear of the host's routes and other networks."""
    if bip:
        return str(parse_subnet(bip))
    taken: list[IPNetwork] = [*store.subnets_in_use(), *links.host_routes()]
    return str(choose_subnet(pools, taken))


async def remove_host_networking(data_root: Path, exec_root: Path) -> list[str]:
    """Take out what an engine made in the host's shared network state: its
    bridges, its firewall chains and their jumps, its name server, its
    network namespaces and their directory's mount.  For an
    engine that is stopped and will not come back on this data root (a
    removed installation, a test daemon).  Returns what was removed."""
    names = HostNames.for_data_root(data_root)
    bridges = [names.default_bridge]
    for path in (data_root / "networks").glob("*.json"):
        try:
            bridges.append(NetworkRecord.load(path).bridge)
        except (OSError, ValueError, TypeError):
            continue
    removed = []
    for bridge in dict.fromkeys(b for b in bridges if b):
        if await asyncio.to_thread(links.link_exists, bridge):
            await asyncio.to_thread(links.delete_link, bridge)
            removed.append(f"bridge {bridge}")
    await firewall.remove_all(firewall.Chains(names.chain_prefix))
    removed.append(f"firewall chains {names.chain_prefix}-*")
    dns_server = DnsServer(exec_root / "dns")
    await dns_server.stop()
    removed += await asyncio.to_thread(release_netns_dir, exec_root / "netns")
    return removed
