"""Bridge networks end to end: addresses, names, isolation, published ports,
connect/disconnect, the network API's shapes and errors, and hygiene."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
import uuid

import pytest

SERVE = "mkdir -p /www; echo {text} > /www/index.html; exec httpd -f -p 80 -h /www"


def _net(daemon, **kw: str) -> str:
    name = f"n-{uuid.uuid4().hex[:8]}"
    args = ["network", "create"]
    for k, v in kw.items():
        args += [f"--{k.replace('_', '-')}", v]
    daemon.out(*args, name)
    return name


@pytest.fixture
def net(daemon):
    name = _net(daemon)
    yield name
    daemon.docker("network", "rm", name)


def _inspect(daemon, what: str) -> dict:
    return json.loads(daemon.out("inspect", what))[0]


def _wait_http(url: str, timeout: float = 10) -> bytes:
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.read()
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def test_default_bridge_gives_an_address_and_a_route(daemon):
    out = daemon.out("run", "--rm", "busybox", "sh", "-c", "ip -4 addr show eth0; ip route")
    assert "inet " in out and "default via" in out


def test_containers_resolve_each_other_by_name_and_alias(daemon, net, name):
    daemon.out("run", "-d", "--name", name, "--network", net, "--network-alias", "dbalias",
               "busybox", "sh", "-c", SERVE.format(text="page"))
    try:
        for host in (name, "dbalias"):
            out = daemon.out("run", "--rm", "--network", net, "busybox", "sh", "-c",
                             f"for i in 1 2 3 4 5; do wget -qO- http://{host}/ && exit 0; "
                             "sleep 0.2; done; exit 1")
            assert out == "page\n"
        other = _net(daemon)
        try:
            res = daemon.docker("run", "--rm", "--network", other, "busybox", "nslookup", name)
            assert res.returncode != 0
            ip = _inspect(daemon, name)["NetworkSettings"]["Networks"][net]["IPAddress"]
            res = daemon.docker("run", "--rm", "--network", other, "busybox", "wget", "-T",
                                "2", "-qO-", f"http://{ip}/")
            assert res.returncode != 0          # bridge networks are isolated
        finally:
            daemon.docker("network", "rm", other)
    finally:
        daemon.docker("rm", "-f", name)


def test_published_port_reaches_the_container_from_the_host(daemon, name):
    port = _free_port()
    daemon.out("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:80", "busybox", "sh",
               "-c", SERVE.format(text="hello"))
    try:
        assert _wait_http(f"http://127.0.0.1:{port}/") == b"hello\n"
        assert daemon.out("port", name).strip() == f"80/tcp -> 127.0.0.1:{port}"
        ports = _inspect(daemon, name)["NetworkSettings"]["Ports"]
        assert ports == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
        ps = daemon.out("ps", "--filter", f"name={name}", "--format", "{{.Ports}}")
        assert ps.strip() == f"127.0.0.1:{port}->80/tcp"
        res = daemon.docker("run", "--rm", "-p", f"127.0.0.1:{port}:80", "busybox", "true")
        assert res.returncode != 0
        assert "port is already allocated" in res.stderr.decode()
    finally:
        daemon.docker("rm", "-f", name)
    # the port is free again once the container is gone
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.close()


def test_ephemeral_port_and_publish_all(daemon, name):
    daemon.out("run", "-d", "--name", name, "-P", "--expose", "80", "busybox", "sh", "-c",
               SERVE.format(text="any"))
    try:
        mapping = daemon.out("port", name, "80/tcp").split(":")[-1].strip()
        assert 32768 <= int(mapping) <= 60999
        assert _wait_http(f"http://127.0.0.1:{mapping}/") == b"any\n"
    finally:
        daemon.docker("rm", "-f", name)


def test_connect_and_disconnect_a_running_container(daemon, net, name):
    daemon.out("run", "-d", "--name", name, "busybox", "sleep", "300")
    try:
        daemon.out("network", "connect", "--alias", "extra", net, name)
        out = daemon.out("exec", name, "ip", "-o", "-4", "addr")
        assert "eth1" in out
        nets = _inspect(daemon, name)["NetworkSettings"]["Networks"]
        assert set(nets) == {"bridge", net} and nets[net]["IPAddress"]
        res = daemon.docker("network", "connect", net, name)
        assert res.returncode != 0 and "already exists in network" in res.stderr.decode()
        daemon.out("network", "disconnect", net, name)
        assert "eth1" not in daemon.out("exec", name, "ip", "-o", "-4", "addr")
        res = daemon.docker("network", "disconnect", net, name)
        assert res.returncode != 0 and "is not connected to network" in res.stderr.decode()
    finally:
        daemon.docker("rm", "-f", name)


def test_network_inspect_and_list_shapes(daemon):
    name = _net(daemon, subnet="10.123.45.0/24", gateway="10.123.45.254", label="k=v")
    try:
        info = _inspect(daemon, name)
        assert info["Driver"] == "bridge" and info["Scope"] == "local"
        assert info["IPAM"]["Config"] == [{"Subnet": "10.123.45.0/24",
                                           "Gateway": "10.123.45.254"}]
        assert info["Labels"] == {"k": "v"}
        import docker
        api = docker.APIClient(base_url=f"unix://{daemon.socket}", version="1.44")
        assert api.inspect_network(name, scope="local")["Id"] == info["Id"]
        with pytest.raises(docker.errors.NotFound, match=f"network {name} not found"):
            api.inspect_network(name, scope="swarm")
        listed = daemon.out("network", "ls", "--filter", "label=k=v", "--format", "{{.Name}}")
        assert listed.split() == [name]
        builtin = daemon.out("network", "ls", "--filter", "type=builtin", "--format",
                             "{{.Name}}")
        assert sorted(builtin.split()) == ["bridge", "host", "none"]
        cid = daemon.out("run", "-d", "--network", name, "--ip", "10.123.45.7", "busybox",
                         "sleep", "300").strip()
        try:
            members = _inspect(daemon, name)["Containers"]
            assert members[cid]["IPv4Address"] == "10.123.45.7/24"
            res = daemon.docker("network", "rm", name)
            assert res.returncode != 0 and "has active endpoints" in res.stderr.decode()
        finally:
            daemon.docker("rm", "-f", cid)
    finally:
        daemon.docker("network", "rm", name)


@pytest.mark.parametrize("args,text", [
    (["network", "create", "--subnet", "bad", "x-bad"], "invalid CIDR address: bad"),
    (["network", "create", "--driver", "weird", "x-weird"], 'plugin "weird" not found'),
    (["run", "--rm", "--network", "nosuch", "busybox", "true"], "network nosuch not found"),
    (["run", "--rm", "--ip", "172.30.0.50", "busybox", "true"],
     "user-specified IP address is supported on user-defined networks only"),
    (["network", "rm", "nosuch"], "network nosuch not found"),
    (["network", "rm", "bridge"], "pre-defined network and cannot be removed"),
])
def test_network_errors(daemon, args, text):
    res = daemon.docker(*args)
    assert res.returncode != 0
    assert text in res.stderr.decode()


def test_overlapping_subnet_and_duplicate_name(daemon):
    name = _net(daemon, subnet="10.124.0.0/16")
    try:
        res = daemon.docker("network", "create", "--subnet", "10.124.5.0/24", "x-overlap")
        assert "Pool overlaps with other one on this address space" in res.stderr.decode()
        res = daemon.docker("network", "create", name)
        assert f"network with name {name} already exists" in res.stderr.decode()
    finally:
        daemon.docker("network", "rm", name)


def test_internal_network_has_no_way_out(daemon):
    net = f"n-{uuid.uuid4().hex[:8]}"
    daemon.out("network", "create", "--internal", net)
    try:
        out = daemon.out("run", "--rm", "--network", net, "busybox", "ip", "route")
        assert "default" not in out
    finally:
        daemon.docker("network", "rm", net)


def test_nothing_left_after_many_containers(daemon, net):
    def counts() -> tuple[int, int, int]:
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
        netns = len(list((daemon.exec_root / "netns").iterdir()))
        return links.count("veth"), rules.count("DOCKYARD"), netns

    daemon.out("run", "--rm", "--network", net, "busybox", "true")
    before = counts()
    for i in range(20):
        daemon.out("run", "--rm", "--network", net if i % 2 else "bridge",
                   *(["-p", "80"] if i % 3 == 0 else []), "busybox", "true")
    deadline = time.time() + 5     # the last veths are deleted in the background
    while counts() != before and time.time() < deadline:
        time.sleep(0.05)
    assert counts() == before


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_legacy_link_on_the_default_bridge(daemon, name):
    daemon.out("run", "-d", "--name", name, "--expose", "80", "-e", "SECRET=s3", "busybox",
               "sleep", "300")
    try:
        ip = _inspect(daemon, name)["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        out = daemon.out("run", "--rm", "--name", f"{name}-client", "--link",
                         f"{name}:dbalias", "busybox", "sh", "-c",
                         "grep dbalias /etc/hosts; env | grep ^DBALIAS_ | sort")
        lines = out.splitlines()
        assert lines[0].split()[:2] == [ip, "dbalias"]
        env = dict(line.split("=", 1) for line in lines[1:])
        assert env["DBALIAS_NAME"] == f"/{name}-client/dbalias"
        assert env["DBALIAS_PORT"] == f"tcp://{ip}:80"
        assert env["DBALIAS_PORT_80_TCP_ADDR"] == ip
        assert env["DBALIAS_ENV_SECRET"] == "s3"
        res = daemon.docker("run", "--rm", "--link", "nosuchcontainer:x", "busybox", "true")
        assert res.returncode != 0
    finally:
        daemon.docker("rm", "-f", name)


def test_link_on_a_user_network(daemon, net, name):
    """On a user-defined network a link is a name the network's DNS answers;
    the linked container may come later (no /etc/hosts line, no variables)."""
    linker = daemon.out("run", "-d", "--network", net, "--link", f"{name}:peer", "busybox",
                        "sleep", "300").strip()
    try:
        assert "peer" not in daemon.out("exec", linker, "cat", "/etc/hosts")
        assert "PEER_NAME" not in daemon.out("exec", linker, "env")
        daemon.out("run", "-d", "--name", name, "--network", net, "busybox", "sleep", "300")
        ip = _inspect(daemon, name)["NetworkSettings"]["Networks"][net]["IPAddress"]
        out = daemon.out("exec", linker, "nslookup", "peer")
        assert ip in out.split("Name:")[-1], out
        links = _inspect(daemon, linker)["NetworkSettings"]["Networks"][net]["Links"]
        assert links == [f"{name}:peer"]
    finally:
        daemon.docker("rm", "-f", name, linker)


def test_mac_address_on_the_main_network(daemon, net):
    mac = "02:42:0a:0b:0c:0d"
    for args in (["--mac-address", mac], ["--network", net, "--mac-address", mac]):
        out = daemon.out("run", "--rm", *args, "busybox", "cat", "/sys/class/net/eth0/address")
        assert out.strip() == mac
    res = daemon.docker("run", "--rm", "--mac-address", "nope", "busybox", "true")
    assert res.returncode != 0


_UDP_RECEIVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5000))
print("ready", flush=True)
while True:
    print(s.recv(100).decode().strip(), flush=True)
"""


