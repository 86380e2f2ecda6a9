"""A container's networking in Docker's shapes: inspect's NetworkSettings,
the Ports of `docker ps` and the network filter."""

from __future__ import annotations

from typing import Any

from dockyard.engine.containers.record import Container
from dockyard.engine.networks.endpoints import primary_network
from dockyard.engine.networks.ports import PortMapping, exposed_port, ports_shape
from dockyard.engine.networks.records import Endpoint
from dockyard.engine.networks.store import NetworkStore
from dockyard.errors import DockyardError

API_LEGACY_TOP_LEVEL = (1, 52)
API_ALIASES_WITH_ID = (1, 45)


def _endpoint_settings(settings: dict[str, Any], ep: Endpoint | None, network_id: str,
                       api: tuple[int, int], c: Container, user_defined: bool
                       ) -> dict[str, Any]:
    ipam = settings.get("IPAMConfig") or None
    aliases = list(settings.get("Aliases") or []) or None
    # as dockerd's inspect before API 1.45: the short id and the hostname are
    # aliases on every user-defined network of the container, from its
    # creation on
    if user_defined and api < API_ALIASES_WITH_ID:
        extra = [c.id[:12], c.config.get("Hostname") or ""]
        aliases = list(dict.fromkeys([*(aliases or []), *filter(None, extra)]))
    return {
        "IPAMConfig": ipam, "Links": settings.get("Links") or None, "Aliases": aliases,
        "MacAddress": ep.mac if ep else (settings.get("MacAddress") or ""),
        "DriverOpts": settings.get("DriverOpts") or None, "GwPriority": 0,
        "NetworkID": network_id, "EndpointID": ep.endpoint_id if ep else "",
        "Gateway": ep.gateway if ep else "", "IPAddress": ep.ip if ep else "",
        "IPPrefixLen": ep.prefixlen if ep else 0,
        "IPv6Gateway": ep.gateway6 if ep else "",
        "GlobalIPv6Address": ep.ip6 if ep else "",
        "GlobalIPv6PrefixLen": ep.prefixlen6 if ep else 0,
        "DNSNames": (ep.dns_names or None) if ep else None,
    }


def published(c: Container) -> list[PortMapping]:
    return [PortMapping(**p) for p in c.ports]


def networks_shape(c: Container, networks: NetworkStore, api: tuple[int, int]
                   ) -> dict[str, Any]:
    """NetworkSettings.Networks: one entry per network the container is on."""
    mode = primary_network(c.host_config)
    out_nets: dict[str, Any] = {}
    if mode.startswith("container:"):
        pass
    elif mode in ("host", "none"):
        net_id = _id_of(networks, mode)
        out_nets[mode] = _endpoint_settings({}, None, net_id, api, c, False)
    else:
        wanted = dict(c.networking_config.get("EndpointsConfig") or {})
        # the network mode's own entry goes with a disconnect from it (or the
        # swarm's networks with a leave), as in dockerd; a record without
        # endpoint settings at all still shows it
        listed = "EndpointsConfig" in c.networking_config
        names = [n for n in dict.fromkeys([mode, *wanted, *c.endpoints])
                 if not listed or n in wanted or n in c.endpoints]
        for name in names:
            raw = c.endpoints.get(name)
            ep = Endpoint.from_json(raw) if raw else None
            net_id = ep.network_id if ep else _id_of(networks, name)
            user_defined = name not in ("bridge",)
            out_nets[name] = _endpoint_settings(wanted.get(name) or {}, ep, net_id, api, c,
                                                user_defined)
    return out_nets


def network_settings(c: Container, networks: NetworkStore, netns_path: str,
                     api: tuple[int, int]) -> dict[str, Any]:
    mode = primary_network(c.host_config)
    running = c.state.running
    out_nets = networks_shape(c, networks, api)
    ns: dict[str, Any] = {
        "SandboxID": c.id if running else "",
        "SandboxKey": netns_path if running and mode != "host" else "",
        "Ports": ports_shape(c.config.get("ExposedPorts"), published(c)) if running else {},
        "Networks": out_nets,
    }
    if api < API_LEGACY_TOP_LEVEL:
        bridge = out_nets.get("bridge") or {}
        ns.update({
            "Bridge": "", "HairpinMode": False, "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0, "SecondaryIPAddresses": None,
            "SecondaryIPv6Addresses": None,
            "EndpointID": bridge.get("EndpointID", ""), "Gateway": bridge.get("Gateway", ""),
            "GlobalIPv6Address": bridge.get("GlobalIPv6Address", ""),
            "GlobalIPv6PrefixLen": bridge.get("GlobalIPv6PrefixLen", 0),
            "IPAddress": bridge.get("IPAddress", ""),
            "IPPrefixLen": bridge.get("IPPrefixLen", 0),
            "IPv6Gateway": bridge.get("IPv6Gateway", ""),
            "MacAddress": bridge.get("MacAddress", ""),
        })
    return ns


def _id_of(networks: NetworkStore, name: str) -> str:
    try:
        return networks.get(name).id
    except DockyardError:
        return ""


def ps_ports(c: Container) -> list[dict[str, Any]]:
    """`docker ps` Ports: published ports with their host side, exposed ones without."""
    out: list[dict[str, Any]] = []
    done = set()
    for m in published(c):
        out.append({"IP": m.host_ip, "PrivatePort": m.container_port,
                    "PublicPort": m.host_port, "Type": m.protocol})
        done.add((m.container_port, m.protocol))
    for key in c.config.get("ExposedPorts") or {}:
        parsed = exposed_port(key)
        if parsed is not None and parsed not in done:
            done.add(parsed)
            out.append({"PrivatePort": parsed[0], "Type": parsed[1]})
    return out


def on_network(c: Container, networks: NetworkStore, refs: list[str]) -> bool:
    """The `network` filter of `docker ps`: by name or id of any network it is on."""
    names = {primary_network(c.host_config), *(c.networking_config.get("EndpointsConfig")
                                                or {}), *c.endpoints}
    ids = {_id_of(networks, n) for n in names}
    return any(r in names or any(i.startswith(r) for i in ids if i) for r in refs)
