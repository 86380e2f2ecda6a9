"""Bridge-network address management (dockyard.network.ipam): which subnet a
network gets, which addresses its gateway and containers get, and Docker's
error texts and statuses when a request cannot be met."""

from __future__ import annotations

import ipaddress

import pytest

from dockyard.errors import Conflict, Forbidden, InvalidParameter, SystemError_
from dockyard.network.ipam import (
    DEFAULT_POOLS,
    Pool,
    SubnetAllocator,
    check_subnet_free,
    choose_subnet,
    overlaps,
    parse_address,
    parse_pools,
    parse_subnet,
)

net = ipaddress.ip_network
addr = ipaddress.ip_address


# ---------------------------------------------------------------- parsing
@pytest.mark.parametrize(("text", "want"), [
    ("10.1.0.0/16", "10.1.0.0/16"),
    # host bits set: the network they belong to (a daemon `bip` is written so)
    ("10.1.2.3/24", "10.1.2.0/24"),
    ("172.17.0.1/16", "172.17.0.0/16"),
    ("fd00:1::5/64", "fd00:1::/64"),
    ("FD00:1::/64", "fd00:1::/64"),
])
def test_parse_subnet(text, want):
    assert parse_subnet(text) == net(want)


@pytest.mark.parametrize("text", ["", "10.1.0.0/33", "10.1.0/16", "bogus", "10.1.0.0/-1",
                                  "fd00::/129"])
def test_parse_subnet_rejects(text):
    with pytest.raises(InvalidParameter) as e:
        parse_subnet(text)
    assert e.value.message == f"invalid subnet {text}: invalid CIDR address: {text}"
    assert e.value.status == 400


def test_parse_address():
    assert parse_address("10.0.0.7") == addr("10.0.0.7")
    assert parse_address("fd00::7") == addr("fd00::7")
    with pytest.raises(InvalidParameter, match=r"^invalid IP address: 10\.0\.0\.256$"):
        parse_address("10.0.0.256")
    with pytest.raises(InvalidParameter, match=r"^invalid gateway: x$"):
        parse_address("x", "gateway")


def test_parse_pools():
    pools = parse_pools([{"base": "10.10.0.0/16", "size": 24},
                         {"base": "fd00:10::/48", "size": "64"}])
    assert pools == (Pool(net("10.10.0.0/16"), 24), Pool(net("fd00:10::/48"), 64))
    assert parse_pools([]) == ()


@pytest.mark.parametrize(("entry", "why"), [
    ({"size": 24}, "'base'"),
    ({"base": "10.10.0.0/16"}, "'size'"),
    ({"base": "10.10.0.1/16", "size": 24}, "has host bits set"),
    ({"base": "nonsense", "size": 24}, "does not appear to be"),
    ({"base": "10.10.0.0/16", "size": "big"}, "invalid literal"),
    # a size the base cannot be cut into: refused when the daemon reads it,
    # not when the first network wants a subnet
    ({"base": "10.10.0.0/16", "size": 8}, "size 8 is not between 16 and 32"),
    ({"base": "10.10.0.0/16", "size": 33}, "size 33 is not between 16 and 32"),
    ({"base": "fd00::/48", "size": 129}, "size 129 is not between 48 and 128"),
])
def test_parse_pools_rejects(entry, why):
    with pytest.raises(InvalidParameter) as e:
        parse_pools([entry])
    assert e.value.message.startswith(f"invalid default-address-pools entry {entry}: ")
    assert why in e.value.message


def test_pool_larger_size_than_base_is_refused():
    with pytest.raises(InvalidParameter,
                       match=r"^invalid pool 10\.0\.0\.0/16: size /8 is larger than the pool$"):
        list(Pool(net("10.0.0.0/16"), 8).subnets())


# ---------------------------------------------------------------- overlap
def test_overlaps_returns_the_first_overlapping_network():
    taken = [net("192.168.0.0/24"), net("10.0.0.0/8"), net("10.1.0.0/16")]
    assert overlaps(net("10.1.2.0/24"), taken) == net("10.0.0.0/8")
    # containing counts as overlapping, either way round
    assert overlaps(net("10.0.0.0/7"), taken) == net("10.0.0.0/8")
    assert overlaps(net("192.168.0.128/25"), taken) == net("192.168.0.0/24")
    assert overlaps(net("192.168.1.0/24"), taken) is None
    assert overlaps(net("10.0.0.0/8"), []) is None


