"""The engine's iptables rules: masquerade, isolation, published ports.

All of dockyard's rules live in its own chains, rewritten whole from the
current networks and port mappings by one `iptables-restore --noflush`
(declaring a chain in the input empties it first), so a change costs one
process whatever it is, and what the kernel holds is always exactly what
the state says.  The built-in chains only get a jump into ours, added once.

filter
  DOCKYARD-FORWARD      jumped from FORWARD
    -> DOCKYARD-ISOLATION-1/2: nothing passes from one dockyard bridge to another
    internal networks: nothing in or out of the bridge
    replies to connections from the bridge, published ports, traffic inside
    a bridge and out of it are accepted; anything else into a bridge is
    dropped (a host with FORWARD policy ACCEPT must not route to containers)
nat
  DOCKYARD-DNAT         jumped from PREROUTING and OUTPUT for local addresses:
                        published ports -> container address:port
  DOCKYARD-POSTROUTING  jumped from POSTROUTING: masquerade of what leaves a
                        bridge's subnet, of host-originated (127.0.0.1) traffic
                        DNATed into a bridge, and of a container reaching its
                        own published port

The rendering is pure (`render`); `apply` and `ensure_jumps` run iptables.
Loopback DNAT needs `net.ipv4.conf.<bridge>.route_localnet=1` (set where the
bridge is made).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dockyard.errors import SystemError_

DEFAULT_PREFIX = "DOCKYARD"


@dataclass(frozen=True)
class Chains:
    """The chain names of one engine.  Engines with different data roots on
    one host each keep their own chains, so one never rewrites the other's."""

    prefix: str = DEFAULT_PREFIX

    @property
    def forward(self) -> str:
        return f"{self.prefix}-FORWARD"

    @property
    def isolation1(self) -> str:
        return f"{self.prefix}-ISOLATION-1"

    @property
    def isolation2(self) -> str:
        return f"{self.prefix}-ISOLATION-2"

    @property
    def dnat(self) -> str:
        return f"{self.prefix}-DNAT"

    @property
    def postrouting(self) -> str:
        return f"{self.prefix}-POSTROUTING"

    def jumps(self) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
        """(table, built-in chain, rule spec) added once at start."""
        return (
            ("filter", "FORWARD", ("-j", self.forward)),
            ("nat", "PREROUTING", ("-m", "addrtype", "--dst-type", "LOCAL", "-j", self.dnat)),
            ("nat", "OUTPUT", ("-m", "addrtype", "--dst-type", "LOCAL", "-j", self.dnat)),
            ("nat", "POSTROUTING", ("-j", self.postrouting)),
        )


@dataclass(frozen=True)
class BridgeRules:
    """What one bridge network asks of the firewall."""

    bridge: str
    subnet: str                    # IPv4 CIDR
    internal: bool = False         # no route in or out
    masquerade: bool = True        # com.docker.network.bridge.enable_ip_masquerade
    icc: bool = True               # com.docker.network.bridge.enable_icc


@dataclass(frozen=True)
class PortForward:
    """One published port: host_ip:host_port -> container_ip:container_port."""

    protocol: str                  # "tcp" or "udp"
    host_ip: str                   # "" for every host address
    host_port: int
    container_ip: str
    container_port: int
    bridge: str


