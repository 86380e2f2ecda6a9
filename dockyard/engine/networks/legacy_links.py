"""`--link` on the default bridge: Docker's legacy links.

A link `name:alias` gives the container an /etc/hosts line for the linked
container (`<ip>\t<alias> <id12> <name>`) and Docker's link environment
variables (`ALIAS_NAME`, `ALIAS_PORT`, `ALIAS_PORT_<port>_<PROTO>[_ADDR,
_PORT, _PROTO]`, and the linked container's own variables as
`ALIAS_ENV_<var>`).  The linked container must be running, on the default
bridge.  On a user-defined network a link is instead an extra DNS name the
container resolves the other one by, which the network's name server does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dockyard.engine.containers.record import Container
from dockyard.engine.containers.store import ContainerStore
from dockyard.errors import InvalidParameter, NotFound

_ENV_NAME = re.compile(r"[^A-Za-z0-9]")
_DOCKER_ENV = ("HOME", "HOSTNAME", "PATH")


@dataclass(frozen=True)
class Link:
    target: str                    # the linked container's name (or id)
    alias: str


def parse_links(values: list[str] | None) -> list[Link]:
    """`name:alias`, `name` (alias = name), or Docker's stored `/name:/me/alias`."""
    out = []
    for v in values or []:
        name, _, alias = v.partition(":")
        name = name.lstrip("/")
        alias = alias.rsplit("/", 1)[-1] if alias else name
        if not name:
            raise InvalidParameter(f"invalid link format: {v}")
        out.append(Link(name, alias))
    return out


def wanted(c: Container, network: str) -> list[str]:
    """The container's links: HostConfig.Links, and on a user-defined network
    the EndpointsConfig entry's Links (where the CLI puts --link there)."""
    ep = (c.networking_config.get("EndpointsConfig") or {}).get(network) or {}
    return [*(c.host_config.get("Links") or []), *(ep.get("Links") or [])]


def resolve(store: ContainerStore, c: Container, network: str) -> list[tuple[Link, Container]]:
    """The linked containers, checked as dockerd checks them at start."""
    out = []
    for link in parse_links(wanted(c, network)):
        try:
            other = store.get(link.target)
        except NotFound:
            raise InvalidParameter(f"could not get container for {link.target}") from None
        if not other.state.running:
            raise InvalidParameter(f"cannot link to a non running container: /{other.name} "
                                   f"AS /{c.name}/{link.alias}")
        if network not in other.endpoints:
            raise InvalidParameter(f"cannot link to /{other.name}, as it does not belong to "
                                   f"the network {network}")
        out.append((link, other))
    return out


def _on_default_bridge(c: Container) -> bool:
    return (c.host_config.get("NetworkMode") or "default") in ("default", "bridge")


def link_names(store: ContainerStore) -> dict[str, list[str]]:
    """Container id -> the names legacy links give it (`/linker/alias`),
    which `docker ps` lists after the container's own name."""
    out: dict[str, list[str]] = {}
    for c in store:
        if not _on_default_bridge(c):
            continue
        for link in parse_links(c.host_config.get("Links")):
            try:
                target = store.get(link.target)
            except NotFound:
                continue
            out.setdefault(target.id, []).append(f"/{c.name}/{link.alias}")
    return {k: sorted(v) for k, v in out.items()}


def without_link(c: Container, alias: str) -> list[str] | None:
    """The container's HostConfig.Links less the link called `alias`, or
    None if it has no such link."""
    links = list(c.host_config.get("Links") or [])
    keep = [v for v, link in zip(links, parse_links(links), strict=True) if link.alias != alias]
    return keep if len(keep) < len(links) else None


def hosts_entries(links: list[tuple[Link, Container]], network: str) -> list[str]:
    """Extra /etc/hosts entries in the form ExtraHosts takes (`name:ip`)."""
    out = []
    for link, other in links:
        ip = other.endpoints[network]["ip"]
        for n in dict.fromkeys([link.alias, other.id[:12], other.name]):
            out.append(f"{n}:{ip}")
    return out


def environment(links: list[tuple[Link, Container]], network: str, me: Container
                ) -> list[str]:
    """Docker's link environment variables."""
    env: list[str] = []
    for link, other in links:
        ip = other.endpoints[network]["ip"]
        prefix = _ENV_NAME.sub("_", link.alias).upper()
        env.append(f"{prefix}_NAME=/{me.name}/{link.alias}")
        ports = sorted(_exposed(other.config), key=lambda p: (p[0], p[1]))
        if ports:
            port, proto = ports[0]
            env.append(f"{prefix}_PORT={proto}://{ip}:{port}")
        for port, proto in ports:
            key = f"{prefix}_PORT_{port}_{proto.upper()}"
            env += [f"{key}={proto}://{ip}:{port}", f"{key}_ADDR={ip}", f"{key}_PORT={port}",
                    f"{key}_PROTO={proto}"]
        for item in other.config.get("Env") or []:
            var, eq, value = item.partition("=")
            if eq and var not in _DOCKER_ENV:
                env.append(f"{prefix}_ENV_{var}={value}")
    return env


def _exposed(config: dict[str, Any]) -> list[tuple[int, str]]:
    out = []
    for key in config.get("ExposedPorts") or {}:
        port, _, proto = key.partition("/")
        if port.isdigit():
            out.append((int(port), proto or "tcp"))
    return out