def test_overlaps_never_mixes_address_families():
    # ::/0 contains everything IPv6, but nothing IPv4
    assert overlaps(net("10.0.0.0/8"), [net("::/0")]) is None
    assert overlaps(net("::/0"), [net("0.0.0.0/0")]) is None
    assert overlaps(net("fd00::/64"), [net("0.0.0.0/0"), net("fd00::/8")]) == net("fd00::/8")


def test_adjacent_subnets_do_not_overlap():
    assert overlaps(net("10.0.1.0/24"), [net("10.0.0.0/24"), net("10.0.2.0/24")]) is None


def test_check_subnet_free():
    check_subnet_free(net("10.2.0.0/16"), [net("10.1.0.0/16"), net("fd00::/8")])
    with pytest.raises(Forbidden) as e:
        check_subnet_free(net("10.1.5.0/24"), [net("10.1.0.0/16")])
    # Docker's IPAM: ErrPoolOverlap, a 403, as RequestPool wraps it
    assert e.value.message == ("invalid pool request: Pool overlaps with other one on this "
                               "address space")
    assert e.value.status == 403


# ---------------------------------------------------------------- subnet choice
def test_default_pools_are_dockers_without_docker0():
    subnets = [s for p in DEFAULT_POOLS for s in p.subnets()]
    # 172.18-31 as /16s, then 192.168/16 as /20s: Docker's local pools in
    # Docker's order, without the 172.17.0.0/16 of a Docker Engine's docker0
    assert subnets[:3] == [net("172.18.0.0/16"), net("172.19.0.0/16"), net("172.20.0.0/16")]
    assert net("172.17.0.0/16") not in subnets
    assert subnets[13] == net("172.31.0.0/16")
    assert subnets[14:] == list(net("192.168.0.0/16").subnets(new_prefix=20))
    assert len(subnets) == 14 + 16


def test_choose_subnet_takes_the_first_free():
    assert choose_subnet(DEFAULT_POOLS, []) == net("172.18.0.0/16")
    taken = [net("172.18.0.0/16"), net("172.19.5.0/24"), net("fd00::/8")]
    assert choose_subnet(DEFAULT_POOLS, taken) == net("172.20.0.0/16")


def test_choose_subnet_skips_host_routes_inside_and_around_a_candidate():
    # a host route inside a candidate, and one covering several
    taken = [net("172.18.3.0/24"), net("172.16.0.0/12")]
    assert choose_subnet(DEFAULT_POOLS, taken) == net("192.168.0.0/20")
    taken += [net("192.168.0.0/20"), net("192.168.17.1/32")]
    assert choose_subnet(DEFAULT_POOLS, taken) == net("192.168.32.0/20")


def test_choose_subnet_uses_the_pools_in_order():
    pools = parse_pools([{"base": "10.10.0.0/23", "size": 24},
                         {"base": "10.20.0.0/16", "size": 28}])
    assert choose_subnet(pools, []) == net("10.10.0.0/24")
    assert choose_subnet(pools, [net("10.10.0.0/24")]) == net("10.10.1.0/24")
    assert choose_subnet(pools, [net("10.10.0.0/23")]) == net("10.20.0.0/28")
    assert choose_subnet(pools, [net("10.10.0.0/23"), net("10.20.0.0/27")]) == \
        net("10.20.0.32/28")


def test_choose_subnet_accepts_any_iterable_of_taken_networks():
    taken = iter([net("172.18.0.0/16")])
    assert choose_subnet(DEFAULT_POOLS, taken) == net("172.19.0.0/16")


@pytest.mark.parametrize("taken", [
    [net("0.0.0.0/0")],
    [net("172.16.0.0/12"), net("192.168.0.0/16")],
])
def test_choose_subnet_exhausted(taken):
    with pytest.raises(InvalidParameter) as e:
        choose_subnet(DEFAULT_POOLS, taken)
    assert e.value.message == "all predefined address pools have been fully subnetted"
    assert e.value.status == 400


def test_choose_subnet_without_pools():
    with pytest.raises(InvalidParameter, match="fully subnetted"):
        choose_subnet((), [])


# ---------------------------------------------------------------- allocator: gateway
def test_gateway_is_the_first_address_by_default():
    a = SubnetAllocator.create(net("10.5.0.0/16"))
    assert a.gateway == addr("10.5.0.1")
    assert a.ip_range is None
    assert a.taken == set()


