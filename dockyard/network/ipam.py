"""Address management for bridge networks: which subnet, which address.

Pure: the caller passes what is already taken (other networks' subnets, the
host's routes) and gets an answer or Docker's error text back.

- A network without `--subnet` takes the first free subnet of the address
  pools (daemon `default-address-pools`; Docker's defaults otherwise): free
  means overlapping neither another network nor a route of the host, so
  dockyard runs beside a Docker Engine (whose docker0 sits on 172.17.0.0/16,
  which is why the default pools skip it) and beside the host's own LANs.
- In a subnet the gateway is the first address unless given; containers get
  the lowest free address of the `--ip-range` (the whole subnet by default),
  never the network or broadcast address, or one that is taken.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from dockyard.errors import Conflict, InvalidParameter

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Pool:
    """A range to carve subnets of one size from (`{"base": ..., "size": N}`)."""

    base: IPNetwork
    size: int

    def subnets(self) -> Iterator[IPNetwork]:
        if self.size < self.base.prefixlen:
            raise InvalidParameter(f"invalid pool {self.base}: size /{self.size} is larger "
                                   "than the pool")
        return self.base.subnets(new_prefix=self.size)


# Docker's predefined local pools, without docker0's 172.17.0.0/16.
DEFAULT_POOLS = (
    Pool(ipaddress.ip_network("172.18.0.0/15"), 16),
    Pool(ipaddress.ip_network("172.20.0.0/14"), 16),
    Pool(ipaddress.ip_network("172.24.0.0/13"), 16),
    Pool(ipaddress.ip_network("192.168.0.0/16"), 20),
)


def parse_pools(config: Iterable[dict[str, object]]) -> tuple[Pool, ...]:
    """daemon.json `default-address-pools`: [{"base": "10.10.0.0/16", "size": 24}]."""
    pools = []
    for entry in config:
        try:
            base = ipaddress.ip_network(str(entry["base"]), strict=True)
            size = int(str(entry["size"]))
        except (KeyError, ValueError) as e:
            raise InvalidParameter(f"invalid default-address-pools entry {entry}: {e}") from None
        pools.append(Pool(base, size))
    return tuple(pools)


def parse_subnet(text: str) -> IPNetwork:
    """A `--subnet`: Docker accepts host bits set (10.1.2.3/24 is 10.1.2.0/24)."""
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidParameter(f"invalid subnet {text}: invalid CIDR address: {text}") from None


def parse_address(text: str, what: str = "IP address") -> IPAddress:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise InvalidParameter(f"invalid {what}: {text}") from None


def overlaps(net: IPNetwork, others: Iterable[IPNetwork]) -> IPNetwork | None:
    for other in others:
        if net.version == other.version and net.overlaps(other):
            return other
    return None


def choose_subnet(pools: Iterable[Pool], taken: Iterable[IPNetwork]) -> IPNetwork:
    """The first pool subnet that overlaps nothing taken."""
    taken = list(taken)
    for pool in pools:
        for candidate in pool.subnets():
            if overlaps(candidate, taken) is None:
                return candidate
    raise InvalidParameter("could not find an available, non-overlapping IPv4 address pool "
                           "among the defaults to assign to the network")


def check_subnet_free(subnet: IPNetwork, networks: Iterable[IPNetwork]) -> None:
    """A user's `--subnet` must not overlap another network's (Docker's 403-ish text
    is a 400 here: it is the request that is wrong)."""
    if overlaps(subnet, networks) is not None:
        raise Conflict("Pool overlaps with other one on this address space")


@dataclass
class SubnetAllocator:
    """The addresses of one subnet: the gateway and what containers hold."""

    subnet: IPNetwork
    gateway: IPAddress
    ip_range: IPNetwork | None = None
    taken: set[IPAddress] = field(default_factory=set)

    @classmethod
    def create(cls, subnet: IPNetwork, gateway: str | None = None,
               ip_range: str | None = None) -> SubnetAllocator:
        if subnet.num_addresses < 4 and subnet.version == 4:
            raise InvalidParameter(f"invalid subnet {subnet}: too small for containers")
        gw: IPAddress = parse_address(gateway, "gateway") if gateway else \
            parse_address(str(next(subnet.hosts())))
        if gw not in subnet:
            raise InvalidParameter(f"invalid gateway {gw}: not in subnet {subnet}")
        rng = None
        if ip_range:
            rng = parse_subnet(ip_range)
            if rng.version != subnet.version or not rng.subnet_of(subnet):  # type: ignore[arg-type]
                raise InvalidParameter(f"invalid ip-range {ip_range}: not in subnet {subnet}")
        return cls(subnet, gw, rng)

    def _usable(self, addr: IPAddress) -> bool:
        if addr == self.gateway or addr in self.taken:
            return False
        if self.subnet.version == 4 and addr in (self.subnet.network_address,
                                                 self.subnet.broadcast_address):
            return False
        return addr != self.subnet.network_address

    def allocate(self, requested: str | None = None) -> IPAddress:
        if requested:
            addr = parse_address(requested)
            if addr not in self.subnet:
                raise InvalidParameter(f"invalid IP address {addr}: it does not belong to "
                                       f"any of this network's subnets")
            if addr in self.taken or addr == self.gateway:
                raise Conflict(f"Address already in use: {addr}")
            self.taken.add(addr)
            return addr
        for addr in (self.ip_range or self.subnet).hosts():
            if self._usable(addr):
                self.taken.add(addr)
                return addr
        raise Conflict(f"no available IPv{self.subnet.version} addresses on this network's "
                       "address pools")

    def release(self, addr: IPAddress) -> None:
        self.taken.discard(addr)
