"""A one-node swarm's state: what `swarm init` records, and Docker's shapes.

`<data-root>/swarm/state.json` holds the cluster (its id, spec, join tokens,
address pool) and the one node (this engine, the manager and leader).  The
file exists exactly while the node is in a swarm.  Everything here but
`load` and `save` is pure: the addresses a request names are resolved by
a callable the service passes in.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dockyard.errors import InvalidParameter, NotImplementedByEngine
from dockyard.network.ipam import Pool
from dockyard.util.atomic import atomic_write
from dockyard.util.timefmt import rfc3339_nano

DEFAULT_PORT = 2377
DEFAULT_DATA_PATH_PORT = 4789
DEFAULT_POOL = "10.0.0.0/8"
DEFAULT_SUBNET_SIZE = 24

# swarmkit's defaults, as `docker swarm init` fills in what the request leaves out
DEFAULT_SPEC: dict[str, Any] = {
    "Name": "default",
    "Labels": {},
    "Orchestration": {"TaskHistoryRetentionLimit": 5},
    "Raft": {"SnapshotInterval": 10000, "KeepOldSnapshots": 0,
             "LogEntriesForSlowFollowers": 500, "ElectionTick": 10, "HeartbeatTick": 1},
    "Dispatcher": {"HeartbeatPeriod": 5_000_000_000},
    "CAConfig": {"NodeCertExpiry": 7_776_000_000_000_000},
    "TaskDefaults": {},
    "EncryptionConfig": {"AutoLockManagers": False},
}

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def new_object_id() -> str:
    """A swarm object's id: 25 lowercase base-36 characters, as swarmkit's."""
    n = secrets.randbits(128)
    out = []
    for _ in range(25):
        n, r = divmod(n, 36)
        out.append(_ALPHABET[r])
    return "".join(out)


def _token(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_join_token(cluster_secret: str) -> str:
    """`SWMTKN-1-<cluster part>-<role secret>`: the shape of Docker's
    tokens.  No node can join this swarm with one (joining is refused)."""
    return f"SWMTKN-1-{cluster_secret}-{_token(25)}"


@dataclass
class SwarmState:
    cluster_id: str
    node_id: str
    created: int                               # ns
    updated: int
    version: int
    spec: dict[str, Any]
    listen_addr: str                           # "0.0.0.0:2377"
    advertise_addr: str                        # "192.0.2.2:2377"
    data_path_addr: str
    data_path_port: int
    default_addr_pool: list[str] | None        # as given; None: swarmkit's 10.0.0.0/8
    subnet_size: int
    cluster_secret: str
    worker_token: str
    manager_token: str
    node_spec: dict[str, Any] = field(default_factory=lambda: {
        "Labels": {}, "Role": "manager", "Availability": "active"})
    node_version: int = 9
    node_updated: int = 0

    # ------------------------------------------------------------ io
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(directory / "state.json",
                     json.dumps(asdict(self), separators=(",", ":")).encode(), 0o600)

    @classmethod
    def load(cls, directory: Path) -> SwarmState | None:
        try:
            return cls(**json.loads((directory / "state.json").read_text()))
        except FileNotFoundError:
            return None

    # ------------------------------------------------------------ addresses
    def pools(self) -> tuple[Pool, ...]:
        """Where swarm-scoped networks without a subnet get theirs."""
        return tuple(Pool(ipaddress.ip_network(p), self.subnet_size)
                     for p in self.default_addr_pool or [DEFAULT_POOL])

    def advertise_ip(self) -> str:
        return self.advertise_addr.rsplit(":", 1)[0]

    # ------------------------------------------------------------ shapes
    def cluster_json(self, with_tokens: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ID": self.cluster_id,
            "Version": {"Index": self.version},
            "CreatedAt": rfc3339_nano(self.created),
            "UpdatedAt": rfc3339_nano(self.updated),
            "Spec": copy.deepcopy(self.spec),
            # no certificate authority: no node ever talks to another
            "TLSInfo": {},
            "RootRotationInProgress": False,
            "DefaultAddrPool": list(self.default_addr_pool or [DEFAULT_POOL]),
            "SubnetSize": self.subnet_size,
            "DataPathPort": self.data_path_port,
        }
        if with_tokens:
            out["JoinTokens"] = {"Worker": self.worker_token, "Manager": self.manager_token}
        return out

    def info_json(self) -> dict[str, Any]:
        return {"NodeID": self.node_id, "NodeAddr": self.advertise_ip(),
                "LocalNodeState": "active", "ControlAvailable": True, "Error": "",
                "RemoteManagers": [{"NodeID": self.node_id, "Addr": self.advertise_addr}],
                "Nodes": 1, "Managers": 1, "Cluster": self.cluster_json(with_tokens=False)}

    def node_json(self, description: dict[str, Any]) -> dict[str, Any]:
        return {
            "ID": self.node_id,
            "Version": {"Index": self.node_version},
            "CreatedAt": rfc3339_nano(self.created),
            "UpdatedAt": rfc3339_nano(self.node_updated or self.created),
            "Spec": copy.deepcopy(self.node_spec),
            "Description": {**description, "TLSInfo": {}},
            "Status": {"State": "ready", "Addr": self.advertise_ip()},
            "ManagerStatus": {"Leader": True, "Reachability": "reachable",
                              "Addr": self.advertise_addr},
        }


# ---------------------------------------------------------------- requests
Resolver = Callable[[str], "str | None"]     # an interface's IPv4, or None


def _host_port(text: str, default_port: int, what: str,
               resolve: Resolver) -> tuple[str, int]:
    """`ADDR[:PORT]` or `IFACE[:PORT]` into an address and a port."""
    host, port = text, default_port
    if text.count(":") == 1:
        host, _, p = text.partition(":")
        if not p.isdigit() or not 0 < int(p) < 65536:
            raise InvalidParameter(f'invalid {what} "{text}": invalid port "{p}"')
        port = int(p)
    if not host:
        raise InvalidParameter(f'invalid {what} "{text}": an address or interface is needed')
    try:
        return str(ipaddress.ip_address(host.strip("[]"))), port
    except ValueError:
        pass
    addr = resolve(host)
    if addr is None:
        raise InvalidParameter(f'invalid {what} "{text}": it is neither an IP address nor '
                               "an interface with an IPv4 address")
    return addr, port


def check_spec(raw: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A swarm spec with swarmkit's defaults for what it leaves empty (on
    `base` for an update); what this one-node swarm cannot do is refused."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidParameter("invalid JSON: Spec must be an object")
    spec = copy.deepcopy(base if base is not None else DEFAULT_SPEC)
    for key, value in raw.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            merged = dict(spec[key])
            # zero values mean "the default", as in swarmkit
            merged.update({k: v for k, v in value.items() if v not in (None, 0, "")})
            spec[key] = merged
        elif value is not None:
            spec[key] = value
    if not isinstance(spec.get("Name"), str) or not spec["Name"]:
        spec["Name"] = "default"
    if not isinstance(spec.get("Labels"), dict):
        raise InvalidParameter("invalid JSON: Spec.Labels must be an object")
    enc = spec.get("EncryptionConfig") or {}
    if enc.get("AutoLockManagers"):
        raise NotImplementedByEngine(
            "autolock is not supported by dockyard: its one-node swarm keeps no raft log "
            "or keys to lock")
    ca = spec.get("CAConfig") or {}
    if ca.get("ExternalCAs") or ca.get("SigningCACert") or ca.get("SigningCAKey") or \
            ca.get("ForceRotate"):
        raise NotImplementedByEngine(
            "certificate authority settings are not supported by dockyard: its one-node "
            "swarm has no certificate authority (no other node ever connects)")
    return spec


def check_node_spec(raw: Any) -> dict[str, Any]:
    """A node's new spec: labels and availability are kept and shown (with
    no tasks, draining or pausing the node has nothing to move); the one
    node stays a manager."""
    if not isinstance(raw, dict):
        raise InvalidParameter("invalid JSON: the node spec must be an object")
    labels = raw.get("Labels")
    labels = {} if labels is None else labels
    if not isinstance(labels, dict):
        raise InvalidParameter("invalid JSON: Labels must be an object")
    role = raw.get("Role") or "manager"
    if role not in ("manager", "worker"):
        raise InvalidParameter(f"invalid role '{role}': manager or worker")
    if role == "worker":
        raise InvalidParameter("rpc error: code = FailedPrecondition desc = attempting to "
                               "demote the last manager of the swarm")
    availability = raw.get("Availability") or "active"
    if availability not in ("active", "pause", "drain"):
        raise InvalidParameter(f"invalid availability '{availability}': active, pause or "
                               "drain")
    out: dict[str, Any] = {"Labels": {str(k): str(v) for k, v in labels.items()},
                           "Role": role, "Availability": availability}
    if raw.get("Name"):
        out["Name"] = str(raw["Name"])
    return out


def new_state(body: Any, resolve: Resolver, default_source: Callable[[], str | None],
              now: int | None = None) -> SwarmState:
    """The state `POST /swarm/init` makes from Docker's InitRequest."""
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON: the init request must be an object")
    listen = body.get("ListenAddr") or f"0.0.0.0:{DEFAULT_PORT}"
    if not isinstance(listen, str):
        raise InvalidParameter("invalid JSON: ListenAddr must be a string")
    listen_ip, listen_port = _host_port(listen, DEFAULT_PORT, "listen address", resolve)
    advertise = body.get("AdvertiseAddr") or ""
    if not isinstance(advertise, str):
        raise InvalidParameter("invalid JSON: AdvertiseAddr must be a string")
    if advertise:
        adv_ip, adv_port = _host_port(advertise, listen_port, "advertise address", resolve)
    elif not ipaddress.ip_address(listen_ip).is_unspecified:
        adv_ip, adv_port = listen_ip, listen_port
    else:
        found = default_source()
        if found is None:
            raise InvalidParameter("could not find the system's IP address - specify one "
                                   "with --advertise-addr")
        adv_ip, adv_port = found, listen_port
    data_path = body.get("DataPathAddr") or ""
    if data_path:
        if not isinstance(data_path, str):
            raise InvalidParameter("invalid JSON: DataPathAddr must be a string")
        data_path, _ = _host_port(data_path, 0, "data path address", resolve)
    dpp = body.get("DataPathPort") or 0
    if not isinstance(dpp, int) or isinstance(dpp, bool):
        raise InvalidParameter("invalid JSON: DataPathPort must be a number")
    if dpp and not 1024 <= dpp <= 49151:
        raise InvalidParameter(f"data path port {dpp} is not in the valid range 1024-49151")
    pools_raw = body.get("DefaultAddrPool") or None
    size = body.get("SubnetSize") or DEFAULT_SUBNET_SIZE
    if not isinstance(size, int) or isinstance(size, bool):
        raise InvalidParameter("invalid JSON: SubnetSize must be a number")
    pools: list[str] | None = None
    if pools_raw is not None:
        if not isinstance(pools_raw, list):
            raise InvalidParameter("invalid JSON: DefaultAddrPool must be a list")
        pools = []
        for p in pools_raw:
            try:
                net = ipaddress.ip_network(str(p), strict=False)
            except ValueError:
                raise InvalidParameter(f"invalid default address pool {p}: invalid CIDR "
                                       "address") from None
            if net.version != 4:
                raise InvalidParameter(f"invalid default address pool {p}: only IPv4 pools "
                                       "are supported")
            pools.append(str(net))
    for p in pools or [DEFAULT_POOL]:
        if not ipaddress.ip_network(p).prefixlen <= size <= 29:
            raise InvalidParameter(f"invalid subnet size {size} for the default address "
                                   f"pool {p}: it must be between the pool's prefix length "
                                   "and 29")
    spec = check_spec(body.get("Spec"))
    now = time.time_ns() if now is None else now
    cluster_secret = _token(50)
    return SwarmState(
        cluster_id=new_object_id(), node_id=new_object_id(), created=now, updated=now,
        version=10, spec=spec, listen_addr=f"{listen_ip}:{listen_port}",
        advertise_addr=f"{adv_ip}:{adv_port}", data_path_addr=data_path,
        data_path_port=dpp or DEFAULT_DATA_PATH_PORT, default_addr_pool=pools,
        subnet_size=size, cluster_secret=cluster_secret,
        worker_token=new_join_token(cluster_secret),
        manager_token=new_join_token(cluster_secret))
