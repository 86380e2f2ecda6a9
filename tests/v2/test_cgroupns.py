"""Cgroup namespaces: private by default on v2 (the container sees its own
group as the root), host on request (it sees the whole tree)."""

from __future__ import annotations

from pathlib import Path

from v2util import CGROUP_ROOT, MB, host_cgroup_dir, read_host, run_detached


def test_private_by_default(docker, name):
    out = docker.out("run", "--name", name, "busybox", "sh", "-c",
                     "cat /proc/self/cgroup; ls /sys/fs/cgroup/cgroup.controllers")
    assert out.splitlines() == ["0::/", "/sys/fs/cgroup/cgroup.controllers"]
    assert docker.inspect(name)["HostConfig"]["CgroupnsMode"] == "private"


def test_explicit_private(docker):
    assert docker.out("run", "--rm", "--cgroupns", "private", "busybox",
                      "cat", "/proc/self/cgroup").strip() == "0::/"


def test_host_cgroupns(docker, name):
    run_detached(docker, name, "--cgroupns", "host", "--memory", "64m")
    d = host_cgroup_dir(docker, name)
    rel = "/" + str(d.relative_to(CGROUP_ROOT))
    assert docker.inspect(name)["HostConfig"]["CgroupnsMode"] == "host"
    # The container's init sees the host's view of its own group...
    pid = docker.inspect(name)["State"]["Pid"]
    assert Path(f"/proc/{pid}/cgroup").read_text().strip() == f"0::{rel}"
    # ... and its limit where the host sees it, through the container's
    # own /sys/fs/cgroup mount (read via its root).
    limit = Path(f"/proc/{pid}/root/sys/fs/cgroup{rel}/memory.max").read_text().strip()
    assert limit == read_host(d, "memory.max") == str(64 * MB)


def test_host_cgroupns_inside(docker):
    out = docker.out("run", "--rm", "--cgroupns", "host", "--memory", "64m", "busybox", "sh",
                     "-c", 'p=$(sed -n "s/^0:://p" /proc/self/cgroup); echo "$p"; '
                           'cat "/sys/fs/cgroup$p/memory.max"')
    path, limit = out.split()
    assert path != "/" and len(path) > 1
    assert limit == str(64 * MB)
