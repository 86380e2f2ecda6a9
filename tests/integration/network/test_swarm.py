"""Swarm mode as a swarm of one node: init, info, nodes, leave, and the
swarm-scoped (overlay) networks it serves to containers.

Each test runs its own daemon: a swarm changes what `/info` and the
network list answer, which no other test should see."""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.integration.conftest import Daemon, private_daemon, start_daemon, stop_daemon

SERVE = "mkdir -p /www; echo {text} > /www/index.html; exec httpd -f -p 80 -h /www"
NOT_A_MANAGER = "This node is not a swarm manager."


@pytest.fixture
def sd() -> Iterator[Daemon]:
    with private_daemon() as d:
        yield d


def _port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _init(d: Daemon) -> str:
    out = d.out("swarm", "init", "--advertise-addr", "127.0.0.1",
                "--listen-addr", f"127.0.0.1:{_port()}")
    assert "is now a manager" in out
    return json.loads(d.out("info", "--format", "{{json .Swarm}}"))["NodeID"]


def _api(d: Daemon) -> docker.APIClient:
    return docker.APIClient(base_url=d.host, version="1.44", timeout=60)


def _link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def _bridge_of(d: Daemon, net: str) -> str:
    net_id = json.loads(d.out("network", "inspect", net))[0]["Id"]
    return f"dy-{net_id[:12]}"


def test_init_info_nodes_and_leave(sd):
    res = sd.docker("network", "create", "-d", "overlay", "early")
    assert res.returncode != 0 and NOT_A_MANAGER in res.stderr.decode()
    node_id = _init(sd)
    swarm = json.loads(sd.out("info", "--format", "{{json .Swarm}}"))
    assert swarm["LocalNodeState"] == "active" and swarm["ControlAvailable"] is True
    assert swarm["NodeAddr"] == "127.0.0.1" and swarm["Nodes"] == 1
    assert swarm["RemoteManagers"][0]["NodeID"] == node_id
    nodes = sd.out("node", "ls", "--format", "{{.ID}} {{.Status}} {{.ManagerStatus}}").split()
    assert nodes == [node_id, "Ready", "Leader"]
    node = json.loads(sd.out("node", "inspect", node_id))[0]
    assert node["Spec"]["Role"] == "manager" and node["Status"]["Addr"] == "127.0.0.1"
    assert node["Description"]["Hostname"] == socket.gethostname()
    res = sd.docker("swarm", "init")
    assert res.returncode != 0 and "already part of a swarm" in res.stderr.decode()
    ls = sd.out("network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}").splitlines()
    assert "ingress overlay swarm" in ls
    ingress = json.loads(sd.out("network", "inspect", "ingress"))[0]
    assert ingress["Ingress"] is True and ingress["Attachable"] is False
    # the first /24 of the swarm's pool 10.0.0.0/8 clear of the host's routes
    subnet = ipaddress.ip_network(ingress["IPAM"]["Config"][0]["Subnet"])
    assert subnet.subnet_of(ipaddress.ip_network("10.0.0.0/8")) and subnet.prefixlen == 24
    assert sd.out("service", "ls", "-q") == ""
    # the last manager leaves only with --force, and the swarm's networks go
    res = sd.docker("swarm", "leave")
    assert res.returncode != 0 and "Use `--force`" in res.stderr.decode()
    sd.out("swarm", "leave", "--force")
    assert sd.out("info", "--format", "{{.Swarm.LocalNodeState}}").strip() == "inactive"
    assert "ingress" not in sd.out("network", "ls")
    res = sd.docker("node", "ls")
    assert res.returncode != 0 and NOT_A_MANAGER in res.stderr.decode()
    # and a new swarm can be made
    assert _init(sd) != node_id
    sd.out("swarm", "leave", "--force")


