"""Cgroup namespaces: private by default on v2 (the container sees its own
group as the root), host on request (it sees the whole tree)."""

from __future__ import annotations

from v2util import MB


def test_private_by_default(docker, name):
    out = docker.out("run", "--name", name, "busybox", "sh", "-c",
                     "cat /proc/self/cgroup; ls /sys/fs/cgroup/cgroup.controllers")
    assert out.splitlines() == ["0::/", "/sys/fs/cgroup/cgroup.controllers"]
    assert docker.inspect(name)["HostConfig"]["CgroupnsMode"] == "private"


def test_host_cgroupns(docker, name):
    """The container sees the whole tree: its /proc/self/cgroup names its
    real group, whose limit it reads under its own /sys/fs/cgroup mount."""
    out = docker.out("run", "--name", name, "--cgroupns", "host", "--memory", "64m", "busybox",
                     "sh", "-c", 'p=$(sed -n "s/^0:://p" /proc/self/cgroup); echo "$p"; '
                                 'cat "/sys/fs/cgroup$p/memory.max"')
    path, limit = out.split()
    assert path != "/" and len(path) > 1
    assert limit == str(64 * MB)
    assert docker.inspect(name)["HostConfig"]["CgroupnsMode"] == "host"
