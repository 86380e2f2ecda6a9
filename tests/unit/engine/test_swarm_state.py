"""The one-node swarm's state: what an init request becomes, its checks,
and Docker's shapes (no I/O but the save/load round trip in a tmp dir)."""

from __future__ import annotations

import ipaddress

import pytest

from dockyard.engine.swarm.state import (
    DEFAULT_SPEC,
    SwarmState,
    check_node_spec,
    check_spec,
    new_object_id,
    new_state,
)
from dockyard.errors import InvalidParameter, NotImplementedByEngine

IFACES = {"eth0": "192.0.2.7", "lo": "127.0.0.1"}


def _state(body, default_source="198.51.100.3"):
    return new_state(body, IFACES.get, lambda: default_source, now=1_700_000_000_000_000_000)


def test_object_ids_are_swarmkit_shaped_and_distinct():
    ids = {new_object_id() for _ in range(500)}
    assert len(ids) == 500
    assert all(len(i) == 25 and i.isalnum() and i == i.lower() for i in ids)


@pytest.mark.parametrize(("body", "listen", "advertise"), [
    ({}, "0.0.0.0:2377", "198.51.100.3:2377"),
    ({"ListenAddr": "0.0.0.0:4000"}, "0.0.0.0:4000", "198.51.100.3:4000"),
    ({"ListenAddr": "127.0.0.1:4000"}, "127.0.0.1:4000", "127.0.0.1:4000"),
    ({"ListenAddr": "eth0"}, "192.0.2.7:2377", "192.0.2.7:2377"),
    ({"ListenAddr": "0.0.0.0:4000", "AdvertiseAddr": "eth0"}, "0.0.0.0:4000",
     "192.0.2.7:4000"),
    ({"AdvertiseAddr": "10.1.2.3:5000"}, "0.0.0.0:2377", "10.1.2.3:5000"),
])
def test_addresses(body, listen, advertise):
    s = _state(body)
    assert (s.listen_addr, s.advertise_addr) == (listen, advertise)
    assert s.info_json()["NodeAddr"] == advertise.rsplit(":", 1)[0]
    assert s.info_json()["RemoteManagers"] == [{"NodeID": s.node_id, "Addr": advertise}]


@pytest.mark.parametrize(("body", "text"), [
    ({"ListenAddr": "nosuch0:2377"}, "neither an IP address nor an interface"),
    ({"ListenAddr": "0.0.0.0:99999"}, "invalid port"),
    ({"ListenAddr": "0.0.0.0:x"}, "invalid port"),
    ({"ListenAddr": ":2377"}, "an address or interface is needed"),
    ({"AdvertiseAddr": "wlan9"}, "neither an IP address nor an interface"),
    ({"ListenAddr": 5}, "ListenAddr must be a string"),
    ({"DataPathPort": 80}, "not in the valid range 1024-49151"),
    ({"DataPathPort": "4789"}, "DataPathPort must be a number"),
    ({"DefaultAddrPool": ["10.0.0.0/33"]}, "invalid CIDR"),
    ({"DefaultAddrPool": ["fd00::/48"]}, "only IPv4 pools"),
    ({"DefaultAddrPool": "10.0.0.0/8"}, "must be a list"),
    ({"DefaultAddrPool": ["10.20.0.0/16"], "SubnetSize": 8}, "invalid subnet size 8"),
    ({"SubnetSize": 30}, "invalid subnet size 30"),
    ({"Spec": []}, "Spec must be an object"),
    ("x", "must be an object"),
])
def test_bad_init_requests(body, text):
    with pytest.raises(InvalidParameter) as e:
        _state(body)
    assert text in e.value.message


def test_no_address_to_advertise():
    with pytest.raises(InvalidParameter) as e:
        _state({}, default_source=None)
    assert "--advertise-addr" in e.value.message


