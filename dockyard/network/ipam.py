"""Address management for bridge networks: which subnet, which address.

Pure: the caller passes what is already taken (other networks' subnets, the
host's routes) and gets an answer or Docker's error text back.

- A network without `--subnet` takes the first free subnet of the address
  pools (daemon `default-address-pools`; Docker's defaults otherwise): free
  means overlapping neither another network nor a route of the host, so
  dockyard runs beside a Docker Engine (whose docker0 sits on 172.17.0.0/16,
  which is why the default pools skip it) and beside the host's own LANs.
- In a subnet the gateway is, unless given, the lowest free address of the
  `--ip-range` (the whole subnet by default); containers get the next lowest
  free ones.  As Docker's IPAM, only the subnet's own network address (and an
  IPv4 subnet's broadcast address) is reserved: an `--ip-range` inside the
  subnet hands out its first and last addresses too.
- The errors are Docker's: its texts, and its status (a 403 for an overlapping
  subnet or an address in use).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from dockyard.errors import Conflict, Forbidden, InvalidParameter, SystemError_

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
        if not base.prefixlen <= size <= base.max_prefixlen:
            raise InvalidParameter(f"invalid default-address-pools entry {entry}: size {size} "
                                   f"is not between {base.prefixlen} and {base.max_prefixlen}")
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
    raise InvalidParameter("all predefined address pools have been fully subnetted")


def check_subnet_free(subnet: IPNetwork, networks: Iterable[IPNetwork]) -> None:
    """A user's `--subnet` must not overlap another network's: a 403, as Docker's
    IPAM answers it (ErrPoolOverlap, wrapped by RequestPool)."""
    if overlaps(subnet, networks) is not None:
        raise Forbidden("invalid pool request: Pool overlaps with other one on this address "
                        "space")


def _check_ip_range(text: str, subnet: IPNetwork) -> tuple[IPNetwork | None, list[str]]:
    """Docker's checks of an `--ip-range` (validateIPRange): the range, and the errors."""
    try:
        if "/" not in text:
            raise ValueError(text)
        iface = ipaddress.ip_interface(text)
    except ValueError:
        return None, [f"invalid ip-range {text}: invalid CIDR block notation"]
    rng = iface.network
    if rng.version != subnet.version:
        family = f"IPv{subnet.version}"
        return None, [f"invalid ip-range {text}: parent subnet is an {family} block"]
    errs = []
    if rng.prefixlen < subnet.prefixlen:
        errs.append(f"invalid ip-range {text}: CIDR block is bigger than its parent subnet "
                    f"{subnet}")
    if iface.ip != rng.network_address:
        errs.append(f"invalid ip-range {text}: it should be {rng}")
    if not rng.overlaps(subnet):
        errs.append(f"invalid ip-range {text}: parent subnet {subnet} doesn't contain "
                    "ip-range")
    return rng, errs


def _check_gateway(text: str, subnet: IPNetwork) -> tuple[IPAddress | None, str | None]:
    """Docker's checks of a `--gateway` (validateAddress): the address, or the error."""
    try:
        gw = ipaddress.ip_address(text)
    except ValueError:
        return None, f"invalid gateway {text}: invalid address"
    if gw.version != subnet.version:
        return None, f"invalid gateway {text}: parent subnet is an IPv{subnet.version} block"
    if gw not in subnet:
        return None, f"invalid gateway {text}: parent subnet {subnet} doesn't contain this address"
    return gw, None


@dataclass
class SubnetAllocator:
    """The addresses of one subnet: the gateway and what containers hold."""

    subnet: IPNetwork
    gateway: IPAddress
    ip_range: IPNetwork | None = None
    taken: set[IPAddress] = field(default_factory=set)
    # every usable address below this one is taken: the search for the
    # lowest free address starts here, not at the subnet's first address
    # again for each container (the 500th start would walk 500 addresses)
    _free_from: int = field(default=0, repr=False, compare=False)

    @classmethod
    def create(cls, subnet: IPNetwork, gateway: str | None = None,
               ip_range: str | None = None) -> SubnetAllocator:
        """Docker's checks of one IPAM config (all its errors in one message, as
        dockerd's validateIpamConfig), then the allocator with its gateway."""
        if subnet.num_addresses < 4 and subnet.version == 4:
            raise InvalidParameter(f"invalid subnet {subnet}: too small for containers")
        errs: list[str] = []
        rng, gw = None, None
        if ip_range:
            rng, range_errs = _check_ip_range(ip_range, subnet)
            errs += range_errs
        if gateway:
            gw, gw_err = _check_gateway(gateway, subnet)
            errs += [gw_err] if gw_err else []
        if errs:
            raise InvalidParameter("invalid network config:\n" + "\n".join(errs))
        alloc = cls(subnet, ipaddress.ip_address(subnet.network_address), rng)
        if gw is None:
            # as Docker's IPAM: the gateway is the first address it hands out
            gw = alloc._first_free()
            if gw is None:
                raise InvalidParameter(f"invalid subnet {subnet}: too small for containers")
        elif alloc._reserved(gw):
            raise SystemError_(f"failed to allocate gateway ({gw}): Address already in use")
        alloc.gateway = gw
        return alloc

    def _reserved(self, addr: IPAddress) -> bool:
        """The subnet's network address (IPv6: its Subnet-Router anycast address)
        and an IPv4 subnet's broadcast address: never handed out."""
        if addr == self.subnet.network_address:
            return True
        return self.subnet.version == 4 and addr == self.subnet.broadcast_address

    def _usable(self, addr: IPAddress) -> bool:
        return not (self._reserved(addr) or addr == self.gateway or addr in self.taken)

    def _first_free(self) -> IPAddress | None:
        """The lowest usable address not taken (Docker's IPAM: not the one
        after the last handed out)."""
        net = self.ip_range or self.subnet
        make = type(net.network_address)
        for n in range(max(int(net.network_address), self._free_from),
                       int(net.broadcast_address) + 1):
            addr = make(n)
            if self._usable(addr):
                self._free_from = n
                return addr
        return None

    def allocate(self, requested: str | None = None) -> IPAddress:
        if requested:
            addr = parse_address(requested)
            if addr not in self.subnet:
                raise InvalidParameter(f"invalid address {addr}: It does not belong to any "
                                       "of this network's subnets")
            if not self._usable(addr):
                raise Forbidden("Address already in use")
            self.taken.add(addr)
            return addr
        found = self._first_free()
        if found is None:
            raise Conflict(f"no available IPv{self.subnet.version} addresses on this network's "
                           "address pools")
        self.taken.add(found)
        return found

    def release(self, addr: IPAddress) -> None:
        self.taken.discard(addr)
        self._free_from = min(self._free_from, int(addr))
