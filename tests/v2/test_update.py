"""Live `docker update` on v2: the new limits land in the running
container's group (memory.max, memory.swap.max, cpu.max, cpu.weight,
pids.max) and in the API."""

from __future__ import annotations

import pytest
from v2util import MB, host_cgroup_dir, read_host, run_detached, runc_weight

pytestmark = pytest.mark.needs("update")


def test_update_running_container(docker, name):
    run_detached(docker, name, "--memory", "64m", "--cpus", "0.5", "--pids-limit", "20")
    d = host_cgroup_dir(docker, name)
    docker.out("update", "--memory", "128m", "--memory-swap", "256m", "--cpus", "1.5",
               "--cpu-shares", "2048", "--pids-limit", "50", "--memory-reservation", "16m", name)
    assert read_host(d, "memory.max") == str(128 * MB)
    assert read_host(d, "memory.swap.max") == str(128 * MB)
    assert read_host(d, "memory.low") == str(16 * MB)
    assert read_host(d, "cpu.max") == "150000 100000"
    assert read_host(d, "cpu.weight") == str(runc_weight(2048))
    assert read_host(d, "pids.max") == "50"
    hc = docker.inspect(name)["HostConfig"]
    assert (hc["Memory"], hc["MemorySwap"], hc["NanoCpus"], hc["CpuShares"], hc["PidsLimit"],
            hc["MemoryReservation"]) == (128 * MB, 256 * MB, 1_500_000_000, 2048, 50, 16 * MB)
    # -1 lifts the pids limit again ("max", not a stale 50)
    docker.out("update", "--pids-limit", "-1", name)
    assert read_host(d, "pids.max") == "max"


def test_update_io_weight_and_quota_docker_py(client, docker, name):
    run_detached(docker, name)
    d = host_cgroup_dir(docker, name)
    client.containers.get(name).update(cpu_quota=20000, cpu_period=40000, mem_limit="96m",
                                       memswap_limit="96m")
    assert read_host(d, "cpu.max") == "20000 40000"
    assert read_host(d, "memory.max") == str(96 * MB)
    assert read_host(d, "memory.swap.max") == "0"


@pytest.mark.needs("exec")
def test_update_seen_inside(docker, name):
    run_detached(docker, name, "--memory", "64m")
    docker.out("update", "--memory", "80m", "--memory-swap", "160m", name)
    out = docker.out("exec", name, "cat", "/sys/fs/cgroup/memory.max")
    assert out.strip() == str(80 * MB)