def test_gateway_given():
    a = SubnetAllocator.create(net("10.5.0.0/16"), gateway="10.5.200.254")
    assert a.gateway == addr("10.5.200.254")
    # the first container then gets the first address
    assert a.allocate() == addr("10.5.0.1")


def test_gateway_ipv6():
    a = SubnetAllocator.create(net("fd00:5::/64"))
    assert a.gateway == addr("fd00:5::1")
    b = SubnetAllocator.create(net("fd00:5::/64"), gateway="fd00:5::ff")
    assert b.gateway == addr("fd00:5::ff")


def test_gateway_with_ip_range_is_the_ranges_first_address():
    # Docker asks its IPAM for the gateway from the sub-pool: the lowest free
    # address of the range, which for a range inside the subnet is its first
    a = SubnetAllocator.create(net("172.28.0.0/16"), ip_range="172.28.5.0/24")
    assert a.gateway == addr("172.28.5.0")
    assert a.ip_range == net("172.28.5.0/24")
    # a range at the start of the subnet: the subnet's own address is reserved
    b = SubnetAllocator.create(net("172.28.0.0/16"), ip_range="172.28.0.0/24")
    assert b.gateway == addr("172.28.0.1")


@pytest.mark.parametrize(("subnet", "gateway", "error"), [
    ("10.5.0.0/16", "10.6.0.1",
     "invalid gateway 10.6.0.1: parent subnet 10.5.0.0/16 doesn't contain this address"),
    ("10.5.0.0/16", "nope", "invalid gateway nope: invalid address"),
    ("10.5.0.0/16", "10.5.0.256", "invalid gateway 10.5.0.256: invalid address"),
    ("10.5.0.0/16", "fd00::1", "invalid gateway fd00::1: parent subnet is an IPv4 block"),
    ("fd00:5::/64", "10.5.0.1", "invalid gateway 10.5.0.1: parent subnet is an IPv6 block"),
    ("fd00:5::/64", "fd00:6::1",
     "invalid gateway fd00:6::1: parent subnet fd00:5::/64 doesn't contain this address"),
])
def test_gateway_refused(subnet, gateway, error):
    with pytest.raises(InvalidParameter) as e:
        SubnetAllocator.create(net(subnet), gateway=gateway)
    assert e.value.message == f"invalid network config:\n{error}"
    assert e.value.status == 400


@pytest.mark.parametrize(("subnet", "gateway"), [
    ("10.5.0.0/16", "10.5.0.0"),
    ("10.5.0.0/16", "10.5.255.255"),
    ("fd00:5::/64", "fd00:5::"),
])
def test_gateway_on_a_reserved_address(subnet, gateway):
    # Docker's IPAM holds the network (and IPv4 broadcast) address: asking
    # it for the gateway there fails as libnetwork words it
    with pytest.raises(SystemError_) as e:
        SubnetAllocator.create(net(subnet), gateway=gateway)
    assert e.value.message == f"failed to allocate gateway ({gateway}): Address already in use"


def test_ipv6_broadcast_like_address_is_an_ordinary_gateway():
    a = SubnetAllocator.create(net("fd00:5::/126"), gateway="fd00:5::3")
    assert a.gateway == addr("fd00:5::3")
    assert [a.allocate(), a.allocate()] == [addr("fd00:5::1"), addr("fd00:5::2")]


@pytest.mark.parametrize("subnet", ["10.5.0.0/31", "10.5.0.7/32"])
def test_subnet_too_small(subnet):
    with pytest.raises(InvalidParameter, match=r"too small for containers$"):
        SubnetAllocator.create(net(subnet, strict=False))


def test_smallest_ipv4_subnet_holds_one_container():
    a = SubnetAllocator.create(net("10.5.0.0/30"))
    assert a.gateway == addr("10.5.0.1")
    assert a.allocate() == addr("10.5.0.2")
    with pytest.raises(Conflict):
        a.allocate()