def test_attachable_overlay_network_end_to_end(sd):
    _init(sd)
    since = str(time.time() - 1)
    sd.out("network", "create", "-d", "overlay", "--attachable", "ov")
    net = json.loads(sd.out("network", "inspect", "ov"))[0]
    assert (net["Scope"], net["Driver"], net["Attachable"]) == ("swarm", "overlay", True)
    subnet = ipaddress.ip_network(net["IPAM"]["Config"][0]["Subnet"])
    assert subnet.subnet_of(ipaddress.ip_network("10.0.0.0/8")) and subnet.prefixlen == 24
    bridge = _bridge_of(sd, "ov")
    assert _link_exists(bridge)
    sd.out("run", "-d", "--name", "srv", "--network", "ov", "busybox", "sh", "-c",
           SERVE.format(text="over"))
    out = sd.out("run", "--rm", "--network", "ov", "busybox", "sh", "-c",
                 "for i in $(seq 50); do wget -qO- http://srv/ && exit; sleep 0.1; done; exit 1")
    assert out == "over\n"
    addr = json.loads(sd.out("inspect", "srv"))[0]["NetworkSettings"]["Networks"]["ov"]
    # the default bridge neither resolves the name nor reaches the address
    res = sd.docker("run", "--rm", "busybox", "sh", "-c",
                    f"nslookup srv; wget -T 2 -qO- http://{addr['IPAddress']}/")
    assert res.returncode != 0 and b"over" not in res.stdout
    # a network that is not attachable takes no container, nor does ingress
    sd.out("network", "create", "-d", "overlay", "closed")
    for target in ("closed", "ingress"):
        res = sd.docker("run", "--rm", "--network", target, "busybox", "true")
        assert res.returncode == 125
        assert f"network {target} not manually attachable" in res.stderr.decode()
    sd.out("run", "-d", "--name", "other", "busybox", "sleep", "300")
    res = sd.docker("network", "connect", "closed", "other")
    assert res.returncode != 0 and "not manually attachable" in res.stderr.decode()
    # connect and disconnect on the attachable one work live
    sd.out("network", "connect", "ov", "other")
    assert "eth1" in sd.out("exec", "other", "ip", "-o", "link")
    sd.out("network", "disconnect", "ov", "other")
    assert "eth1" not in sd.out("exec", "other", "ip", "-o", "link")
    # leaving takes the networks, and the containers on them lose them
    sd.out("swarm", "leave", "--force")
    assert "eth0" not in sd.out("exec", "srv", "ip", "-o", "link")
    assert json.loads(sd.out("inspect", "srv"))[0]["NetworkSettings"]["Networks"] == {}
    assert not _link_exists(bridge)
    res = sd.docker("network", "inspect", "ov")
    assert res.returncode != 0
    sd.out("rm", "-f", "srv", "other")
    # made and removed in the swarm's scope; joined and left on this node
    fmt = "{{.Scope}} {{.Action}} {{.Actor.Attributes.name}}"
    seen = sd.out("events", "--since", since, "--until", str(time.time() + 1),
                  "--filter", "network=ov", "--format", fmt).splitlines()
    assert seen[0] == "swarm create ov" and seen[-1] == "swarm destroy ov"
    assert "local connect ov" in seen and "local disconnect ov" in seen
    swarm_only = sd.out("events", "--since", since, "--until", str(time.time() + 1),
                        "--filter", "scope=swarm", "--format", fmt).splitlines()
    assert "swarm create ov" in swarm_only
    assert not [line for line in swarm_only if not line.startswith("swarm ")]


def test_scopes_and_refusals(sd):
    api = _api(sd)
    _init(sd)
    local = api.create_network(f"l-{uuid.uuid4().hex[:6]}", scope="local")["Id"]
    assert api.inspect_network(local, scope="local")["Scope"] == "local"
    with pytest.raises(docker.errors.NotFound):
        api.inspect_network(local, scope="swarm")
    swarm_net = api.create_network(f"s-{uuid.uuid4().hex[:6]}", driver="overlay",
                                   scope="swarm")["Id"]
    assert len(swarm_net) == 25
    assert api.inspect_network(swarm_net, scope="swarm")["Driver"] == "overlay"
    with pytest.raises(docker.errors.NotFound):
        api.inspect_network(swarm_net, scope="local")
    assert [n["Id"] for n in api.networks(filters={"scope": "swarm"})
            if n["Id"] == swarm_net] == [swarm_net]
    assert local not in [n["Id"] for n in api.networks(filters={"scope": "swarm"})]
    # a swarm-scoped bridge network is a bridge, shown in the swarm scope
    sb = api.create_network(f"b-{uuid.uuid4().hex[:6]}", scope="swarm")["Id"]
    assert api.inspect_network(sb)["Scope"] == "swarm"
    cases = [
        ({"driver": "overlay", "scope": "local"}, 403, "cannot downgrade network scope"),
        ({"driver": "overlay", "options": {"encrypted": ""}}, 400, "encrypted overlay"),
        ({"driver": "overlay", "options": {
            "com.docker.network.driver.overlay.vxlanid_list": "4200"}}, 400, "no VXLAN"),
        ({"driver": "overlay", "options": {"nope": "1"}}, 400, "unknown overlay option nope"),
        ({"driver": "overlay", "ingress": True}, 409, "is already present"),
        ({"driver": "bridge", "ingress": True}, 403, "Ingress network can only be"),
        ({"scope": "global"}, 400, "global scope"),
    ]
    for kw, status, text in cases:
        with pytest.raises(docker.errors.APIError) as e:
            api.create_network(f"x-{uuid.uuid4().hex[:6]}", **kw)
        assert e.value.status_code == status, kw
        assert text in str(e.value.explanation), kw
    # the ingress network goes when asked for by name (not by a prune), and
    # comes back made by hand; it cannot be attachable
    pruned = api.prune_networks()["NetworksDeleted"]
    assert "ingress" not in pruned and len(pruned) == 3     # local, swarm, swarm bridge
    assert api.inspect_network("ingress")["Ingress"] is True
    api.remove_network("ingress")
    with pytest.raises(docker.errors.APIError) as e:
        api.create_network("ing2", driver="overlay", ingress=True, attachable=True)
    assert e.value.status_code == 400 and "cannot be attachable" in str(e.value.explanation)
    assert api.inspect_network(api.create_network(
        "ing2", driver="overlay", ingress=True)["Id"])["Ingress"] is True
    # what needs more than one node, or an orchestrator, is refused
    for args, text in ((("service", "create", "busybox"), "Services are not supported"),
                       (("secret", "create", "s1", "-"), "Secrets are not supported"),
                       (("swarm", "join", "--token", "SWMTKN-1-x-y", "127.0.0.1:2377"),
                        "already part of a swarm"),
                       (("swarm", "update", "--autolock"), "autolock is not supported")):
        res = sd.docker(*args, input=b"x")
        assert res.returncode != 0 and text in res.stderr.decode(), args
    assert sd.out("service", "ls", "-q") == "" and sd.out("secret", "ls", "-q") == ""
    res = sd.docker("service", "inspect", "nope")
    assert res.returncode != 0 and "no such service: nope" in res.stderr.decode()
    sd.out("swarm", "leave", "--force")
    res = sd.docker("swarm", "join", "--token", "SWMTKN-1-x-y", "127.0.0.1:2377")
    assert res.returncode != 0 and "joining a swarm is not supported" in res.stderr.decode()
    api.close()