def test_udp_client_reaches_the_next_container_on_its_port(daemon, name, tmp_path):
    """A UDP client that never stops sending keeps its conntrack entry: the
    entry DNATed to a stopped container must go with it.  (busybox has no
    UDP server: a receiver runs in each container's network namespace.)"""
    net = _net(daemon, subnet="10.231.7.0/24")
    port = _free_port()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receivers: list[subprocess.Popen] = []
    try:
        for ip, who in (("10.231.7.10", "first"), ("10.231.7.11", "second")):
            daemon.out("run", "-d", "--name", f"{name}-{who}", "--network", net, "--ip", ip,
                       "-p", f"127.0.0.1:{port}:5000/udp", "busybox", "sleep", "600")
            pid = _inspect(daemon, f"{name}-{who}")["State"]["Pid"]
            got = tmp_path / who
            rx = subprocess.Popen(["nsenter", "-t", str(pid), "-n", "python3", "-c",
                                   _UDP_RECEIVER], stdout=got.open("w"))
            receivers.append(rx)
            deadline = time.time() + 10
            while f"to-{who}" not in got.read_text():
                assert time.time() < deadline, f"the {who} container got nothing"
                sender.sendto(f"to-{who}\n".encode(), ("127.0.0.1", port))
                time.sleep(0.1)
            daemon.out("rm", "-f", f"{name}-{who}")
    finally:
        sender.close()
        for rx in receivers:
            rx.kill()
            rx.wait()
        daemon.docker("rm", "-f", f"{name}-first", f"{name}-second")
        daemon.docker("network", "rm", net)


