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

from dataclasses import dataclass
from typing import Any

from dockyard.engine.containers.record import Container
from dockyard.engine.containers.store import ContainerStore
from dockyard.errors import InvalidParameter, NotFound

# variables docker build sets, not passed on (HOSTNAME is not in Config.Env)
_BUILD_ENV = ("HOME", "PATH")


@dataclass(frozen=True)
class Link:
    target: str                    # the linked container's name (or id)
    alias: str


def parse_links(values: list[str] | None) -> list[Link]:
    """`name:alias`, `name` (alias = name), or Docker's stored `/name:/me/alias`;
    Docker's texts (opts.ParseLink) for an empty or over-long one."""
    out = []
    for v in values or []:
        if not v:
            raise InvalidParameter("empty string specified for links")
        if v.count(":") > 1:
            raise InvalidParameter(f"bad format for links: {v}")
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
    """The linked containers, checked as dockerd checks them (its texts)."""
    out = []
    for link in parse_links(wanted(c, network)):
        try:
            other = store.get(link.target)
        except (NotFound, InvalidParameter) as e:
            raise InvalidParameter(f"could not get container for {link.target}: "
                                   f"{e.message}") from None
        if not other.state.running:
            raise InvalidParameter(f"Cannot link to a non running container: /{other.name} "
                                   f"AS /{c.name}/{link.alias}")
        if network not in other.endpoints:
            raise InvalidParameter(f"Cannot link to /{other.name}, as it does not belong to "
                                   "the default network")
        out.append((link, other))
    return out


def _on_default_bridge(c: Container) -> bool:
    return (c.host_config.get("NetworkMode") or "default") in ("default", "bridge")


def _readable(values: list[str] | None) -> list[tuple[str, Link]]:
    """The links that parse, each with its text: one the create request let
    through and dockerd would refuse fails its own container's start, not
    every `docker ps`."""
    out = []
    for v in values or []:
        try:
            out += [(v, link) for link in parse_links([v])]
        except InvalidParameter:
            continue
    return out


def link_names(store: ContainerStore) -> dict[str, list[str]]:
    """Container id -> the names legacy links give it (`/linker/alias`),
    which `docker ps` lists after the container's own name."""
    out: dict[str, list[str]] = {}
    for c in store:
        if not _on_default_bridge(c):
            continue
        for _, link in _readable(c.host_config.get("Links")):
            try:
                target = store.get(link.target)
            except (NotFound, InvalidParameter):
                continue
            out.setdefault(target.id, []).append(f"/{c.name}/{link.alias}")
    return {k: sorted(v) for k, v in out.items()}


def without_link(c: Container, alias: str) -> list[str] | None:
    """The container's HostConfig.Links less the link called `alias`, or
    None if it has no such link."""
    links = list(c.host_config.get("Links") or [])
    drop = {v for v, link in _readable(links) if link.alias == alias}
    keep = [v for v in links if v not in drop]
    return keep if len(keep) < len(links) else None


def hosts_entries(links: list[tuple[Link, Container]], network: str) -> list[str]:
    """Extra /etc/hosts entries in the form ExtraHosts takes (`name:ip`): as
    dockerd writes a link, the alias, the linked container's hostname and, if
    it is not the alias, its name, for each of its addresses."""
    out = []
    for link, other in links:
        ep = other.endpoints[network]
        hostname = other.config.get("Hostname") or other.id[:12]
        names = dict.fromkeys([link.alias, hostname, other.name])
        for ip in (ep["ip"], ep.get("ip6") or ""):
            out += [f"{n}:{ip}" for n in names if ip]
    return out


def environment(links: list[tuple[Link, Container]], network: str, me: Container
                ) -> list[str]:
    """Docker's link environment variables, in its order (links.ToEnv)."""
    env: list[str] = []
    for link, other in links:
        env += _link_env(link.alias.upper().replace("-", "_"), f"/{me.name}/{link.alias}",
                         other.endpoints[network]["ip"], other.config)
    return env


def _link_env(alias: str, name: str, ip: str, config: dict[str, Any]) -> list[str]:
    # tcp ports first, then the other protocols; by number within a protocol
    ports = sorted(_exposed(config), key=lambda p: (p[1] != "tcp", p[1], p[0]))
    env: list[str] = []
    if ports:
        env.append(f"{alias}_PORT={ports[0][1]}://{ip}:{ports[0][0]}")
    start = end = ports[0] if ports else (0, "")
    for i, (port, proto) in enumerate(ports):
        key = f"{alias}_PORT_{port}_{proto.upper()}"
        env += [f"{key}={proto}://{ip}:{port}", f"{key}_ADDR={ip}", f"{key}_PORT={port}",
                f"{key}_PROTO={proto}"]
        if (port, proto) == (end[0] + 1, end[1]):
            end = (port, proto)      # a range of consecutive ports goes on
            if i < len(ports) - 1:
                continue
        if end != start:
            key = f"{alias}_PORT_{start[0]}_{start[1].upper()}"
            env += [f"{key}_START={start[1]}://{ip}:{start[0]}", f"{key}_PORT_START={start[0]}",
                    f"{key}_END={end[1]}://{ip}:{end[0]}", f"{key}_PORT_END={end[0]}"]
        start = end = (port, proto)
    env.append(f"{alias}_NAME={name}")
    for item in config.get("Env") or []:
        var, eq, value = item.partition("=")
        if eq and var not in _BUILD_ENV:
            env.append(f"{alias}_ENV_{var}={value}")
    return env


def _exposed(config: dict[str, Any]) -> list[tuple[int, str]]:
    """The exposed ports as dockerd's port type holds them (one of each)."""
    out: dict[tuple[int, str], None] = {}
    for key in config.get("ExposedPorts") or {}:
        port, _, proto = key.partition("/")
        if port.isascii() and port.isdigit():
            out[(int(port), (proto or "tcp").lower())] = None
    return list(out)
