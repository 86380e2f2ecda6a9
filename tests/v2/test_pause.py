"""pause/unpause on v2 go through cgroup.freeze (no freezer controller)."""

from __future__ import annotations

import time

from v2util import host_cgroup_dir, read_host, run_detached, wait_for


def _frozen(d) -> str:
    return dict(ln.split() for ln in read_host(d, "cgroup.events").splitlines())["frozen"]


def _ticks(docker, name) -> int:
    return len(docker.out("logs", name).split())


def test_pause_unpause_freezes_the_group(docker, name):
    run_detached(docker, name, cmd=("sh", "-c", "while :; do echo t; sleep 0.1; done"))
    d = host_cgroup_dir(docker, name)
    assert read_host(d, "cgroup.freeze") == "0"

    docker.out("pause", name)
    assert read_host(d, "cgroup.freeze") == "1"
    wait_for(lambda: _frozen(d) == "1", timeout=10, what="cgroup.events frozen 1")
    st = docker.inspect(name)["State"]
    assert (st["Status"], st["Paused"], st["Running"]) == ("paused", True, True)
    n = _ticks(docker, name)
    time.sleep(1.0)
    assert _ticks(docker, name) == n, "the container kept running while paused"

    docker.out("unpause", name)
    assert read_host(d, "cgroup.freeze") == "0"
    wait_for(lambda: _frozen(d) == "0", timeout=10, what="cgroup.events frozen 0")
    st = docker.inspect(name)["State"]
    assert (st["Status"], st["Paused"]) == ("running", False)
    wait_for(lambda: _ticks(docker, name) > n, timeout=10, what="output after unpause")


def test_paused_container_can_be_removed(docker, name):
    run_detached(docker, name)
    docker.out("pause", name)
    docker.out("rm", "-f", name)
    assert docker.run("inspect", name).returncode != 0
