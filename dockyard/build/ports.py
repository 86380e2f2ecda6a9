"""EXPOSE's port specs (`80`, `80/udp`, `8000-8002`, even `8080:80`), read
as Docker's nat.ParsePortSpecs reads them, with its error texts.

Pure (no I/O).
"""

from __future__ import annotations

import ipaddress
import re

from dockyard.errors import InvalidParameter

_UINT = re.compile(r"^[0-9]+$")


def _port_range(text: str) -> tuple[int, int] | None:
    if text == "":
        return None
    parts = text.split("-")
    if len(parts) == 1:
        parts = [text, text]
    if not all(_UINT.match(p) and int(p) < 65536 for p in parts[:2]):
        return None
    start, end = int(parts[0]), int(parts[1])
    return None if end < start else (start, end)


def _split_parts(raw: str) -> tuple[str, str, str]:
    parts = raw.split(":")
    if len(parts) == 1:
        return "", "", parts[0]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    return ":".join(parts[:-2]), parts[-2], parts[-1]


def port_spec(raw: str) -> list[str]:
    """The `port/proto` keys one spec exposes."""
    ip, host, container = _split_parts(raw)
    port, _, proto = container.partition("/")
    if port == "":
        raise InvalidParameter(f"no port specified: {raw}<empty>")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidParameter(f"invalid proto: {proto}")
    if ip.startswith("[") and ip.endswith("]"):
        ip = ip[1:-1]
    if ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise InvalidParameter(f"invalid IP address: {ip}") from None
    rng = _port_range(port)
    if rng is None:
        raise InvalidParameter(f"invalid containerPort: {port}")
    if host:
        hrng = _port_range(host)
        if hrng is None:
            raise InvalidParameter(f"invalid hostPort: {host}")
        if rng[1] - rng[0] != hrng[1] - hrng[0] and rng[0] != rng[1]:
            raise InvalidParameter("invalid ranges specified for container and host Ports: "
                                   f"{port} and {host}")
    return [f"{p}/{proto}" for p in range(rng[0], rng[1] + 1)]


def exposed_ports(specs: list[str]) -> list[str]:
    out: list[str] = []
    for s in specs:
        for key in port_spec(s):
            if key not in out:
                out.append(key)
    return out
