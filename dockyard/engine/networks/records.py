"""Network and endpoint records: what is persisted, and Docker's shapes.

A network is written to `<data-root>/networks/<id>.json` when it is made
and whenever it changes.  An endpoint (a container's place on a network:
its address, MAC, aliases, interface) lives in the container's record
while the container runs, and is released when it stops, as Docker does:
a stopped container has no address.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dockyard.util.atomic import atomic_write
from dockyard.util.timefmt import rfc3339

BRIDGE_OPTIONS = {
    "name": "com.docker.network.bridge.name",
    "mtu": "com.docker.network.driver.mtu",
    "icc": "com.docker.network.bridge.enable_icc",
    "masquerade": "com.docker.network.bridge.enable_ip_masquerade",
    "host_binding": "com.docker.network.bridge.host_binding_ipv4",
    "default_bridge": "com.docker.network.bridge.default_bridge",
}


# drivers whose networks are Linux bridges here (an overlay network is one
# too: a swarm of one node has no other host to tunnel to)
BRIDGED_DRIVERS = ("bridge", "overlay")


@dataclass
class SubnetConfig:
    subnet: str
    gateway: str = ""
    ip_range: str = ""
    user_subnet: bool = False      # given by the user: --ip is allowed
    aux: dict[str, str] = field(default_factory=dict)   # --aux-address: never given out

    def to_json(self, show_gateway: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"Subnet": self.subnet}
        if self.ip_range:
            out["IPRange"] = self.ip_range
        if self.gateway and show_gateway:
            out["Gateway"] = self.gateway
        if self.aux:
            out["AuxiliaryAddresses"] = dict(self.aux)
        return out


@dataclass
class NetworkRecord:
    id: str
    name: str
    driver: str                    # "bridge", "overlay", "host", "null"
    created: int                   # ns
    bridge: str = ""               # the Linux bridge
    subnets: list[SubnetConfig] = field(default_factory=list)
    ipv6: bool = False
    internal: bool = False
    attachable: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    ipam_options: dict[str, str] | None = None
    mtu: int = 1500
    predefined: bool = False       # bridge, host, none: never removed
    scope: str = "local"           # "swarm": made in swarm mode, gone when the node leaves
    ingress: bool = False          # the swarm's routing-mesh network (no bridge here)

    @property
    def is_bridge(self) -> bool:
        """Made of a Linux bridge on this host (the swarm's ingress network
        has none: it is for services, which dockyard does not run)."""
        return self.driver in BRIDGED_DRIVERS and not self.ingress

    @property
    def takes_containers(self) -> bool:
        """Whether a container may be placed on it: swarm-scoped networks
        only when made attachable, as dockerd's."""
        return self.scope != "swarm" or (self.attachable and not self.ingress)

    @property
    def user_defined(self) -> bool:
        return not self.predefined

    @property
    def dns_enabled(self) -> bool:
        """Docker resolves container names on user-defined networks only."""
        return self.is_bridge and self.user_defined

    def subnet4(self) -> SubnetConfig | None:
        return next((s for s in self.subnets if ":" not in s.subnet), None)

    def subnet6(self) -> SubnetConfig | None:
        return next((s for s in self.subnets if ":" in s.subnet), None)

    # ------------------------------------------------------------------ io
    def save(self, directory: Path) -> None:
        atomic_write(directory / f"{self.id}.json",
                     json.dumps(asdict(self), separators=(",", ":")).encode(), 0o600)

    @classmethod
    def load(cls, path: Path) -> NetworkRecord:
        d = json.loads(path.read_text())
        d["subnets"] = [SubnetConfig(**s) for s in d.get("subnets") or []]
        return cls(**d)

    # -------------------------------------------------------------- shapes
    def to_json(self, containers: dict[str, Any]) -> dict[str, Any]:
        """Docker's Network object (inspect, and list entries)."""
        return {
            "Name": self.name,
            "Id": self.id,
            "Created": rfc3339(self.created),
            "Scope": self.scope,
            "Driver": self.driver,
            "EnableIPv4": self.driver == "bridge" or bool(self.subnets),
            "EnableIPv6": self.ipv6,
            "IPAM": {
                "Driver": "default",
                "Options": self.ipam_options,
                # the default bridge shows no gateway, as dockerd's
                "Config": [s.to_json(not self.predefined) for s in self.subnets],
            },
            "Internal": self.internal,
            "Attachable": self.attachable,
            "Ingress": self.ingress,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": False,
            "Containers": containers,
            "Options": dict(self.options),
            "Labels": dict(self.labels),
        }


@dataclass
class Endpoint:
    """A running container's place on one network."""

    network_id: str
    network_name: str
    endpoint_id: str
    ifname: str                    # eth0, eth1, ...
    host_ifname: str = ""          # the bridge-side veth end
    ip: str = ""                   # "172.18.0.2"
    prefixlen: int = 0
    gateway: str = ""
    ip6: str = ""
    prefixlen6: int = 0
    gateway6: str = ""
    mac: str = ""
    aliases: list[str] = field(default_factory=list)
    dns_names: list[str] = field(default_factory=list)
    requested_ip: str = ""         # IPAMConfig.IPv4Address
    requested_ip6: str = ""
    requested_mac: str = ""
    link_local: list[str] = field(default_factory=list)   # IPAMConfig.LinkLocalIPs
    upstream: list[str] = field(default_factory=list)   # resolvers for other names

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Endpoint:
        return cls(**d)
