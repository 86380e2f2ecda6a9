"""`Plumbing`: the kernel and DNS state of every network, kept equal to the records.

After any change (a network made or removed, a container started, stopped,
connected or disconnected) the firewall chains and the DNS configuration
are rendered again from the records and applied in one step each, under
one lock, so concurrent changes never interleave half-written rules.

The host is touched only once something uses a network: the chains and
their jumps are installed, and the default bridge made, when the first
container is attached.  `teardown_if_idle` (after a network prune) takes
all of it out again when no container holds an endpoint, so a host where
everything was removed and pruned keeps nothing of dockyard's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from pathlib import Path

from dockyard.engine.containers.record import Container
from dockyard.engine.networks import legacy_links
from dockyard.engine.networks.records import BRIDGE_OPTIONS, Endpoint, NetworkRecord
from dockyard.network import dns, firewall, links
from dockyard.network.firewall import BridgeRules, PortForward

log = logging.getLogger("dockyard.networks")


def endpoints_of(c: Container) -> list[Endpoint]:
    return [Endpoint.from_json(e) for e in c.endpoints.values()]


def _flag(net: NetworkRecord, key: str) -> bool:
    return net.options.get(BRIDGE_OPTIONS[key], "true").lower() not in ("false", "0")


class Plumbing:
    def __init__(self, dns_dir: Path, chains: firewall.Chains) -> None:
        self.dns = dns.DnsServer(dns_dir)
        self.chains = chains
        self._lock = asyncio.Lock()
        self._bridge_lock = asyncio.Lock()
        self._dns_stopped = False               # by this engine, with nothing to serve
        self._last_rules = ""
        self._installed: bool | None = None    # unknown until the first sync
        self._bridges: set[str] = set()         # known to exist


    async def ensure_bridge(self, net: NetworkRecord, check: bool = False) -> None:
        """Make the network's bridge if needed.  A bridge this engine made
        or saw is not looked at again (4 ms a time) unless `check`: attach
        says when it went missing."""
        if not net.is_bridge:
            return
        if net.bridge in self._bridges and not check:
            return
        # the first containers of a network start together: one makes the bridge
        async with self._bridge_lock:
            if net.bridge in self._bridges and not check:
                return
            addrs = []
            for s in net.subnets:
                prefix = s.subnet.split("/")[1]
                if s.gateway:
                    addrs.append(f"{s.gateway}/{prefix}")
            await asyncio.to_thread(links.ensure_bridge, net.bridge, addrs, net.mtu)
            self._bridges.add(net.bridge)

    async def remove_bridge(self, net: NetworkRecord) -> None:
        if not net.bridge:        # the swarm's ingress network has none here
            return
        self._bridges.discard(net.bridge)
        await asyncio.to_thread(links.delete_link, net.bridge)

    async def sync(self, networks: Iterable[NetworkRecord],
                   containers: Iterable[Container]) -> None:
        nets = [n for n in networks if n.is_bridge]
        running = [c for c in containers if c.endpoints]
        by_id = {n.id: n for n in nets}
        bridges = []
        for n in nets:
            s4 = n.subnet4()
            if s4 is not None:
                bridges.append(BridgeRules(n.bridge, s4.subnet, internal=n.internal,
                                           masquerade=_flag(n, "masquerade"),
                                           icc=_flag(n, "icc")))
        forwards = []
        dns_files: dict[str, list[dns.DnsRecord]] = {n.name: [] for n in nets
                                                      if n.dns_enabled}
        aliases = _link_aliases(running, by_id)
        for c in running:
            if not c.ports and dns_files.keys().isdisjoint(c.endpoints):
                continue    # no forward and no name: nothing of it to render
            eps = endpoints_of(c)
            primary = eps[0] if eps else None
            for p in c.ports:
                if primary is not None and primary.ip and primary.network_id in by_id:
                    forwards.append(PortForward(p["protocol"], _host_ip(p["host_ip"]),
                                                int(p["host_port"]), primary.ip,
                                                int(p["container_port"]),
                                                by_id[primary.network_id].bridge))
            for e in eps:
                net = by_id.get(e.network_id)
                if net is not None and net.dns_enabled:
                    dns_files[net.name].append(dns.DnsRecord(
                        c.id, [e.ip] if e.ip else [], [e.ip6] if e.ip6 else [],
                        [*e.dns_names, *aliases.get((c.id, net.name), ())], e.upstream))
        rules = firewall.render(bridges, forwards, self.chains)
        async with self._lock:
            if self._installed is None:    # rules an earlier run left are rewritten
                self._installed = await firewall.installed(self.chains)
            if running and not self._installed:
                await firewall.ensure_jumps(self.chains)
                for n in nets:
                    if n.predefined:    # the default bridge: host-gateway's address
                        await self.ensure_bridge(n)
                self._installed = True
            if self._installed and rules != self._last_rules:
                await firewall.apply(rules)
                self._last_rules = rules
            served = {name: dns.render_network(_gateways(by_id, name), (), recs)
                      for name, recs in dns_files.items()}
            if served or not self._dns_stopped:
                # (with no network to serve, once the server is stopped it stays so)
                await self.dns.update(served)
                self._dns_stopped = not served

    async def teardown_if_idle(self, networks: Iterable[NetworkRecord],
                               containers: Iterable[Container]) -> bool:
        """With no container attached anywhere, remove the bridges, the
        chains with their jumps and the name server; True if it did."""
        async with self._lock:
            if any(c.endpoints for c in containers):
                return False
            for n in networks:
                self._bridges.discard(n.bridge)
                if n.is_bridge and await asyncio.to_thread(links.link_exists, n.bridge):
                    await asyncio.to_thread(links.delete_link, n.bridge)
            await firewall.remove_all(self.chains)
            await self.dns.update({})
            self._dns_stopped = True
            self._installed = False
            self._last_rules = ""
        return True

    async def shutdown(self) -> None:
        """The daemon stops; rules and DNS stay, containers keep their networking."""


def _link_aliases(running: list[Container], by_id: dict[str, NetworkRecord]
                  ) -> dict[tuple[str, str], list[str]]:
    """`--link target:alias` on a user-defined network: the alias is one more
    name of the target on that network, from whenever both are on it (the
    target need not exist when the linking container starts).  The name
    server has no names per asking container, so every container of the
    network resolves the alias, not only the linking one as under Docker."""
    linking = [c for c in running if _has_links(c)]
    if not linking:
        return {}
    by_name = {c.name.lstrip("/"): c for c in running}
    out: dict[tuple[str, str], list[str]] = {}
    for c in linking:
        for e in endpoints_of(c):
            net = by_id.get(e.network_id)
            if net is None or not net.dns_enabled:
                continue
            for link in legacy_links.parse_links(legacy_links.wanted(c, net.name)):
                target = by_name.get(link.target) or next(
                    (o for o in running if o.id.startswith(link.target)), None)
                if target is not None and net.name in target.endpoints:
                    out.setdefault((target.id, net.name), []).append(link.alias)
    return out


def _has_links(c: Container) -> bool:
    """Any `--link` of the container, on any of its networks (what
    legacy_links.wanted reads), without parsing its endpoints."""
    return bool(c.host_config.get("Links")) or any(
        (settings or {}).get("Links")
        for settings in (c.networking_config.get("EndpointsConfig") or {}).values())


def _host_ip(ip: str) -> str:
    return "" if ip in ("", "0.0.0.0") else ip


def _gateways(by_id: dict[str, NetworkRecord], name: str) -> list[str]:
    net = next(n for n in by_id.values() if n.name == name)
    return [s.gateway for s in net.subnets if s.gateway]
