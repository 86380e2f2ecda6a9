"""Network and endpoint records (dockyard.engine.networks.records): what is
persisted and read back, Docker's Network object; a container's networking
in inspect's shape and the `network` filter (dockyard.engine.networks.views);
the address claims of a restarted daemon (NetworkStore.claim)."""

from __future__ import annotations

import json
import stat
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytest

from dockyard.engine.containers.record import Container, State
from dockyard.engine.networks.ports import PortMapping
from dockyard.engine.networks.records import (
    BRIDGE_OPTIONS,
    Endpoint,
    NetworkRecord,
    SubnetConfig,
)
from dockyard.engine.networks.store import NetworkStore
from dockyard.engine.networks.views import network_settings, on_network

NET_ID = "1" * 64
CID = "c0ffee" + "0" * 58
CREATED = 1_700_000_000_123_456_789


def user_net(**kw: Any) -> NetworkRecord:
    net = NetworkRecord(
        id=NET_ID, name="mynet", driver="bridge", created=CREATED, bridge="dy-111111111111",
        subnets=[SubnetConfig("10.9.0.0/16", "10.9.0.1", "10.9.4.0/24", user_subnet=True),
                 SubnetConfig("fd00:9::/64", "fd00:9::1")],
        ipv6=True, labels={"team": "a"}, options={BRIDGE_OPTIONS["mtu"]: "1400"},
        ipam_options={"opt": "1"}, mtu=1400)
    return replace(net, **kw)


def endpoint() -> Endpoint:
    return Endpoint(
        network_id=NET_ID, network_name="mynet", endpoint_id="e" * 64, ifname="eth0",
        host_ifname="vethabc", ip="10.9.4.2", prefixlen=16, gateway="10.9.0.1",
        ip6="fd00:9::2", prefixlen6=64, gateway6="fd00:9::1", mac="02:42:0a:09:04:02",
        aliases=["web"], dns_names=["c", "web", CID[:12]], requested_ip="10.9.4.2",
        link_local=["169.254.1.1"], upstream=["192.0.2.53"])


# ---------------------------------------------------------------- SubnetConfig
def test_subnet_config_json():
    assert SubnetConfig("10.9.0.0/16").to_json() == {"Subnet": "10.9.0.0/16"}
    s = SubnetConfig("10.9.0.0/16", "10.9.0.1", "10.9.4.0/24")
    assert s.to_json() == {"Subnet": "10.9.0.0/16", "IPRange": "10.9.4.0/24",
                           "Gateway": "10.9.0.1"}
    assert s.to_json(show_gateway=False) == {"Subnet": "10.9.0.0/16", "IPRange": "10.9.4.0/24"}
    aux = SubnetConfig("10.9.0.0/16", "10.9.0.1", aux={"router": "10.9.0.254"})
    out = aux.to_json()
    assert out == {"Subnet": "10.9.0.0/16", "Gateway": "10.9.0.1",
                   "AuxiliaryAddresses": {"router": "10.9.0.254"}}
    out["AuxiliaryAddresses"]["x"] = "y"
    assert aux.aux == {"router": "10.9.0.254"}


# ---------------------------------------------------------------- NetworkRecord
def test_network_json():
    containers = {CID: {"Name": "c"}}
    assert user_net().to_json(containers) == {
        "Name": "mynet",
        "Id": NET_ID,
        "Created": "2023-11-14T22:13:20.123456789Z",
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv4": True,
        "EnableIPv6": True,
        "IPAM": {"Driver": "default", "Options": {"opt": "1"},
                 "Config": [{"Subnet": "10.9.0.0/16", "IPRange": "10.9.4.0/24",
                             "Gateway": "10.9.0.1"},
                            {"Subnet": "fd00:9::/64", "Gateway": "fd00:9::1"}]},
        "Internal": False,
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": containers,
        "Options": {"com.docker.network.driver.mtu": "1400"},
        "Labels": {"team": "a"},
    }


def test_network_json_is_a_copy():
    net = user_net()
    out = net.to_json({})
    out["Options"]["x"] = "y"
    out["Labels"].clear()
    assert net.options == {"com.docker.network.driver.mtu": "1400"}
    assert net.labels == {"team": "a"}


