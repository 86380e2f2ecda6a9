"""What the engine waits for after asking aardvark-dns to reread its files."""

from __future__ import annotations

import socket

from dockyard.network.dns import _gateways, udp_listeners


def test_gateways_are_each_files_first_field():
    files = ["10.1.2.1,fd00::0:1 8.8.8.8\nabc 10.1.2.5  c1\n", "172.30.0.1\n", ""]
    assert _gateways(files) == {"10.1.2.1", "fd00::1", "172.30.0.1"}


def test_udp_listeners_sees_a_bound_socket_in_both_families():
    s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s4.bind(("127.0.0.1", 0))
    port = s4.getsockname()[1]
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        s6.bind(("::1", port))
        want = {"127.0.0.1", "::1"}
    except OSError:        # no IPv6 loopback here
        want = {"127.0.0.1"}
    try:
        assert udp_listeners(port) >= want
    finally:
        s4.close()
        s6.close()
    assert "127.0.0.1" not in udp_listeners(port)
