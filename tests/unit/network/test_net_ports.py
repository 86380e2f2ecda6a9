"""Published ports (dockyard.engine.networks.ports): PortBindings, PublishAllPorts
and ExposedPorts read as dockerd reads them, the Ports shape of inspect, and
the host ports a running container holds (on 127.0.0.1, without root)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import pytest

from dockyard.engine.containers.record import Container
from dockyard.engine.networks.ports import (
    EPHEMERAL_FIRST,
    EPHEMERAL_LAST,
    PortHolder,
    PortMapping,
    PortRequest,
    exposed_port,
    parse_port_key,
    ports_shape,
    resolve_bindings,
)
from dockyard.engine.networks.views import ps_ports
from dockyard.errors import InvalidParameter, SystemError_


# ---------------------------------------------------------------- port keys
@pytest.mark.parametrize(("key", "want"), [
    ("80/tcp", (80, "tcp")),
    ("80", (80, "tcp")),
    ("80/", (80, "tcp")),
    ("53/udp", (53, "udp")),
    ("53/UDP", (53, "udp")),
    ("80/Tcp", (80, "tcp")),
    ("9/sctp", (9, "sctp")),
    ("1", (1, "tcp")),
    ("65535/udp", (65535, "udp")),
    ("080/tcp", (80, "tcp")),
])
def test_parse_port_key(key, want):
    assert parse_port_key(key) == want


@pytest.mark.parametrize("key", [
    "", "/tcp", "0/tcp", "0", "65536/tcp", "99999999999999999999/tcp", "-1/tcp", "+80/tcp",
    " 80/tcp", "80 /tcp", "8_0/tcp", "٨٠/tcp", "0x50/tcp", "http/tcp", "80-90/tcp", "80/foo",
    "80/tcp/udp", "80/tcp ",
])
def test_parse_port_key_refuses_with_dockers_text(key):
    with pytest.raises(InvalidParameter) as e:
        parse_port_key(key)
    assert e.value.message == f'invalid port specification: "{key}"'
    assert e.value.status == 400


@pytest.mark.parametrize(("key", "want"), [
    ("80/tcp", (80, "tcp")),
    ("80", (80, "tcp")),
    ("53/UDP", (53, "udp")),
    # shown as stored, whatever the protocol (dockerd's port type keeps it)
    ("80/foo", (80, "foo")),
    ("80-90/tcp", None),
    ("http", None),
    ("", None),
])
def test_exposed_port(key, want):
    assert exposed_port(key) == want


# ---------------------------------------------------------------- resolve_bindings
def req(port, proto="tcp", ip="", first=0, last=None):
    return PortRequest(port, proto, ip, first, first if last is None else last)


def test_nothing_to_publish():
    assert resolve_bindings(None, False, None) == []
    assert resolve_bindings({}, False, {"80/tcp": {}}) == []
    assert resolve_bindings({}, True, None) == []
    assert resolve_bindings({}, True, {}) == []


def test_bindings_with_fixed_and_ephemeral_host_ports():
    got = resolve_bindings({"80/tcp": [{"HostIp": "", "HostPort": "8080"}],
                            "443/tcp": [{"HostPort": ""}],
                            "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}]},
                           False, None)
    # ordered by container port, then protocol
    assert got == [req(53, "udp", "127.0.0.1", 5353), req(80, first=8080), req(443)]


def test_host_port_ranges():
    got = resolve_bindings({"80/tcp": [{"HostPort": "8000-8010"}],
                            "81/tcp": [{"HostPort": "9000-9000"}]}, False, None)
    assert got == [req(80, first=8000, last=8010), req(81, first=9000)]


@pytest.mark.parametrize("host_port", ["", "0", "0-0", None])
def test_ephemeral_host_port(host_port):
    assert resolve_bindings({"80/tcp": [{"HostPort": host_port}]}, False, None) == [req(80)]


def test_empty_or_null_binding_lists_are_one_ephemeral_binding():
    # as dockerd: an empty list is filled with [{}]
    for binds in ([], None, [{}], [None]):
        assert resolve_bindings({"80/tcp": binds}, False, None) == [req(80)]


def test_several_bindings_of_one_port():
    got = resolve_bindings({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"},
                                       {"HostIp": "192.0.2.1", "HostPort": "8080"},
                                       {"HostPort": ""}]}, False, None)
    assert got == [req(80, ip="127.0.0.1", first=8080), req(80, ip="192.0.2.1", first=8080),
                   req(80)]


def test_tcp_and_udp_of_one_port_are_two_ports():
    got = resolve_bindings({"53/udp": [{"HostPort": "53"}], "53/tcp": [{"HostPort": "53"}]},
                           False, None)
    assert got == [req(53, "tcp", first=53), req(53, "udp", first=53)]


def test_keys_naming_one_port_are_one_port():
    # dockerd's port type makes "80", "80/tcp" and "80/TCP" the same key
    got = resolve_bindings({"80": [{"HostPort": "8080"}], "80/TCP": [{"HostPort": "8081"}]},
                           True, {"80/tcp": {}})
    assert got == [req(80, first=8080), req(80, first=8081)]


def test_publish_all_gives_every_exposed_port_an_ephemeral_host_port():
    got = resolve_bindings(None, True, {"80/tcp": {}, "53/udp": {}, "443": {}})
    assert got == [req(53, "udp"), req(80), req(443)]


def test_publish_all_keeps_explicit_bindings():
    got = resolve_bindings({"80/tcp": [{"HostPort": "8080"}]}, True,
                           {"80/tcp": {}, "81/tcp": {}})
    assert got == [req(80, first=8080), req(81)]


def test_without_publish_all_exposed_ports_are_not_published():
    assert resolve_bindings({"80/tcp": [{"HostPort": "8080"}]}, False,
                            {"80/tcp": {}, "81/tcp": {}}) == [req(80, first=8080)]


@pytest.mark.parametrize(("bindings", "exposed", "spec"), [
    ({"0/tcp": []}, None, "0/tcp"),
    ({"http/tcp": []}, None, "http/tcp"),
    ({"80-90/tcp": []}, None, "80-90/tcp"),
    ({"80/foo": []}, None, "80/foo"),
    ({"80/tcp": [{"HostPort": "http"}]}, None, "http"),
    ({"80/tcp": [{"HostPort": "65536"}]}, None, "65536"),
    ({"80/tcp": [{"HostPort": "90-80"}]}, None, "90-80"),
    ({"80/tcp": [{"HostPort": "80-"}]}, None, "80-"),
    ({"80/tcp": [{"HostPort": "-80"}]}, None, "-80"),
    ({"80/tcp": [{"HostPort": "8080-8090-9000"}]}, None, "8080-8090-9000"),
    ({"80/tcp": [{"HostPort": " 8080"}]}, None, " 8080"),
    ({"80/tcp": [{"HostPort": "+8080"}]}, None, "+8080"),
    ({"80/tcp": [{"HostPort": "8_080"}]}, None, "8_080"),
    ({"80/tcp": [{"HostPort": "0-80"}]}, None, "0-80"),
    (None, {"8000-8010/tcp": {}}, "8000-8010/tcp"),
])
def test_invalid_specs_have_dockers_text(bindings, exposed, spec):
    with pytest.raises(InvalidParameter) as e:
        resolve_bindings(bindings, True, exposed)
    assert e.value.message == f'invalid port specification: "{spec}"'


@pytest.mark.parametrize(("host_ip", "text"), [
    ("::1", "publishing on the IPv6 address ::1 is not supported"),
    ("::", "publishing on the IPv6 address :: is not supported"),
    ("localhost", "invalid IP address: localhost"),
    ("300.1.1.1", "invalid IP address: 300.1.1.1"),
    # inet_aton's shorthand is no address to Docker
    ("127.1", "invalid IP address: 127.1"),
    ("0x7f.0.0.1", "invalid IP address: 0x7f.0.0.1"),
])
def test_invalid_host_ip(host_ip, text):
    with pytest.raises(InvalidParameter) as e:
        resolve_bindings({"80/tcp": [{"HostIp": host_ip}]}, False, None)
    assert e.value.message == text


def test_sctp_is_not_published():
    with pytest.raises(InvalidParameter, match="^publishing sctp ports is not supported$"):
        resolve_bindings({"9/sctp": [{}]}, False, None)
    with pytest.raises(InvalidParameter, match="sctp"):
        resolve_bindings(None, True, {"9/sctp": {}})
    # exposed but not published: no error
    assert resolve_bindings(None, False, {"9/sctp": {}}) == []


# ---------------------------------------------------------------- shapes
def test_mapping_json():
    assert PortMapping(80, "tcp", "0.0.0.0", 8080).to_json() == {"HostIp": "0.0.0.0",
                                                                  "HostPort": "8080"}


def test_ports_shape():
    published = [PortMapping(80, "tcp", "0.0.0.0", 8080), PortMapping(80, "tcp", "127.0.0.1", 8081),
                 PortMapping(53, "udp", "0.0.0.0", 32768), PortMapping(9000, "tcp", "0.0.0.0", 9000)]
    shape = ports_shape({"80/tcp": {}, "443/tcp": {}, "53/udp": {}}, published)
    assert shape == {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"},
                   {"HostIp": "127.0.0.1", "HostPort": "8081"}],
        "443/tcp": None,
        "53/udp": [{"HostIp": "0.0.0.0", "HostPort": "32768"}],
        # published without being exposed
        "9000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "9000"}],
    }


def test_ports_shape_normalises_exposed_keys_and_keeps_odd_ones():
    shape = ports_shape({"80": {}, "53/UDP": {}, "7/foo": {}, "8000-8010/tcp": {}},
                        [PortMapping(80, "tcp", "0.0.0.0", 8080)])
    assert shape == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "53/udp": None,
                     "7/foo": None, "8000-8010/tcp": None}


def test_ports_shape_empty():
    assert ports_shape(None, []) == {}
    assert ports_shape({}, []) == {}


# ---------------------------------------------------------------- PortHolder
LOCAL = "127.0.0.1"


def _bindable(port: int, proto: str = "tcp") -> bool:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((LOCAL, port))
        except OSError:
            return False
    return True


def _free_ports(n: int) -> int:
    """The first of n consecutive ports free on 127.0.0.1 for tcp and udp."""
    for start in range(20000, 30000, 37):
        if all(_bindable(p, proto) for p in range(start, start + n) for proto in ("tcp", "udp")):
            return start
    pytest.skip("no free ports on 127.0.0.1")


@contextlib.contextmanager
def _occupied(port: int, proto: str = "tcp") -> Iterator[None]:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((LOCAL, port))
        yield


@pytest.fixture
def holder() -> Iterator[PortHolder]:
    h = PortHolder()
    yield h
    for cid in list(h._held):
        h.release(cid)


def test_take_holds_the_port_until_release(holder):
    p = _free_ports(1)
    got = holder.take("c1", [PortRequest(80, "tcp", LOCAL, p, p)])
    assert got == [PortMapping(80, "tcp", LOCAL, p)]
    assert not _bindable(p)
    holder.release("c1")
    assert _bindable(p)


def test_tcp_and_udp_of_one_number_are_held_apart(holder):
    p = _free_ports(1)
    got = holder.take("c1", [PortRequest(53, "tcp", LOCAL, p, p),
                             PortRequest(53, "udp", LOCAL, p, p)])
    assert got == [PortMapping(53, "tcp", LOCAL, p), PortMapping(53, "udp", LOCAL, p)]
    assert not _bindable(p, "tcp") and not _bindable(p, "udp")


def test_port_already_allocated(holder):
    p = _free_ports(1)
    with _occupied(p), pytest.raises(SystemError_) as e:
        holder.take("c1", [PortRequest(80, "tcp", LOCAL, p, p)])
    assert e.value.message == f"Bind for {LOCAL}:{p} failed: port is already allocated"


def test_a_port_held_for_one_container_is_refused_to_another(holder):
    p = _free_ports(1)
    holder.take("c1", [PortRequest(80, "tcp", LOCAL, p, p)])
    with pytest.raises(SystemError_, match="port is already allocated"):
        holder.take("c2", [PortRequest(80, "tcp", LOCAL, p, p)])
    holder.release("c1")
    assert holder.take("c2", [PortRequest(80, "tcp", LOCAL, p, p)]) == [
        PortMapping(80, "tcp", LOCAL, p)]


def test_a_range_takes_its_first_free_port(holder):
    p = _free_ports(3)
    with _occupied(p):
        got = holder.take("c1", [PortRequest(80, "tcp", LOCAL, p, p + 2)])
    assert got == [PortMapping(80, "tcp", LOCAL, p + 1)]


def test_a_range_all_taken(holder):
    p = _free_ports(2)
    with _occupied(p), _occupied(p + 1), pytest.raises(SystemError_) as e:
        holder.take("c1", [PortRequest(80, "tcp", LOCAL, p, p + 1)])
    assert e.value.message == f"Bind for {LOCAL}:{p}-{p + 1} failed: port is already allocated"


def test_take_is_all_or_nothing(holder):
    p = _free_ports(2)
    with _occupied(p + 1), pytest.raises(SystemError_):
        holder.take("c1", [PortRequest(80, "tcp", LOCAL, p, p),
                           PortRequest(81, "tcp", LOCAL, p + 1, p + 1)])
    # the first port was given back, and the container holds nothing
    assert _bindable(p)
    assert "c1" not in holder._held


def test_an_address_the_host_does_not_have(holder):
    p = _free_ports(1)
    with pytest.raises(InvalidParameter) as e:
        holder.take("c1", [PortRequest(80, "tcp", "192.0.2.1", p, p)])
    assert e.value.message == f"Bind for 192.0.2.1:{p} failed: cannot assign requested address"


def test_ephemeral_port(holder):
    (m,) = holder.take("c1", [PortRequest(80, "tcp", LOCAL, 0, 0)])
    assert m.container_port == 80 and m.protocol == "tcp" and m.host_ip == LOCAL
    assert EPHEMERAL_FIRST <= m.host_port <= EPHEMERAL_LAST
    assert not _bindable(m.host_port)


def test_every_address_is_0000(holder):
    p = _free_ports(1)
    (m,) = holder.take("c1", [PortRequest(80, "udp", "", p, p)])
    assert m == PortMapping(80, "udp", "0.0.0.0", p)


def test_take_twice_for_one_container_holds_both(holder):
    p = _free_ports(2)
    holder.take("c1", [PortRequest(80, "tcp", LOCAL, p, p)])
    holder.take("c1", [PortRequest(81, "tcp", LOCAL, p + 1, p + 1)])
    holder.release("c1")
    assert _bindable(p) and _bindable(p + 1)


def test_restore_holds_again_what_it_can(holder):
    p = _free_ports(2)
    with _occupied(p + 1):
        holder.restore("c1", [PortMapping(80, "tcp", LOCAL, p),
                              PortMapping(81, "tcp", LOCAL, p + 1)])
    assert not _bindable(p)
    assert [m for m, _ in holder._held["c1"]] == [PortMapping(80, "tcp", LOCAL, p)]


def test_release_of_an_unknown_container(holder):
    holder.release("nobody")
    assert holder.take("c1", []) == []


# ---------------------------------------------------------------- docker ps
def _container(exposed, ports):
    return Container(id="c" * 64, name="web", created=0, image_ref="img", image_id="sha256:x",
                     config={"ExposedPorts": exposed}, host_config={},
                     ports=[vars(p) for p in ports])


def test_ps_ports_published_then_exposed_only():
    c = _container({"80/tcp": {}, "443/tcp": {}, "53/udp": {}},
                   [PortMapping(80, "tcp", "0.0.0.0", 8080), PortMapping(80, "tcp", "127.0.0.1", 81)])
    assert ps_ports(c) == [
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        {"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 81, "Type": "tcp"},
        {"PrivatePort": 443, "Type": "tcp"},
        {"PrivatePort": 53, "Type": "udp"},
    ]


def test_ps_ports_lists_odd_exposed_keys_without_failing():
    # ExposedPorts a client stored in a form the port parser refuses must not
    # make every `docker ps` fail
    c = _container({"80": {}, "80/tcp": {}, "7/FOO": {}, "8000-8010/tcp": {}}, [])
    assert ps_ports(c) == [{"PrivatePort": 80, "Type": "tcp"}, {"PrivatePort": 7, "Type": "foo"}]
    assert ps_ports(_container(None, [])) == []
