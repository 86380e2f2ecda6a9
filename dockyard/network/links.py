"""Bridges and veth pairs through netlink (pyroute2): what a bridge network
is made of in the kernel.

A network is a Linux bridge holding the gateway address; a container joins
it through a veth pair whose host end is a port of the bridge and whose
other end is created directly inside the container's network namespace,
named as Docker names it (eth0, eth1, ...), with the container's address,
MAC and, on its first network, the default route.  Everything here is
blocking: callers run it in a thread.  A few netlink calls per container,
no process spawned.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import logging
import os
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dockyard.errors import Conflict, SystemError_

if TYPE_CHECKING:
    from pyroute2 import IPRoute

IFNAMSIZ = 15
# pyroute2 sets its logger to log everything when imported, and it logs
# every netlink message at debug level: the daemon's debug log would be
# that alone.  Warnings and errors still come through.
logging.getLogger("pyroute2").setLevel(logging.WARNING)


def _netlink() -> tuple[type[IPRoute], type[Exception]]:
    """pyroute2's socket class and error, imported on first use: importing
    pyroute2 takes about 80 ms, which a restarted daemon would otherwise
    spend before it answers `_ping` (it needs no netlink until a
    container starts or stops)."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError
    return IPRoute, NetlinkError
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class BridgeMissing(SystemError_):
    """The bridge an endpoint was to join is not there (removed behind the
    engine's back, or by a concurrent teardown)."""


@dataclass(frozen=True)
class Attachment:
    """One container interface on one bridge."""

    bridge: str
    host_ifname: str               # the bridge-side veth end
    ifname: str                    # inside the container: eth0, eth1, ...
    address: str                   # "10.89.0.5/24"
    gateway: str                   # "" for none
    mac: str
    mtu: int = 1500
    default_route: bool = True
    address6: str = ""             # "fd00::5/64"
    gateway6: str = ""
    link_local: tuple[str, ...] = ()   # "169.254.1.1/16", "fe80::1/64"


def host_ifname(endpoint_id: str) -> str:
    """The bridge-side name of an endpoint's veth: `veth` + 7 hex, as Docker's."""
    return f"veth{endpoint_id[:7]}"


def random_mac() -> str:
    """A locally administered unicast MAC (02:42:...), as Docker generates."""
    return "02:42:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(4))


def _sysctl(path: str, value: str) -> None:
    with contextlib.suppress(OSError), open(path, "w") as f:
        f.write(value)


def ensure_bridge(name: str, addresses: list[str], mtu: int = 1500) -> None:
    """The bridge `name` exists, is up and holds `addresses` ("10.1.0.1/24")."""
    IPRoute, NetlinkError = _netlink()
    if len(name) > IFNAMSIZ:
        raise Conflict(f"bridge name {name} is longer than {IFNAMSIZ} characters")
    with IPRoute() as ip:
        found = ip.link_lookup(ifname=name)
        if not found:
            try:
                ip.link("add", ifname=name, kind="bridge", mtu=mtu)
            except NetlinkError as e:
                raise SystemError_(f"creating bridge {name}: {e.args[1] if len(e.args) > 1 else e}") from None
            found = ip.link_lookup(ifname=name)
        idx = found[0]
        have = {f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in ip.get_addr(index=idx)}
        for cidr in addresses:
            net = ipaddress.ip_interface(cidr)
            if str(net) in have:
                continue
            ip.addr("add", index=idx, address=str(net.ip), prefixlen=net.network.prefixlen)
        ip.link("set", index=idx, state="up")
    # published ports on 127.0.0.1 are DNATed into the bridge
    _sysctl(f"/proc/sys/net/ipv4/conf/{name}/route_localnet", "1")


def delete_link(name: str) -> None:
    """Remove an interface (a bridge, or a veth with its peer); gone already is fine."""
    IPRoute, NetlinkError = _netlink()
    with IPRoute() as ip:
        found = ip.link_lookup(ifname=name)
        if found:
            with contextlib.suppress(NetlinkError):
                ip.link("del", index=found[0])


def link_exists(name: str) -> bool:
    IPRoute, _ = _netlink()
    with IPRoute() as ip:
        return bool(ip.link_lookup(ifname=name))