def test_predefined_networks_json():
    bridge = NetworkRecord(id="2" * 64, name="bridge", driver="bridge", created=CREATED,
                           bridge="dockyard0", predefined=True,
                           subnets=[SubnetConfig("172.17.0.0/16", "172.17.0.1")])
    out = bridge.to_json({})
    # the default bridge shows its subnet without a gateway
    assert out["IPAM"] == {"Driver": "default", "Options": None,
                           "Config": [{"Subnet": "172.17.0.0/16"}]}
    host = NetworkRecord(id="3" * 64, name="host", driver="host", created=0, predefined=True)
    out = host.to_json({})
    assert out["Driver"] == "host"
    assert out["EnableIPv4"] is False and out["EnableIPv6"] is False
    assert out["IPAM"]["Config"] == []
    assert out["Created"] == "0001-01-01T00:00:00Z"


def test_network_properties():
    net = user_net()
    assert net.is_bridge and net.user_defined and net.dns_enabled
    assert net.subnet4() == SubnetConfig("10.9.0.0/16", "10.9.0.1", "10.9.4.0/24", True)
    assert net.subnet6() == SubnetConfig("fd00:9::/64", "fd00:9::1")
    v6only = user_net(subnets=[SubnetConfig("fd00:9::/64")])
    assert v6only.subnet4() is None and v6only.subnet6() is not None
    bridge = user_net(predefined=True)
    assert not bridge.user_defined and not bridge.dns_enabled
    host = NetworkRecord(id="3" * 64, name="host", driver="host", created=0, predefined=True)
    assert not host.is_bridge and not host.dns_enabled
    assert host.subnet4() is None and host.subnet6() is None


def test_network_save_and_load(tmp_path: Path):
    net = user_net(internal=True, attachable=True)
    net.save(tmp_path)
    path = tmp_path / f"{NET_ID}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == asdict(net)
    assert NetworkRecord.load(path) == net


def test_network_load_of_a_record_without_subnets(tmp_path: Path):
    d = asdict(user_net(subnets=[]))
    del d["subnets"]
    (tmp_path / "n.json").write_text(json.dumps(d))
    assert NetworkRecord.load(tmp_path / "n.json") == user_net(subnets=[])


def test_network_load_of_an_unknown_field_fails(tmp_path: Path):
    # NetworkStore.load skips such a record (TypeError) rather than guess
    d = {**asdict(user_net()), "future": 1}
    (tmp_path / "n.json").write_text(json.dumps(d))
    with pytest.raises(TypeError):
        NetworkRecord.load(tmp_path / "n.json")


# ---------------------------------------------------------------- Endpoint
def test_endpoint_round_trip():
    ep = endpoint()
    # as the container record keeps it: vars(), through JSON
    assert Endpoint.from_json(json.loads(json.dumps(vars(ep)))) == ep
    assert Endpoint.from_json(asdict(ep)) == ep


def test_endpoint_defaults():
    ep = Endpoint.from_json({"network_id": NET_ID, "network_name": "mynet",
                             "endpoint_id": "e" * 64, "ifname": "eth1"})
    assert (ep.ip, ep.ip6, ep.mac, ep.aliases, ep.dns_names, ep.upstream) == (
        "", "", "", [], [], [])
    assert Endpoint.from_json(vars(ep)) == ep


# ---------------------------------------------------------------- views
@pytest.fixture
def store(tmp_path: Path) -> NetworkStore:
    s = NetworkStore(tmp_path)
    s.load(lambda: "172.17.0.0/16")
    s.add(user_net())
    return s


def container(mode: str = "bridge", running: bool = True, **kw: Any) -> Container:
    c = Container(id=CID, name="c", created=0, image_ref="img", image_id="sha256:x",
                  config={"Hostname": "myhost", **kw.pop("config", {})},
                  host_config={"NetworkMode": mode},
                  state=State(status="running" if running else "exited"), **kw)
    return c


def bridge_endpoint(store: NetworkStore) -> dict[str, Any]:
    b = store.get("bridge")
    return vars(Endpoint(network_id=b.id, network_name="bridge", endpoint_id="b" * 64,
                         ifname="eth0", ip="172.17.0.2", prefixlen=16, gateway="172.17.0.1",
                         mac="02:42:ac:11:00:02"))


