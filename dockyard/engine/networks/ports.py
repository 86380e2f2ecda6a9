"""Published ports: from Docker's PortBindings to held host ports.

`resolve_bindings` turns a container's `PortBindings`, `PublishAllPorts`
and exposed ports into the mappings to publish (pure).  `PortHolder` then
takes each host port for as long as the container runs by binding a socket
to it, as Docker's proxy holds it: another process (or container) asking
for it fails with Docker's `port is already allocated`, and an ephemeral
port is the lowest free one from 32768, as dockerd hands them out.  Traffic
itself never reaches these sockets: the firewall DNATs it to the container
first.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dockyard.errors import InvalidParameter, SystemError_

EPHEMERAL_FIRST = 32768
EPHEMERAL_LAST = 60999


@dataclass(frozen=True)
class PortRequest:
    """One binding as asked: container port/proto, host ip, host port range."""

    container_port: int
    protocol: str
    host_ip: str                   # "" = every address (0.0.0.0)
    host_first: int                # 0 = ephemeral
    host_last: int


@dataclass(frozen=True)
class PortMapping:
    """One binding as published."""

    container_port: int
    protocol: str
    host_ip: str                   # "0.0.0.0" for every address
    host_port: int

    def to_json(self) -> dict[str, Any]:
        return {"HostIp": self.host_ip, "HostPort": str(self.host_port)}


_PORT_NUMBER = re.compile(r"[0-9]+")
_PROTOCOLS = ("tcp", "udp", "sctp")


def _port_number(text: str) -> int | None:
    """A port number as Go's strconv.ParseUint(text, 10, 16) reads it."""
    if not _PORT_NUMBER.fullmatch(text):
        return None
    n = int(text)
    return n if n < 65536 else None


def parse_port_key(key: str) -> tuple[int, str]:
    """`80/tcp` -> (80, "tcp"), `80` -> (80, "tcp"); dockerd's text for a bad
    one (a port 1-65535, tcp, udp or sctp, as Docker's port types read it)."""
    port, _, proto = key.partition("/")
    n = _port_number(port)
    proto = (proto or "tcp").lower()
    if not n or proto not in _PROTOCOLS:
        raise InvalidParameter(f'invalid port specification: "{key}"')
    return n, proto


def exposed_port(key: str) -> tuple[int, str] | None:
    """An ExposedPorts key as inspect and `docker ps` show it: (port, protocol),
    any protocol, lowercased; None for one that names no single port (a range
    an older client may have stored)."""
    port, _, proto = key.partition("/")
    n = _port_number(port)
    return None if n is None else (n, (proto or "tcp").lower())


def _host_range(text: str) -> tuple[int, int]:
    """A HostPort: "" or 0 for an ephemeral port, `8080`, or `8080-8090`."""
    if not text:
        return 0, 0
    first, dash, last = text.partition("-")
    a = _port_number(first)
    b = _port_number(last) if dash else a
    if a == b == 0:
        return 0, 0
    if not (a and b and a <= b):
        raise InvalidParameter(f'invalid port specification: "{text}"')
    return a, b


def _check_host_ip(text: str) -> None:
    """A HostIp: an IPv4 address as written in full (inet_aton's 127.1 is not one)."""
    if ":" in text:
        raise InvalidParameter(f"publishing on the IPv6 address {text} is not supported")
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        raise InvalidParameter(f"invalid IP address: {text}") from None


def resolve_bindings(port_bindings: Mapping[str, Any] | None, publish_all: bool,
                     exposed: Mapping[str, Any] | None) -> list[PortRequest]:
    """What to publish, in a stable order (by container port, then protocol).

    Keys naming the same port (`80`, `80/tcp`, `80/TCP`) are one port, as
    dockerd's port types make them; with `publish_all` every exposed port not
    bound otherwise gets an ephemeral host port."""
    bindings: dict[tuple[int, str], list[Any]] = {}
    for key, binds in (port_bindings or {}).items():
        bindings.setdefault(parse_port_key(key), []).extend(binds or [{}])
    if publish_all:
        for key in exposed or {}:
            bindings.setdefault(parse_port_key(key), [{}])
    out: list[PortRequest] = []
    for (port, proto), binds in sorted(bindings.items()):
        if proto == "sctp":
            raise InvalidParameter("publishing sctp ports is not supported")
        for b in binds:
            host_ip = str((b or {}).get("HostIp") or "")
            if host_ip:
                _check_host_ip(host_ip)
            first, last = _host_range(str((b or {}).get("HostPort") or ""))
            out.append(PortRequest(port, proto, host_ip, first, last))
    return out


def ports_shape(exposed: Mapping[str, Any] | None, published: list[PortMapping]
                ) -> dict[str, Any]:
    """NetworkSettings.Ports: every exposed or published port, its bindings or null."""
    out: dict[str, Any] = {}
    for key in exposed or {}:
        parsed = exposed_port(key)
        out[f"{parsed[0]}/{parsed[1]}" if parsed else key] = None
    for m in published:
        key = f"{m.container_port}/{m.protocol}"
        out[key] = (out.get(key) or []) + [m.to_json()]
    return out


class PortHolder:
    """The host ports running containers hold, by container id."""

    def __init__(self) -> None:
        self._held: dict[str, list[tuple[PortMapping, socket.socket]]] = {}

    def _bind(self, ip: str, port: int, proto: str) -> socket.socket:
        s = socket.socket(socket.AF_INET,
                          socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
        try:
            s.bind((ip, port))
        except BaseException:
            s.close()
            raise
        return s

    def take(self, container_id: str, requests: list[PortRequest]) -> list[PortMapping]:
        """Take every requested port, or none (Docker's error on the first taken)."""
        got: list[tuple[PortMapping, socket.socket]] = []
        try:
            for r in requests:
                ip = r.host_ip or "0.0.0.0"
                got.append(self._take_one(ip, r))
        except BaseException:
            for _, s in got:
                s.close()
            raise
        self._held.setdefault(container_id, []).extend(got)
        return [m for m, _ in got]

    def _take_one(self, ip: str, r: PortRequest) -> tuple[PortMapping, socket.socket]:
        first, last = (r.host_first, r.host_last) if r.host_first else \
            (EPHEMERAL_FIRST, EPHEMERAL_LAST)
        for port in range(first, last + 1):
            try:
                s = self._bind(ip, port, r.protocol)
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    continue
                if e.errno == errno.EADDRNOTAVAIL:
                    raise InvalidParameter(f"Bind for {ip}:{port} failed: cannot assign "
                                           "requested address") from None
                raise SystemError_(f"Bind for {ip}:{port} failed: {e.strerror}") from None
            return PortMapping(r.container_port, r.protocol, ip, port), s
        where = f"{first}" if first == last else f"{first}-{last}"
        raise SystemError_(f"Bind for {ip}:{where} failed: port is already allocated")

    def restore(self, container_id: str, mappings: list[PortMapping]) -> None:
        """Hold again what a container held before the daemon restarted."""
        for m in mappings:
            with contextlib.suppress(OSError):
                s = self._bind(m.host_ip, m.host_port, m.protocol)
                self._held.setdefault(container_id, []).append((m, s))

    def release(self, container_id: str) -> None:
        for _, s in self._held.pop(container_id, []):
            s.close()