def test_pools_and_subnet_size():
    s = _state({})
    assert s.pools()[0].base == ipaddress.ip_network("10.0.0.0/8")
    assert s.pools()[0].size == 24
    assert s.cluster_json()["DefaultAddrPool"] == ["10.0.0.0/8"]
    s = _state({"DefaultAddrPool": ["10.20.0.0/16", "10.30.0.1/16"], "SubnetSize": 26})
    assert [str(p.base) for p in s.pools()] == ["10.20.0.0/16", "10.30.0.0/16"]
    assert {p.size for p in s.pools()} == {26}
    assert s.cluster_json()["SubnetSize"] == 26
    assert s.data_path_port == 4789
    assert _state({"DataPathPort": 7777}).cluster_json()["DataPathPort"] == 7777


def test_spec_defaults_and_merge():
    assert check_spec(None) == DEFAULT_SPEC
    spec = check_spec({"Orchestration": {"TaskHistoryRetentionLimit": 9},
                       "Raft": {"ElectionTick": 0}, "Labels": {"a": "b"}, "Name": ""})
    assert spec["Orchestration"]["TaskHistoryRetentionLimit"] == 9
    assert spec["Raft"]["ElectionTick"] == 10         # zero: the default
    assert spec["Labels"] == {"a": "b"} and spec["Name"] == "default"
    assert DEFAULT_SPEC["Orchestration"]["TaskHistoryRetentionLimit"] == 5   # not mutated
    # an update starts from the current spec
    again = check_spec({"Dispatcher": {"HeartbeatPeriod": 7}}, base=spec)
    assert again["Orchestration"]["TaskHistoryRetentionLimit"] == 9
    assert again["Dispatcher"]["HeartbeatPeriod"] == 7


@pytest.mark.parametrize("spec", [
    {"EncryptionConfig": {"AutoLockManagers": True}},
    {"CAConfig": {"ExternalCAs": [{"Protocol": "cfssl", "URL": "https://ca"}]}},
    {"CAConfig": {"SigningCACert": "x", "SigningCAKey": "y"}},
    {"CAConfig": {"ForceRotate": 1}},
])
def test_what_one_node_cannot_do_is_refused(spec):
    with pytest.raises(NotImplementedByEngine):
        check_spec(spec)


def test_tokens_and_shapes():
    s = _state({"ListenAddr": "127.0.0.1:4000"})
    c = s.cluster_json()
    assert c["ID"] == s.cluster_id and c["Version"] == {"Index": 10}
    assert c["JoinTokens"]["Worker"].startswith(f"SWMTKN-1-{s.cluster_secret}-")
    assert c["JoinTokens"]["Worker"] != c["JoinTokens"]["Manager"]
    assert "JoinTokens" not in s.info_json()["Cluster"]
    assert c["CreatedAt"] == "2023-11-14T22:13:20Z"
    node = s.node_json({"Hostname": "h"})
    assert node["Spec"] == {"Labels": {}, "Role": "manager", "Availability": "active"}
    assert node["ManagerStatus"] == {"Leader": True, "Reachability": "reachable",
                                     "Addr": "127.0.0.1:4000"}
    assert node["Status"] == {"State": "ready", "Addr": "127.0.0.1"}


def test_save_and_load(tmp_path):
    assert SwarmState.load(tmp_path) is None
    s = _state({})
    s.node_spec = check_node_spec({"Labels": {"z": "1"}, "Availability": "pause"})
    s.save(tmp_path / "swarm")
    assert SwarmState.load(tmp_path / "swarm") == s


@pytest.mark.parametrize(("spec", "text"), [
    ({"Role": "worker"}, "demote the last manager"),
    ({"Role": "boss"}, "invalid role"),
    ({"Availability": "gone"}, "invalid availability"),
    ({"Labels": []}, "Labels must be an object"),
    ([], "must be an object"),
])
def test_bad_node_specs(spec, text):
    with pytest.raises(InvalidParameter) as e:
        check_node_spec(spec)
    assert text in e.value.message


def test_node_spec_keeps_name_labels_availability():
    assert check_node_spec({"Labels": {"a": 1}, "Name": "n", "Availability": "drain"}) == {
        "Labels": {"a": "1"}, "Role": "manager", "Availability": "drain", "Name": "n"}