def test_running_container_on_the_default_bridge(store):
    c = container(config={"ExposedPorts": {"80/tcp": {}, "443/tcp": {}}},
                  endpoints={"bridge": bridge_endpoint(store)},
                  ports=[vars(PortMapping(80, "tcp", "0.0.0.0", 8080))])
    ns = network_settings(c, store, "/run/netns/x", (1, 52))
    assert ns == {
        "SandboxID": CID,
        "SandboxKey": "/run/netns/x",
        "Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "443/tcp": None},
        "Networks": {"bridge": {
            "IPAMConfig": None, "Links": None, "Aliases": None,
            "MacAddress": "02:42:ac:11:00:02", "DriverOpts": None, "GwPriority": 0,
            "NetworkID": store.get("bridge").id, "EndpointID": "b" * 64,
            "Gateway": "172.17.0.1", "IPAddress": "172.17.0.2", "IPPrefixLen": 16,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "DNSNames": None,
        }},
    }


def test_legacy_top_level_fields_before_api_1_52(store):
    c = container(endpoints={"bridge": bridge_endpoint(store)})
    ns = network_settings(c, store, "/run/netns/x", (1, 51))
    assert (ns["IPAddress"], ns["IPPrefixLen"], ns["Gateway"], ns["MacAddress"],
            ns["EndpointID"]) == ("172.17.0.2", 16, "172.17.0.1", "02:42:ac:11:00:02", "b" * 64)
    assert "IPAddress" not in network_settings(c, store, "/run/netns/x", (1, 52))


def test_stopped_container(store):
    c = container(running=False, config={"ExposedPorts": {"80/tcp": {}}})
    ns = network_settings(c, store, "/run/netns/x", (1, 52))
    assert (ns["SandboxID"], ns["SandboxKey"], ns["Ports"]) == ("", "", {})
    bridge = ns["Networks"]["bridge"]
    assert bridge["NetworkID"] == store.get("bridge").id
    assert (bridge["EndpointID"], bridge["IPAddress"], bridge["IPPrefixLen"],
            bridge["MacAddress"]) == ("", "", 0, "")


def test_disconnected_from_its_network_mode(store):
    """After `network disconnect` from the network it was started on (or a
    swarm leave), the container shows no entry for it, as in dockerd."""
    c = container("app", networking_config={"EndpointsConfig": {}})
    assert network_settings(c, store, "/run/netns/x", (1, 52))["Networks"] == {}
    c = container("app", networking_config={"EndpointsConfig": {"app": {}}})
    assert list(network_settings(c, store, "/run/netns/x", (1, 52))["Networks"]) == ["app"]


@pytest.mark.parametrize("mode", ["host", "none"])
def test_host_and_none(store, mode):
    ns = network_settings(container(mode), store, "/run/netns/x", (1, 52))
    assert list(ns["Networks"]) == [mode]
    assert ns["Networks"][mode]["NetworkID"] == store.get(mode).id
    assert ns["Networks"][mode]["Aliases"] is None
    # a host-network container has no namespace of its own
    assert ns["SandboxKey"] == ("" if mode == "host" else "/run/netns/x")


def test_container_network_mode(store):
    ns = network_settings(container("container:other"), store, "/run/netns/x", (1, 52))
    assert ns["Networks"] == {}


def test_user_network_endpoint(store):
    ep = endpoint()
    c = container("mynet", endpoints={"mynet": vars(ep)},
                  networking_config={"EndpointsConfig": {"mynet": {
                      "Aliases": ["web"], "IPAMConfig": {"IPv4Address": "10.9.4.2"},
                      "DriverOpts": {"k": "v"}}}})
    out = network_settings(c, store, "/run/netns/x", (1, 52))["Networks"]["mynet"]
    assert out["Aliases"] == ["web"]
    assert out["IPAMConfig"] == {"IPv4Address": "10.9.4.2"}
    assert out["DriverOpts"] == {"k": "v"}
    assert (out["IPAddress"], out["GlobalIPv6Address"], out["GlobalIPv6PrefixLen"],
            out["IPv6Gateway"]) == ("10.9.4.2", "fd00:9::2", 64, "fd00:9::1")
    assert out["DNSNames"] == ["c", "web", CID[:12]]
    assert out["NetworkID"] == NET_ID