def test_endpoint_driver_options_and_link_local_ips(daemon, net, name):
    body = {"Image": "busybox", "Cmd": ["sleep", "600"],
            "HostConfig": {"NetworkMode": net},
            "NetworkingConfig": {"EndpointsConfig": {net: {
                "IPAMConfig": {"LinkLocalIPs": ["169.254.8.8"]},
                "DriverOpts": {"com.docker.network.endpoint.ifname": "app0",
                               "com.example.setting": "on"}}}}}
    import http.client

    class Unix(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(daemon.socket)

    def post(path: str, payload: dict | None = None) -> tuple[int, bytes]:
        conn = Unix("localhost", timeout=30)
        conn.request("POST", path, body=json.dumps(payload) if payload is not None else None,
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        out = r.read()
        conn.close()
        return r.status, out

    status, out = post(f"/containers/create?name={name}", body)
    assert status == 201, out
    try:
        assert post(f"/containers/{name}/start")[0] == 204
        addrs = daemon.out("exec", name, "ip", "-o", "addr", "show", "app0")
        assert "inet 169.254.8.8/16" in addrs      # the name and the extra address
        ep = _inspect(daemon, name)["NetworkSettings"]["Networks"][net]
        assert ep["IPAMConfig"]["LinkLocalIPs"] == ["169.254.8.8"]
        assert ep["DriverOpts"] == {"com.docker.network.endpoint.ifname": "app0",
                                    "com.example.setting": "on"}
    finally:
        daemon.docker("rm", "-f", name)
    # what the bridge driver would apply but dockyard does not is refused
    bad = dict(body, NetworkingConfig={"EndpointsConfig": {net: {"DriverOpts": {
        "com.docker.network.endpoint.sysctls": "net.ipv4.conf.IFNAME.log_martians=1"}}}})
    status, out = post("/containers/create", bad)
    assert status == 400
    assert b"endpoint driver option com.docker.network.endpoint.sysctls is not supported" in out
    status, out = post("/containers/create", dict(body, NetworkingConfig={
        "EndpointsConfig": {net: {"IPAMConfig": {"LinkLocalIPs": ["10.1.1.1"]}}}}))
    assert status == 400 and b"invalid link-local IP address: 10.1.1.1" in out


def test_auxiliary_addresses_are_never_given_out(daemon):
    net = _net(daemon, subnet="10.231.9.0/29", aux_address="router=10.231.9.2")
    try:
        cfg = _inspect_net(daemon, net)["IPAM"]
        assert cfg["Config"][0]["AuxiliaryAddresses"] == {"router": "10.231.9.2"}
        assert cfg["Options"] is None
        out = daemon.out("run", "--rm", "--network", net, "busybox", "ip", "-4", "-o", "addr",
                         "show", "eth0")
        assert "inet 10.231.9.3/29" in out
        res = daemon.docker("run", "--rm", "--network", net, "--ip", "10.231.9.2", "busybox",
                            "true")
        assert res.returncode != 0 and "Address already in use" in res.stderr.decode()
    finally:
        daemon.docker("network", "rm", net)
    # the CLI checks this itself; an API client gets the daemon's 400
    import docker
    from docker.types import IPAMConfig, IPAMPool
    api = docker.APIClient(base_url=f"unix://{daemon.socket}")
    with pytest.raises(docker.errors.APIError) as err:
        api.create_network("x-aux", ipam=IPAMConfig(pool_configs=[IPAMPool(
            subnet="10.231.10.0/24", aux_addresses={"x": "10.9.9.9"})]))
    assert err.value.status_code == 400
    assert "invalid auxiliary address x=10.9.9.9: not in subnet" in str(err.value)


def _inspect_net(daemon, net: str) -> dict:
    return json.loads(daemon.out("network", "inspect", net))[0]


def test_rm_link_forgets_the_link_and_removes_no_container(daemon, name):
    daemon.out("run", "-d", "--name", name, "busybox", "sleep", "300")
    daemon.out("run", "-d", "--name", f"{name}-app", "--link", f"{name}:db", "busybox",
               "sleep", "300")
    try:
        names = daemon.out("ps", "--no-trunc", "--filter", f"name=^{name}$", "--format",
                           "{{.Names}}")
        assert sorted(names.strip().split(",")) == sorted([name, f"{name}-app/db"])
        res = daemon.docker("rm", "--link", name)    # not a link name
        assert res.returncode != 0
        assert "cannot remove the default link name" in res.stderr.decode()
        daemon.out("rm", "--link", f"{name}-app/db")
        assert _inspect(daemon, f"{name}-app")["HostConfig"]["Links"] is None
        names = daemon.out("ps", "--no-trunc", "--filter", f"name=^{name}$", "--format",
                           "{{.Names}}")
        assert names.strip() == name
        assert _inspect(daemon, name)["State"]["Running"]      # both still there
        assert _inspect(daemon, f"{name}-app")["State"]["Running"]
        res = daemon.docker("rm", "--link", f"{name}-app/db")
        assert res.returncode != 0 and "No such container" in res.stderr.decode()
    finally:
        daemon.docker("rm", "-f", name, f"{name}-app")


def test_short_id_alias_for_clients_before_api_1_45(daemon, net, name):
    import docker
    cid = daemon.out("create", "--name", name, "--network", net, "--network-alias", "web",
                     "busybox", "true").strip()
    try:
        for version, want in (("1.44", ["web", cid[:12]]), ("1.45", ["web"])):
            api = docker.APIClient(base_url=f"unix://{daemon.socket}", version=version)
            got = api.inspect_container(name)["NetworkSettings"]["Networks"][net]["Aliases"]
            assert got == want, version
    finally:
        daemon.docker("rm", "-f", name)


def test_a_bridge_deleted_behind_our_back_is_made_again(daemon, net):
    bridge = "dy-" + _inspect_net(daemon, net)["Id"][:12]
    daemon.out("run", "--rm", "--network", net, "busybox", "true")
    subprocess.run(["ip", "link", "del", bridge], check=True)
    out = daemon.out("run", "--rm", "--network", net, "busybox", "ip", "-4", "-o", "addr",
                     "show", "eth0")
    assert " inet " in out
    assert subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode == 0