# ---------------------------------------------------------------- allocator: ip-range
@pytest.mark.parametrize(("ip_range", "errors"), [
    ("10.6.0.0/24",
     ["invalid ip-range 10.6.0.0/24: parent subnet 10.5.0.0/16 doesn't contain ip-range"]),
    ("10.0.0.0/8",
     ["invalid ip-range 10.0.0.0/8: CIDR block is bigger than its parent subnet 10.5.0.0/16"]),
    ("10.5.3.7/24", ["invalid ip-range 10.5.3.7/24: it should be 10.5.3.0/24"]),
    ("10.6.3.7/24", ["invalid ip-range 10.6.3.7/24: it should be 10.6.3.0/24",
                     ("invalid ip-range 10.6.3.7/24: parent subnet 10.5.0.0/16 doesn't "
                      "contain ip-range")]),
    ("fd00::/64", ["invalid ip-range fd00::/64: parent subnet is an IPv4 block"]),
    ("bogus", ["invalid ip-range bogus: invalid CIDR block notation"]),
    ("10.5.1.0", ["invalid ip-range 10.5.1.0: invalid CIDR block notation"]),
    ("10.5.1.0/33", ["invalid ip-range 10.5.1.0/33: invalid CIDR block notation"]),
])
def test_ip_range_refused(ip_range, errors):
    with pytest.raises(InvalidParameter) as e:
        SubnetAllocator.create(net("10.5.0.0/16"), ip_range=ip_range)
    assert e.value.message == "invalid network config:\n" + "\n".join(errors)


def test_ip_range_and_gateway_errors_are_reported_together():
    with pytest.raises(InvalidParameter) as e:
        SubnetAllocator.create(net("10.0.0.0/8"), gateway="192.168.0.1",
                               ip_range="192.168.0.1/24")
    assert e.value.message == (
        "invalid network config:\n"
        "invalid ip-range 192.168.0.1/24: it should be 192.168.0.0/24\n"
        "invalid ip-range 192.168.0.1/24: parent subnet 10.0.0.0/8 doesn't contain ip-range\n"
        "invalid gateway 192.168.0.1: parent subnet 10.0.0.0/8 doesn't contain this address")


def test_ip_range_equal_to_the_subnet():
    a = SubnetAllocator.create(net("10.5.0.0/24"), ip_range="10.5.0.0/24")
    assert a.gateway == addr("10.5.0.1")
    assert a.allocate() == addr("10.5.0.2")


@pytest.mark.parametrize(("subnet", "gateway", "ip_range", "handed_out"), [
    # as Docker's IPAM: every address of a range inside the subnet is handed out
    ("10.2.0.0/16", "10.2.0.1", "10.2.2.0/30", ["10.2.2.0", "10.2.2.1", "10.2.2.2", "10.2.2.3"]),
    # ... but never the subnet's broadcast address
    ("10.2.0.0/24", "10.2.0.1", "10.2.0.252/30", ["10.2.0.252", "10.2.0.253", "10.2.0.254"]),
    # ... nor the gateway
    ("10.2.0.0/16", "10.2.2.1", "10.2.2.0/30", ["10.2.2.0", "10.2.2.2", "10.2.2.3"]),
])
def test_containers_come_from_the_ip_range(subnet, gateway, ip_range, handed_out):
    a = SubnetAllocator.create(net(subnet), gateway=gateway, ip_range=ip_range)
    assert [a.allocate() for _ in handed_out] == [addr(x) for x in handed_out]
    with pytest.raises(Conflict) as e:
        a.allocate()
    assert e.value.message == "no available IPv4 addresses on this network's address pools"
    assert e.value.status == 409


def test_requested_address_may_lie_outside_the_range():
    a = SubnetAllocator.create(net("10.2.0.0/16"), ip_range="10.2.2.0/24")
    assert a.allocate("10.2.9.9") == addr("10.2.9.9")
    with pytest.raises(InvalidParameter):
        a.allocate("10.3.0.1")


# ---------------------------------------------------------------- allocate / release
def test_allocate_lowest_free_and_release():
    a = SubnetAllocator.create(net("10.5.0.0/24"))
    got = [a.allocate() for _ in range(3)]
    assert got == [addr("10.5.0.2"), addr("10.5.0.3"), addr("10.5.0.4")]
    assert a.taken == set(got)
    a.release(addr("10.5.0.3"))
    assert addr("10.5.0.3") not in a.taken
    # the lowest free address again, not the next one after the last handed out
    assert a.allocate() == addr("10.5.0.3")
    assert a.allocate() == addr("10.5.0.5")


