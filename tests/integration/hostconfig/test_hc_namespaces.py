"""Namespace modes and identity: pid, ipc, uts, net, cgroupns; hostname,
domainname, /etc/hosts, /etc/resolv.conf; sysctls."""

from __future__ import annotations

import os
import socket
import time

from hc_util import run_out


def _ns(kind: str) -> str:
    return os.readlink(f"/proc/self/ns/{kind}")


def test_pid_host_and_private(daemon):
    host = run_out(daemon, "--pid", "host", "busybox", "sh", "-c",
                   "readlink /proc/self/ns/pid; ls /proc | grep -c '^[0-9]'")
    ns, count = host.split()
    assert ns == _ns("pid") and int(count) > 10
    private = run_out(daemon, "busybox", "sh", "-c", "readlink /proc/self/ns/pid; echo $$")
    ns, pid = private.split()
    assert ns != _ns("pid") and pid == "1"


def test_pid_container(daemon, name):
    daemon.out("run", "-d", "--name", name, "busybox", "sleep", "30")
    try:
        out = run_out(daemon, "--pid", f"container:{name}", "busybox", "ps", "-o", "comm")
        assert "sleep" in out.split()
    finally:
        daemon.docker("rm", "-f", name)


def test_network_none(daemon):
    out = run_out(daemon, "--network", "none", "busybox", "sh", "-c",
                  "ls /sys/class/net; readlink /proc/self/ns/net")
    *ifaces, ns = out.split()
    assert ifaces == ["lo"] and ns != _ns("net")


def test_network_host(daemon):
    out = run_out(daemon, "--network", "host", "busybox", "sh", "-c",
                  "readlink /proc/self/ns/net; hostname")
    ns, hostname = out.split()
    assert ns == _ns("net")
    assert hostname == socket.gethostname()


def test_ipc_host(daemon):
    assert run_out(daemon, "--ipc", "host", "busybox", "readlink",
                   "/proc/self/ns/ipc").strip() == _ns("ipc")


def test_ipc_shareable_and_container(daemon, name):
    daemon.out("run", "-d", "--name", name, "--ipc", "shareable", "busybox", "sh", "-c",
               "echo shared > /dev/shm/f; exec sleep 30")
    try:
        pid = daemon.out("inspect", "-f", "{{.State.Pid}}", name).strip()
        deadline = time.time() + 5
        out = ""
        while time.time() < deadline and "shared" not in out:
            out = run_out(daemon, "--ipc", f"container:{name}", "busybox", "sh", "-c",
                          "readlink /proc/self/ns/ipc; cat /dev/shm/f 2>/dev/null")
        ns, content = out.split()
        assert ns == os.readlink(f"/proc/{pid}/ns/ipc")
        assert content == "shared"    # the same /dev/shm, not only the namespace
        assert daemon.out("inspect", "-f", "{{.HostConfig.IpcMode}}", name).strip() == \
            "shareable"
    finally:
        daemon.docker("rm", "-f", name)
    # the shareable /dev/shm mount went with the container
    with open("/proc/self/mountinfo") as f:
        assert str(daemon.data_root) + "/containers/" not in "".join(
            ln for ln in f if "/mounts/shm" in ln)


def test_ipc_container_needs_shareable_donor(daemon, name, failed_run):
    daemon.out("run", "-d", "--name", name, "busybox", "sleep", "30")
    try:
        code, err = failed_run("--ipc", f"container:{name}")
        assert code == 125
        assert "non-shareable IPC (hint: use IpcMode:shareable for the donor container)" in err
    finally:
        daemon.docker("rm", "-f", name)


def test_ipc_none(daemon):
    res = daemon.docker("run", "--rm", "--ipc", "none", "busybox", "ls", "/dev/shm")
    assert res.returncode == 1 and b"No such file" in res.stderr


def test_uts_host(daemon):
    out = run_out(daemon, "--uts", "host", "busybox", "sh", "-c",
                  "readlink /proc/self/ns/uts; hostname")
    ns, hostname = out.split()
    assert ns == _ns("uts") and hostname == socket.gethostname()


