"""`ContainerNetworking`: a container's endpoints, from its start to its stop.

At start every network the container is on gets an endpoint: an address
from the network's allocator (or the one asked for), a MAC, a veth into
the container's namespace named eth0, eth1, ... in order (the container's
own network mode first, then the others by name), and DNS names; then its
ports are published through the first endpoint.  At stop everything is
given back.  The endpoints are kept in the container's record while it
runs, so a restarted daemon finds them again.

What a container asks for (its network mode, EndpointsConfig, ports) is
checked at create with Docker's texts.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
from typing import Any

from dockyard.engine.containers.record import Container
from dockyard.engine.containers.store import ContainerStore
from dockyard.engine.networks.plumbing import Plumbing, endpoints_of
from dockyard.engine.networks.ports import PortHolder, PortMapping, resolve_bindings
from dockyard.engine.networks.records import BRIDGED_DRIVERS, Endpoint, NetworkRecord
from dockyard.engine.networks.store import NetworkStore
from dockyard.errors import Conflict, Forbidden, InvalidParameter, NotFound
from dockyard.network import conntrack, links

SPECIAL_MODES = ("host", "none")


log = logging.getLogger("dockyard.networks")

def primary_network(host_config: dict[str, Any]) -> str:
    mode = host_config.get("NetworkMode") or "bridge"
    return "bridge" if mode == "default" else mode


def check_attachable(net: NetworkRecord) -> None:
    """dockerd's refusal (at start or connect, not at create) to place a
    container on a swarm network that was not made attachable."""
    if not net.takes_containers:
        raise Forbidden(f"Could not attach to network {net.name}: rpc error: code = "
                        f"PermissionDenied desc = network {net.name} not manually attachable")


def wants_networks(host_config: dict[str, Any]) -> bool:
    mode = primary_network(host_config)
    return mode not in SPECIAL_MODES and not mode.startswith("container:")


IFNAME_OPTION = "com.docker.network.endpoint.ifname"


def ifname_for(settings: dict[str, Any], index: int) -> str:
    """The interface's name inside the container: eth<index>, or the
    endpoint's `com.docker.network.endpoint.ifname` driver option."""
    return str((settings.get("DriverOpts") or {}).get(IFNAME_OPTION) or f"eth{index}")


def _link_local_cidr(ip: str) -> str:
    """A link-local address with its scope's prefix (169.254/16, fe80::/64)."""
    return f"{ip}/{64 if ':' in ip else 16}"


def mac_for(ip: str) -> str:
    """Docker's 02:42 MAC derived from an IPv4 address."""
    octets = ipaddress.IPv4Address(ip).packed
    return "02:42:" + ":".join(f"{b:02x}" for b in octets)