def render(bridges: Sequence[BridgeRules], forwards: Iterable[PortForward],
           chains: Chains = Chains()) -> str:
    """The `iptables-restore --noflush` input for the whole state."""
    fwd = list(forwards)
    fw, iso1, iso2 = chains.forward, chains.isolation1, chains.isolation2
    dnat, post = chains.dnat, chains.postrouting
    f: list[str] = ["*filter", f":{fw} - [0:0]", f":{iso1} - [0:0]",
                    f":{iso2} - [0:0]"]
    f.append(f"-A {fw} -j {iso1}")
    for b in bridges:
        f.append(f"-A {iso1} -i {b.bridge} ! -o {b.bridge} -j {iso2}")
        f.append(f"-A {iso2} -o {b.bridge} -j DROP")
    f.append(f"-A {iso1} -j RETURN")
    f.append(f"-A {iso2} -j RETURN")
    for b in bridges:
        br = b.bridge
        if b.internal:
            f.append(f"-A {fw} -i {br} ! -o {br} -j DROP")
            f.append(f"-A {fw} -o {br} ! -i {br} -j DROP")
        f.append(f"-A {fw} -o {br} -m conntrack --ctstate RELATED,ESTABLISHED "
                 "-j ACCEPT")
        for p in fwd:
            if p.bridge == br and not b.internal:
                f.append(f"-A {fw} -d {p.container_ip}/32 ! -i {br} -o {br} "
                         f"-p {p.protocol} -m {p.protocol} --dport {p.container_port} "
                         "-j ACCEPT")
        f.append(f"-A {fw} -i {br} -o {br} -j {'ACCEPT' if b.icc else 'DROP'}")
        if not b.internal:
            f.append(f"-A {fw} -i {br} ! -o {br} -j ACCEPT")
        f.append(f"-A {fw} -o {br} -j DROP")
    f.append("COMMIT")
    n: list[str] = ["*nat", f":{dnat} - [0:0]", f":{post} - [0:0]"]
    for b in bridges:
        if b.masquerade and not b.internal:
            n.append(f"-A {post} -s {b.subnet} ! -o {b.bridge} -j MASQUERADE")
        n.append(f"-A {post} -o {b.bridge} -m addrtype --src-type LOCAL "
                 "-j MASQUERADE")
    internal = {b.bridge for b in bridges if b.internal}
    for p in fwd:
        if p.bridge in internal:
            continue
        dest = f"-d {p.host_ip}/32 " if p.host_ip else ""
        n.append(f"-A {dnat} {dest}-p {p.protocol} -m {p.protocol} --dport {p.host_port} "
                 f"-j DNAT --to-destination {p.container_ip}:{p.container_port}")
        n.append(f"-A {post} -s {p.container_ip}/32 -d {p.container_ip}/32 "
                 f"-p {p.protocol} -m {p.protocol} --dport {p.container_port} -j MASQUERADE")
    n.append("COMMIT")
    return "\n".join(f + n) + "\n"


async def _run(args: list[str], stdin: bytes | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *args, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate(stdin)
    return proc.returncode or 0, err.decode(errors="replace").strip()


async def apply(rules: str) -> None:
    code, err = await _run(["iptables-restore", "--noflush", "--wait"], rules.encode())
    if code != 0:
        raise SystemError_(f"applying the network rules failed: {err}")


async def ensure_jumps(chains: Chains = Chains()) -> None:
    """Create the chains if needed and jump into them from the built-in ones
    (first in FORWARD, so a FORWARD policy of DROP set by another engine does
    not stop dockyard's traffic); idempotent."""
    await apply(render([], [], chains))     # makes the chains exist (empty)
    for table, chain, spec in chains.jumps():
        code, _ = await _run(["iptables", "--wait", "-t", table, "-C", chain, *spec])
        if code != 0:
            code, err = await _run(["iptables", "--wait", "-t", table, "-I", chain, "1",
                                    *spec])
            if code != 0:
                raise SystemError_(f"adding the {chain} jump failed: {err}")


async def installed(chains: Chains = Chains()) -> bool:
    """Whether this engine's chains exist (left by an earlier run)."""
    code, _ = await _run(["iptables", "--wait", "-t", "filter", "-n", "-L", chains.forward])
    return code == 0


async def remove_all(chains: Chains = Chains()) -> None:
    """Take every rule and chain of one engine out."""
    for table, chain, spec in chains.jumps():
        while (await _run(["iptables", "--wait", "-t", table, "-D", chain, *spec]))[0] == 0:
            pass
    for table, names in (("filter", (chains.forward, chains.isolation1, chains.isolation2)),
                         ("nat", (chains.dnat, chains.postrouting))):
        for chain in names:
            await _run(["iptables", "--wait", "-t", table, "-F", chain])
        for chain in names:
            await _run(["iptables", "--wait", "-t", table, "-X", chain])