def test_swarm_and_node_updates(sd):
    api = _api(sd)
    node_id = _init(sd)
    swarm = api.inspect_swarm()
    assert swarm["DefaultAddrPool"] == ["10.0.0.0/8"] and swarm["SubnetSize"] == 24
    version = swarm["Version"]["Index"]
    worker = swarm["JoinTokens"]["Worker"]
    spec = api.create_swarm_spec(task_history_retention_limit=9)
    api.update_swarm(version=version, swarm_spec=spec, rotate_worker_token=True)
    after = api.inspect_swarm()
    assert after["Spec"]["Orchestration"]["TaskHistoryRetentionLimit"] == 9
    assert after["JoinTokens"]["Worker"] != worker
    assert after["JoinTokens"]["Manager"] == swarm["JoinTokens"]["Manager"]
    with pytest.raises(docker.errors.APIError) as e:      # a stale version
        api.update_swarm(version=version, swarm_spec=spec)
    assert e.value.status_code == 400 and "out of sequence" in str(e.value.explanation)
    node = api.inspect_node(node_id)
    new_spec = {**node["Spec"], "Labels": {"zone": "a"}, "Availability": "drain"}
    api.update_node(node_id, node["Version"]["Index"], new_spec)
    assert api.inspect_node(node_id)["Spec"] == new_spec
    assert [n["ID"] for n in api.nodes(filters={"node.label": "zone=a"})] == [node_id]
    assert api.nodes(filters={"node.label": "zone=b"}) == []
    demote = {**new_spec, "Role": "worker"}
    with pytest.raises(docker.errors.APIError) as e:
        api.update_node(node_id, api.inspect_node(node_id)["Version"]["Index"], demote)
    assert "demote the last manager" in str(e.value.explanation)
    with pytest.raises(docker.errors.APIError) as e:
        api.remove_node(node_id)
    assert e.value.status_code == 400
    with pytest.raises(docker.errors.NotFound):
        api.remove_node("foobar01")
    api.leave_swarm(force=True)
    api.close()


def test_swarm_networks_survive_a_daemon_restart():
    base = Path(tempfile.mkdtemp(prefix="dockyard-it-", dir="/var/tmp"))
    d = start_daemon(base)
    try:
        node_id = _init(d)
        d.out("network", "create", "-d", "overlay", "--attachable", "ov")
        d.out("run", "-d", "--name", "srv", "--network", "ov", "busybox", "sh", "-c",
              SERVE.format(text="kept"))
        stop_daemon(d, cleanup=False)
        d = start_daemon(base)
        assert json.loads(d.out("info", "--format", "{{json .Swarm}}"))["NodeID"] == node_id
        assert "ov overlay swarm" in d.out("network", "ls", "--format",
                                           "{{.Name}} {{.Driver}} {{.Scope}}")
        out = d.out("run", "--rm", "--network", "ov", "busybox", "sh", "-c",
                    "for i in $(seq 50); do wget -qO- http://srv/ && exit; sleep 0.1; done; "
                    "exit 1")
        assert out == "kept\n"
        bridge = _bridge_of(d, "ov")
        d.out("rm", "-f", "srv")
        d.out("swarm", "leave", "--force")
        assert not _link_exists(bridge)
    finally:
        stop_daemon(d)