def test_lowest_free_after_many_and_when_full():
    a = SubnetAllocator.create(net("10.5.0.0/24"))
    got = [a.allocate() for _ in range(253)]           # .2 to .254
    assert got[-1] == addr("10.5.0.254")
    with pytest.raises(Conflict):
        a.allocate()
    for ip in ("10.5.0.200", "10.5.0.7", "10.5.0.100"):
        a.release(addr(ip))
    assert [a.allocate() for _ in range(3)] == [addr("10.5.0.7"), addr("10.5.0.100"),
                                                 addr("10.5.0.200")]
    b = SubnetAllocator.create(net("10.6.0.0/24"))
    b.allocate("10.6.0.2")                              # asked for: the next goes past it
    b.taken.add(addr("10.6.0.3"))                       # claimed at daemon start
    assert b.allocate() == addr("10.6.0.4")


def test_release_of_an_address_not_held_is_harmless():
    a = SubnetAllocator.create(net("10.5.0.0/24"))
    a.release(addr("10.5.0.77"))
    a.release(addr("10.9.0.1"))
    assert a.taken == set()
    assert a.allocate() == addr("10.5.0.2")


def test_released_gateway_stays_reserved():
    a = SubnetAllocator.create(net("10.5.0.0/24"))
    a.release(a.gateway)
    assert a.allocate() == addr("10.5.0.2")


def test_allocate_requested():
    a = SubnetAllocator.create(net("10.5.0.0/24"))
    assert a.allocate("10.5.0.9") == addr("10.5.0.9")
    assert addr("10.5.0.9") in a.taken
    # the next free one is still the lowest, below the requested one
    assert a.allocate() == addr("10.5.0.2")


@pytest.mark.parametrize("requested", ["10.5.0.9", "10.5.0.1", "10.5.0.0", "10.5.0.255"])
def test_allocate_requested_in_use(requested):
    # taken, the gateway, the network address, the broadcast address: all
    # held by Docker's IPAM, ErrIPAlreadyAllocated, a 403
    a = SubnetAllocator.create(net("10.5.0.0/24"))
    a.allocate("10.5.0.9")
    before = set(a.taken)
    with pytest.raises(Forbidden) as e:
        a.allocate(requested)
    assert e.value.message == "Address already in use"
    assert e.value.status == 403
    assert a.taken == before


@pytest.mark.parametrize("requested", ["10.6.0.1", "fd00::1"])
def test_allocate_requested_outside_the_subnet(requested):
    a = SubnetAllocator.create(net("10.5.0.0/24"))
    with pytest.raises(InvalidParameter) as e:
        a.allocate(requested)
    assert e.value.message == (f"invalid address {requested}: It does not belong to any of "
                               "this network's subnets")
    assert a.taken == set()


def test_allocate_requested_not_an_address():
    a = SubnetAllocator.create(net("10.5.0.0/24"))
    with pytest.raises(InvalidParameter, match=r"^invalid IP address: 10\.5\.0$"):
        a.allocate("10.5.0")


def test_exhaustion_ipv4():
    a = SubnetAllocator.create(net("10.5.0.0/29"))
    # 8 addresses: network, gateway, broadcast, and 5 for containers
    got = [a.allocate() for _ in range(5)]
    assert got == [addr(f"10.5.0.{i}") for i in range(2, 7)]
    with pytest.raises(Conflict) as e:
        a.allocate()
    assert e.value.message == "no available IPv4 addresses on this network's address pools"
    assert a.taken == set(got)
    a.release(addr("10.5.0.4"))
    assert a.allocate() == addr("10.5.0.4")


def test_exhaustion_ipv6():
    a = SubnetAllocator.create(net("fd00:5::/126"))
    # the Subnet-Router anycast address (::0) is reserved; IPv6 has no broadcast
    assert a.gateway == addr("fd00:5::1")
    assert [a.allocate(), a.allocate()] == [addr("fd00:5::2"), addr("fd00:5::3")]
    with pytest.raises(Conflict) as e:
        a.allocate()
    assert e.value.message == "no available IPv6 addresses on this network's address pools"


def test_ipv6_anycast_address_cannot_be_requested():
    a = SubnetAllocator.create(net("fd00:5::/64"))
    with pytest.raises(Forbidden, match="^Address already in use$"):
        a.allocate("fd00:5::")
    assert a.allocate("fd00:5::ffff:ffff:ffff:ffff") == addr("fd00:5::ffff:ffff:ffff:ffff")


def test_allocators_are_independent():
    a = SubnetAllocator.create(net("10.5.0.0/24"))
    b = SubnetAllocator.create(net("10.5.0.0/24"))
    a.allocate()
    assert b.allocate() == addr("10.5.0.2")