def attach(netns_path: str, att: Attachment) -> None:
    """Create the veth pair, plug the host end into the bridge, and set up
    the container end inside the namespace."""
    IPRoute, NetlinkError = _netlink()
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with IPRoute() as ip:
            bridge = ip.link_lookup(ifname=att.bridge)
            if not bridge:
                raise BridgeMissing(f"bridge {att.bridge} is missing")
            try:
                ip.link("add", ifname=att.host_ifname, kind="veth", mtu=att.mtu,
                        peer={"ifname": att.ifname, "net_ns_fd": fd, "mtu": att.mtu,
                              "address": att.mac})
            except NetlinkError as e:
                raise SystemError_(f"creating veth {att.host_ifname}: {e}") from None
            host = ip.link_lookup(ifname=att.host_ifname)[0]
            ip.link("set", index=host, master=bridge[0], state="up")
    finally:
        os.close(fd)
    try:
        _inside(netns_path, att)
    except BaseException:
        delete_link(att.host_ifname)
        raise


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def netns_socket(netns_path: str) -> Iterator[IPRoute]:
    """A netlink socket bound to another network namespace.

    The calling thread enters the namespace only long enough to open the
    socket (which stays bound to it) and is back in its own before anything
    else runs: much cheaper than a helper process per namespace."""
    IPRoute, _ = _netlink()
    target = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target)
        try:
            ip = IPRoute()
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)
    try:
        yield ip
    finally:
        ip.close()


def _inside(netns_path: str, att: Attachment) -> None:
    with netns_socket(netns_path) as ns:
        idx = ns.link_lookup(ifname=att.ifname)[0]
        iface = ipaddress.ip_interface(att.address)
        ns.addr("add", index=idx, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        for extra in (att.address6, *att.link_local):
            if extra:
                more = ipaddress.ip_interface(extra)
                ns.addr("add", index=idx, address=str(more.ip),
                        prefixlen=more.network.prefixlen)
        ns.link("set", index=idx, state="up")
        lo = ns.link_lookup(ifname="lo")
        if lo:
            ns.link("set", index=lo[0], state="up")
        if att.default_route and att.gateway:
            ns.route("replace", dst="0.0.0.0/0", gateway=att.gateway, oif=idx)
        if att.default_route and att.gateway6:
            ns.route("replace", dst="::/0", gateway=att.gateway6, oif=idx, family=10)


def detach(host_ifname_: str) -> None:
    """Remove an endpoint's veth pair (both ends go with the host one)."""
    delete_link(host_ifname_)


def enable_forwarding() -> None:
    """Bridge networking routes between the bridges and the host's interfaces,
    as dockerd turns it on (its `ip-forward` option, on by default)."""
    _sysctl("/proc/sys/net/ipv4/ip_forward", "1")


def host_routes() -> list[ipaddress.IPv4Network]:
    """The IPv4 networks the host routes to directly or through a gateway
    (the default route excluded): a new network's subnet must avoid them."""
    out: list[ipaddress.IPv4Network] = []
    try:
        with open("/proc/net/route") as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return out
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        dest = int(fields[1], 16)
        mask = int(fields[7], 16)
        if mask == 0:
            continue
        addr = ipaddress.IPv4Address(dest.to_bytes(4, "little"))
        netmask = ipaddress.IPv4Address(mask.to_bytes(4, "little"))
        with contextlib.suppress(ValueError):
            out.append(ipaddress.IPv4Network(f"{addr}/{netmask}", strict=False))
    return out


def interface_ipv4(name: str) -> str | None:
    """The first IPv4 address of the host interface `name`, or None when
    there is no such interface or it has none."""
    ip_route, netlink_error = _netlink()
    try:
        with ip_route() as ipr:
            idx = ipr.link_lookup(ifname=name)
            if not idx:
                return None
            for msg in ipr.get_addr(index=idx[0], family=socket.AF_INET):
                addr = msg.get_attr("IFA_ADDRESS")
                if addr:
                    return str(addr)
    except netlink_error:
        return None
    return None


def default_source_ipv4() -> str | None:
    """The address the host's default route leaves from (a connected UDP
    socket: the kernel picks the source, nothing is sent), or None with no
    default route."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))     # TEST-NET-1: only the route lookup
        except OSError:
            return None
        return str(s.getsockname()[0])