class ContainerNetworking:
    def __init__(self, networks: NetworkStore, containers: ContainerStore,
                 plumbing: Plumbing, ports: PortHolder) -> None:
        self.networks = networks
        self.containers = containers
        self.plumbing = plumbing
        self.ports = ports
        self._removing: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ create
    def check_create(self, host_config: dict[str, Any], networking: dict[str, Any],
                     config: dict[str, Any]) -> dict[str, Any]:
        """Check what the container asks of the networks; the EndpointsConfig
        to keep (the network mode's entry always present)."""
        mode = primary_network(host_config)
        endpoints = dict((networking or {}).get("EndpointsConfig") or {})
        if mode.startswith("container:") or mode in SPECIAL_MODES:
            # host mode: dockerd discards published ports, with its warning
            if mode != "host" and (host_config.get("PortBindings")
                                   or host_config.get("PublishAllPorts")):
                raise InvalidParameter("conflicting options: port publishing and the "
                                       "container type network mode")
            for name in endpoints:
                if name not in (mode, "host", "none"):
                    raise InvalidParameter("container sharing network namespace with "
                                           "another container or host cannot be connected "
                                           "to any other network")
            return endpoints
        try:
            net = self.networks.get(mode)
        except NotFound:
            # as dockerd: an unknown network fails the start, not the create
            # (a 404 at create would make the docker CLI try to pull the image)
            return {mode: endpoints.pop(mode, None) or {}, **endpoints}
        if net.driver not in BRIDGED_DRIVERS:
            raise InvalidParameter(f"network {mode} is not a bridge network")
        keep: dict[str, Any] = {}
        if "default" in endpoints:     # the CLI's name for the default network mode
            endpoints.setdefault("bridge", endpoints.pop("default"))
        entries = {mode: endpoints.pop(mode, None) or endpoints.pop(net.name, None) or {}}
        if config.get("MacAddress") and not entries[mode].get("MacAddress"):
            # before API 1.44 the MAC address came in Config, for the main network
            entries[mode] = {**entries[mode], "MacAddress": config["MacAddress"]}
        entries.update(endpoints)
        for name, settings in entries.items():
            try:
                target = self.networks.get(name)
            except NotFound:
                keep[name] = settings or {}      # its start will say it is not found
                continue
            if target.driver not in BRIDGED_DRIVERS:
                raise InvalidParameter("container cannot be disconnected from host network "
                                       "or connected to host network")
            self._check_endpoint_settings(target, settings or {})
            keep[target.name] = settings or {}
        resolve_bindings(host_config.get("PortBindings"), bool(host_config.get(
            "PublishAllPorts")), config.get("ExposedPorts"))
        return keep

    def _check_endpoint_settings(self, net: NetworkRecord, settings: dict[str, Any]) -> None:
        if settings.get("Aliases") and not net.user_defined:
            raise InvalidParameter("network-scoped aliases are only supported for "
                                   "user-defined networks")
        ipam = settings.get("IPAMConfig") or {}
        for raw in ipam.get("LinkLocalIPs") or []:
            try:
                ll = ipaddress.ip_address(str(raw))
            except ValueError:
                raise InvalidParameter(f"invalid link-local IP address: {raw}") from None
            if not ll.is_link_local:
                raise InvalidParameter(f"invalid link-local IP address: {raw}")
        for key, v6 in (("IPv4Address", False), ("IPv6Address", True)):
            ip = ipam.get(key)
            if not ip:
                continue
            if not net.user_defined:
                raise InvalidParameter("user-specified IP address is supported on "
                                       "user-defined networks only")
            sub = net.subnet6() if v6 else net.subnet4()
            if sub is None or not sub.user_subnet:
                raise InvalidParameter("user-specified IP address is supported only when "
                                       "connecting to networks with user configured subnets")
            try:
                addr = ipaddress.ip_address(ip)
            except ValueError:
                raise InvalidParameter(f"invalid IPv{6 if v6 else 4} address: {ip}") from None
            if addr not in ipaddress.ip_network(sub.subnet, strict=False):
                raise InvalidParameter(f"no configured subnet or ip-range contain the IP "
                                       f"address {ip}")
        for key, value in (settings.get("DriverOpts") or {}).items():
            if key == IFNAME_OPTION:
                name = str(value)
                if not name or len(name) > 15 or "/" in name or name.strip() != name:
                    raise InvalidParameter(f"invalid interface name {name!r} in {key}")
            elif key.startswith("com.docker.network."):
                # the bridge driver's own options that dockyard does not apply
                raise InvalidParameter(f"endpoint driver option {key} is not supported")
            # other keys belong to no driver here: kept and shown, as the
            # bridge driver does with options it does not know
        mac = settings.get("MacAddress")
        if mac:
            parts = mac.split(":")
            if len(parts) != 6 or not all(len(p) == 2 and all(
                    ch in "0123456789abcdefABCDEF" for ch in p) for p in parts):
                raise InvalidParameter(f"invalid MAC address: {mac}")

    # ------------------------------------------------------------ start, stop
    def _ordered(self, c: Container) -> list[tuple[NetworkRecord, dict[str, Any]]]:
        mode = primary_network(c.host_config)
        wanted = dict(c.networking_config.get("EndpointsConfig") or {})
        first = self.networks.get(mode)
        out = [(first, wanted.pop(first.name, None) or {})]
        for name in sorted(wanted):
            try:
                out.append((self.networks.get(name), wanted[name] or {}))
            except NotFound:
                raise NotFound(f"network {name} not found") from None
        return out

    def resolver(self, c: Container) -> str | None:
        """The address the container's resolv.conf points at: the name server
        of its first network that resolves names, if any (Docker's embedded DNS)."""
        if not wants_networks(c.host_config):
            return None
        for net, _ in self._ordered(c):
            s4 = net.subnet4()
            if net.dns_enabled and s4 is not None and s4.gateway:
                return s4.gateway
        return None

    def host_gateway(self) -> list[str]:
        """What `host-gateway` stands for: the default bridge's gateway."""
        try:
            s4 = self.networks.get("bridge").subnet4()
        except NotFound:
            return []
        return [s4.gateway] if s4 is not None and s4.gateway else []

    def joined(self, c: Container) -> list[NetworkRecord]:
        """The networks a running container is on, as Docker reports them in
        its `network connect` and `disconnect` events: `none` or `host` for
        those modes, nothing for a container sharing another's namespace."""
        mode = primary_network(c.host_config)
        if mode in SPECIAL_MODES:
            try:
                return [self.networks.get(mode)]
            except NotFound:
                return []
        return [net for ep in endpoints_of(c)
                if (net := self.networks.find(ep.network_id)) is not None]

    async def start(self, c: Container, netns: str, upstream: list[str]) -> list[Endpoint]:
        """Attach the container to its networks and publish its ports;
        `upstream` are the resolvers for names the networks do not know."""
        if not wants_networks(c.host_config):
            return []
        try:
            for i, (net, settings) in enumerate(self._ordered(c)):
                ep = await self.attach(c, net, netns, settings, ifname_for(settings, i),
                                       default_route=i == 0)
                ep.upstream = list(upstream)
                c.endpoints[net.name] = vars(ep)
            requests = resolve_bindings(c.host_config.get("PortBindings"),
                                        bool(c.host_config.get("PublishAllPorts")),
                                        c.config.get("ExposedPorts"))
            mappings = self.ports.take(c.id, requests) if requests else []
            c.ports = [vars(m) for m in mappings]
            await self.sync()
        except BaseException:
            await self.stop(c)
            raise
        return endpoints_of(c)

    async def attach(self, c: Container, net: NetworkRecord, netns: str,
                     settings: dict[str, Any], ifname: str, default_route: bool) -> Endpoint:
        if net.name in c.endpoints:
            raise Conflict(f"endpoint with name {c.name} already exists in network {net.name}")
        check_attachable(net)
        await self.plumbing.ensure_bridge(net)
        ipam = settings.get("IPAMConfig") or {}
        v4 = self.networks.allocator(net)
        if v4 is None:
            raise InvalidParameter(f"network {net.name} has no IPv4 subnet")
        addr = v4.allocate(ipam.get("IPv4Address") or None)
        ep = Endpoint(network_id=net.id, network_name=net.name,
                      endpoint_id=secrets.token_hex(32), ifname=ifname, ip=str(addr),
                      prefixlen=v4.subnet.prefixlen, gateway=str(v4.gateway),
                      aliases=list(settings.get("Aliases") or []),
                      requested_ip=ipam.get("IPv4Address") or "",
                      requested_mac=settings.get("MacAddress") or "",
                      link_local=[str(a) for a in ipam.get("LinkLocalIPs") or []])
        ep.host_ifname = links.host_ifname(ep.endpoint_id)
        ep.mac = ep.requested_mac or mac_for(ep.ip)
        v6 = self.networks.allocator(net, v6=True)
        try:
            if v6 is not None:
                addr6 = v6.allocate(ipam.get("IPv6Address") or None)
                ep.ip6, ep.prefixlen6, ep.gateway6 = str(addr6), v6.subnet.prefixlen, \
                    str(v6.gateway)
            if net.user_defined:
                ep.dns_names = [c.name, *ep.aliases, c.id[:12]]
            att = links.Attachment(
                bridge=net.bridge, host_ifname=ep.host_ifname, ifname=ifname,
                address=f"{ep.ip}/{ep.prefixlen}",
                gateway="" if net.internal else ep.gateway, mac=ep.mac, mtu=net.mtu,
                default_route=default_route,
                address6=f"{ep.ip6}/{ep.prefixlen6}" if ep.ip6 else "",
                gateway6="" if net.internal or not ep.ip6 else ep.gateway6,
                link_local=tuple(_link_local_cidr(a) for a in ep.link_local))
            try:
                await asyncio.to_thread(links.attach, netns, att)
            except links.BridgeMissing:
                await self.plumbing.ensure_bridge(net, check=True)
                await asyncio.to_thread(links.attach, netns, att)
        except BaseException:
            v4.release(addr)
            if v6 is not None and ep.ip6:
                v6.release(ipaddress.ip_address(ep.ip6))
            raise
        c.endpoints[net.name] = vars(ep)
        return ep

    async def detach(self, c: Container, net_name: str) -> None:
        raw = c.endpoints.pop(net_name, None)
        if raw is not None:
            await self._remove_endpoint(Endpoint.from_json(raw))

    async def _remove_endpoint(self, ep: Endpoint) -> None:
        """Delete the veth pair, then give the addresses back (not before:
        the next container must not meet the old interface on the bridge)."""
        try:
            await asyncio.to_thread(links.detach, ep.host_ifname)
        finally:
            net = self.networks.find(ep.network_id)
            if net is not None:
                for ip, v6 in ((ep.ip, False), (ep.ip6, True)):
                    alloc = self.networks.allocator(net, v6) if ip else None
                    if alloc is not None:
                        alloc.release(ipaddress.ip_address(ip))

    async def stop(self, c: Container, namespace_going: bool = False) -> None:
        """Give back every address, interface and port the container held.

        With `namespace_going` (the run ended: its namespace is removed next)
        the veth pairs are deleted in the background: the kernel takes
        10-20 ms to delete one, which `docker run --rm` need not wait for.
        Their addresses are given back once they are gone, and the pairs die
        with the namespace if the daemon does first."""
        self.ports.release(c.id)
        # flows DNATed to the old address must not outlive it (a UDP client
        # that keeps sending would never reach the next container)
        forget = [ip for ep in endpoints_of(c)[:1] for ip in (ep.ip, ep.ip6)
                  if ip and c.ports]
        c.ports = []
        gone = endpoints_of(c)
        c.endpoints.clear()
        await self.sync()
        for ip in forget:
            await asyncio.to_thread(conntrack.forget_address, ip)
        for ep in gone:
            if namespace_going:
                task = asyncio.create_task(self._remove_in_background(ep))
                self._removing.add(task)
                task.add_done_callback(self._removing.discard)
            else:
                await self._remove_endpoint(ep)

    async def _remove_in_background(self, ep: Endpoint) -> None:
        try:
            await self._remove_endpoint(ep)
        except Exception:
            log.exception("removing the interface %s failed", ep.host_ifname)

    async def settle(self) -> None:
        """Wait for the veth pairs still being deleted in the background."""
        while self._removing:
            await asyncio.gather(*list(self._removing), return_exceptions=True)

    def restore(self, c: Container) -> None:
        """A running container found at daemon start: claim what it holds."""
        for ep in endpoints_of(c):
            net = self.networks.find(ep.network_id)
            if net is not None:
                self.networks.claim(net, ep.ip)
                self.networks.claim(net, ep.ip6)
        self.ports.restore(c.id, [PortMapping(**p) for p in c.ports])

    async def sync(self) -> None:
        await self.plumbing.sync(self.networks, self.containers)
