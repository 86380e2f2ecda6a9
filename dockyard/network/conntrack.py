"""Forgetting the kernel's connection tracking entries of a departed address.

A published UDP port keeps its conntrack entry (and with it the DNAT to
the container's address) as long as a client keeps sending, so a client of
a stopped container would never reach the next one on the same host port.
When a container's endpoint goes, every entry whose reply comes from its
address is deleted, as Docker does for the mappings it removes.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket

log = logging.getLogger("dockyard.conntrack")


def forget_address(ip: str) -> int:
    """Delete the entries answered from `ip`; returns how many (blocking)."""
    # imported here: pyroute2 is not needed to start the daemon (links.py)
    from pyroute2 import Conntrack
    from pyroute2.conntrack import NFCTAttrTuple

    family = socket.AF_INET6 if ipaddress.ip_address(ip).version == 6 else socket.AF_INET
    deleted = 0
    try:
        with Conntrack() as ct:
            entries = list(ct.dump_entries(tuple_reply=NFCTAttrTuple(family=family, saddr=ip)))
            for entry in entries:
                with contextlib.suppress(OSError):   # gone meanwhile
                    ct.entry("del", tuple_orig=entry.tuple_orig)
                    deleted += 1
    except OSError as e:   # no conntrack in this kernel: nothing to forget
        log.debug("conntrack of %s: %s", ip, e)
    return deleted