@pytest.mark.parametrize("running", [True, False])
def test_aliases_before_api_1_45(store, running):
    # dockerd's inspect before 1.45 adds the short id and the hostname to the
    # aliases on user-defined networks, whether the container runs or not
    c = container("mynet", running=running,
                  endpoints={"mynet": vars(endpoint())} if running else {},
                  networking_config={"EndpointsConfig": {"mynet": {"Aliases": ["web"]}}})
    old = network_settings(c, store, "/run/netns/x", (1, 44))["Networks"]["mynet"]
    assert old["Aliases"] == ["web", CID[:12], "myhost"]
    new = network_settings(c, store, "/run/netns/x", (1, 45))["Networks"]["mynet"]
    assert new["Aliases"] == ["web"]


def test_aliases_before_api_1_45_deduplicated_and_not_on_the_default_bridge(store):
    c = container("mynet", config={"Hostname": CID[:12]},
                  networking_config={"EndpointsConfig": {"mynet": {"Aliases": [CID[:12]]},
                                                         "bridge": {}}})
    nets = network_settings(c, store, "/run/netns/x", (1, 44))["Networks"]
    assert nets["mynet"]["Aliases"] == [CID[:12]]
    assert nets["bridge"]["Aliases"] is None


def test_networks_in_order_mode_first(store):
    c = container("mynet", networking_config={"EndpointsConfig": {"bridge": {}, "mynet": {}}},
                  endpoints={"mynet": vars(endpoint())})
    nets = network_settings(c, store, "/run/netns/x", (1, 52))["Networks"]
    assert list(nets) == ["mynet", "bridge"]


def test_mac_address_asked_for_a_stopped_container(store):
    c = container("mynet", running=False,
                  networking_config={"EndpointsConfig": {"mynet": {
                      "MacAddress": "02:00:00:00:00:01"}}})
    out = network_settings(c, store, "/run/netns/x", (1, 52))["Networks"]["mynet"]
    assert out["MacAddress"] == "02:00:00:00:00:01"


def test_unknown_network_has_no_id(store):
    c = container("gone")
    assert network_settings(c, store, "/n", (1, 52))["Networks"]["gone"]["NetworkID"] == ""


def test_network_filter(store):
    c = container("mynet", networking_config={"EndpointsConfig": {"mynet": {}}})
    assert on_network(c, store, ["mynet"])
    assert on_network(c, store, [NET_ID])
    assert on_network(c, store, [NET_ID[:5]])
    assert on_network(c, store, ["nope", "mynet"])
    assert not on_network(c, store, ["bridge"])
    assert not on_network(c, store, ["myne"])
    assert not on_network(c, store, [store.get("bridge").id])
    d = container("bridge")
    assert on_network(d, store, ["bridge"]) and not on_network(d, store, ["mynet"])


# ---------------------------------------------------------------- claims
def test_claim_marks_addresses_held_by_running_containers(store):
    net = store.get("mynet")
    store.claim(net, "10.9.4.0")
    store.claim(net, "fd00:9::2")
    store.claim(net, "")
    v4, v6 = store.allocator(net), store.allocator(net, v6=True)
    assert v4 is not None and v6 is not None
    assert {str(a) for a in v4.taken} == {"10.9.4.0"}
    assert {str(a) for a in v6.taken} == {"fd00:9::2"}
    # the next container gets the next free address of the range
    assert str(v4.allocate()) == "10.9.4.1"
    assert str(v6.allocate()) == "fd00:9::3"


def test_claim_on_a_network_without_addresses(store):
    host = store.get("host")
    store.claim(host, "10.9.4.7")
    assert store.allocator(host) is None


def test_store_keeps_its_networks_across_a_restart(store, tmp_path: Path):
    again = NetworkStore(tmp_path)
    again.load(lambda: pytest.fail("the default bridge's subnet is chosen once"))
    assert again.get("mynet") == store.get("mynet")
    assert again.get("bridge").id == store.get("bridge").id
    v4 = again.allocator(again.get("mynet"))
    assert v4 is not None and str(v4.gateway) == "10.9.0.1"


def test_auxiliary_addresses_are_never_handed_out(tmp_path: Path):
    s = NetworkStore(tmp_path)
    s.load(lambda: "172.17.0.0/16")
    s.add(user_net(subnets=[SubnetConfig("10.9.0.0/29", "10.9.0.1",
                                         aux={"a": "10.9.0.2", "b": "10.9.0.4"})]))
    v4 = s.allocator(s.get("mynet"))
    assert v4 is not None
    assert [str(v4.allocate()) for _ in range(3)] == ["10.9.0.3", "10.9.0.5", "10.9.0.6"]