def test_hostname_and_domainname(daemon):
    out = run_out(daemon, "-h", "myhost", "--domainname", "example.org", "busybox", "sh",
                  "-c", "hostname; cat /proc/sys/kernel/domainname /etc/hostname; "
                  "grep -c . /etc/hosts; echo $HOSTNAME")
    assert out.split()[:3] == ["myhost", "example.org", "myhost"]
    assert out.split()[-1] == "myhost"


def test_default_hostname_is_short_id(daemon, name):
    cid = daemon.out("run", "--name", name, "busybox", "hostname").strip()
    try:
        full = daemon.out("inspect", "-f", "{{.Id}} {{.Config.Hostname}}", name).split()
        assert cid == full[0][:12] == full[1]
    finally:
        daemon.docker("rm", "-f", name)


def test_dns_and_extra_hosts(daemon):
    out = run_out(daemon, "--dns", "1.2.3.4", "--dns-search", "example.com", "--dns-option",
                  "ndots:2", "--add-host", "foo:10.1.2.3", "--add-host", "six:fd00::1",
                  "busybox", "sh", "-c", "cat /etc/resolv.conf; echo ===; cat /etc/hosts")
    resolv, hosts = out.split("===\n")
    lines = [ln for ln in resolv.splitlines() if ln and not ln.startswith("#")]
    assert lines == ["nameserver 1.2.3.4", "search example.com", "options ndots:2"]
    assert "10.1.2.3\tfoo" in hosts.splitlines()
    assert "fd00::1\tsix" in hosts.splitlines()
    assert hosts.splitlines()[0] == "127.0.0.1\tlocalhost"


def test_resolv_conf_without_dns_drops_loopback(daemon):
    out = run_out(daemon, "busybox", "cat", "/etc/resolv.conf")
    servers = [ln.split()[1] for ln in out.splitlines() if ln.startswith("nameserver")]
    assert servers and not [s for s in servers if s.startswith("127.")]


def test_cgroupns(daemon):
    private = run_out(daemon, "--cgroupns", "private", "busybox", "sh", "-c",
                      "readlink /proc/self/ns/cgroup; grep memory /proc/self/cgroup")
    ns, line = private.split()
    assert ns != _ns("cgroup") and line.endswith(":/")
    host = run_out(daemon, "--cgroupns", "host", "busybox", "sh", "-c",
                   "readlink /proc/self/ns/cgroup; grep memory /proc/self/cgroup")
    ns, line = host.split()
    assert ns == _ns("cgroup") and "/dockyard/" in line


def test_sysctl(daemon):
    out = run_out(daemon, "--sysctl", "net.ipv4.ip_forward=1", "--sysctl", "kernel.shmmni=1000",
                  "busybox", "cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/shmmni")
    assert out.split() == ["1", "1000"]
    # Docker's defaults for a private network namespace
    out = run_out(daemon, "busybox", "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start",
                  "/proc/sys/net/ipv4/ping_group_range")
    assert out.split() == ["0", "0", "2147483647"]


def test_net_sysctl_refused_with_host_network(daemon, failed_run):
    code, err = failed_run("--network", "host", "--sysctl", "net.ipv4.ip_forward=1")
    assert code != 0 and "net.ipv4.ip_forward" in err


def test_network_container(daemon, name, failed_run):
    daemon.out("run", "-d", "--name", name, "-h", "donorhost", "--dns", "9.9.9.9", "busybox",
               "sleep", "30")
    try:
        pid = daemon.out("inspect", "-f", "{{.State.Pid}}", name).strip()
        out = run_out(daemon, "--network", f"container:{name}", "busybox", "sh", "-c",
                      "readlink /proc/self/ns/net; hostname; grep ^nameserver /etc/resolv.conf")
        ns, hostname, _, server = out.split()
        # the donor's network, name and resolv.conf
        assert ns == os.readlink(f"/proc/{pid}/ns/net")
        assert (hostname, server) == ("donorhost", "9.9.9.9")
        _code, err = failed_run("--network", f"container:{name}", "-h", "x")
        assert "conflicting options: hostname and the network mode" in err
    finally:
        daemon.docker("rm", "-f", name)
