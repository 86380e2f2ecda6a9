"""HostConfig resources on cgroup v2: each option read back inside the
container (its own group through the private cgroup namespace) and in the
API.  The v2 file and value differ from v1 for nearly every option: memory
swap is memory.swap.max (swap minus memory), shares become cpu.weight,
quota/period one cpu.max line, throttles io.max lines, weight io.weight."""

from __future__ import annotations

import time

import pytest
from v2util import MB, cat_in, io_weight, runc_weight


def test_memory_limit_reservation_default_swap(docker):
    got = cat_in(docker, "--memory", "64m", "--memory-reservation", "32m",
                 files=("memory.max", "memory.swap.max", "memory.low"))
    # dockerd defaults MemorySwap to 2 x Memory; v2's memory.swap.max holds
    # the swap alone; the reservation is memory.low.
    assert got == {"memory.max": str(64 * MB), "memory.swap.max": str(64 * MB),
                   "memory.low": str(32 * MB)}


def test_memory_unlimited_by_default(docker):
    got = cat_in(docker, files=("memory.max", "memory.swap.max", "memory.low", "pids.max",
                                "cpu.max", "cpu.weight", "io.max"))
    assert got == {"memory.max": "max", "memory.swap.max": "max", "memory.low": "0",
                   "pids.max": "max", "cpu.max": "max 100000", "cpu.weight": "100", "io.max": ""}


@pytest.mark.parametrize("swap,expected", [
    ("96m", str(32 * MB)),     # total 96m -> 32m of swap on top of 64m
    ("64m", "0"),              # swap == memory: no swap at all
    ("-1", "max"),             # unlimited swap
])
def test_memory_swap(docker, swap, expected):
    got = cat_in(docker, "--memory", "64m", "--memory-swap", swap,
                 files=("memory.max", "memory.swap.max"))
    assert got == {"memory.max": str(64 * MB), "memory.swap.max": expected}


def test_memory_in_api(docker, name):
    docker.out("create", "--name", name, "--memory", "64m", "--memory-reservation", "32m",
               "busybox", "true")
    hc = docker.inspect(name)["HostConfig"]
    assert (hc["Memory"], hc["MemorySwap"], hc["MemoryReservation"]) == (64 * MB, 128 * MB,
                                                                        32 * MB)


@pytest.mark.parametrize("args,cpu_max,shares", [
    (("--cpus", "0.5"), "50000 100000", 512),
    (("--cpu-quota", "25000", "--cpu-period", "50000"), "25000 50000", 2048),
])
def test_cpu_max_and_shares_as_cpu_weight(docker, name, args, cpu_max, shares):
    """--cpus and quota/period become one cpu.max line; shares become
    cpu.weight through the runtime's linear map (never written raw)."""
    got = cat_in(docker, "--name", name, *args, "--cpu-shares", str(shares),
                 files=("cpu.max", "cpu.weight"))
    assert got == {"cpu.max": cpu_max, "cpu.weight": str(runc_weight(shares))}


def test_cpuset(docker, info):
    if info["NCPU"] < 2:
        pytest.skip("needs 2 CPUs")
    out = docker.out("run", "--rm", "--cpuset-cpus", "1", "--cpuset-mems", "0", "busybox", "sh",
                     "-c", "cat /sys/fs/cgroup/cpuset.cpus /sys/fs/cgroup/cpuset.cpus.effective "
                     "/sys/fs/cgroup/cpuset.mems; grep Cpus_allowed_list /proc/self/status; nproc")
    assert out.split() == ["1", "1", "0", "Cpus_allowed_list:", "1", "1"]


def test_pids_limit_enforced(docker):
    got = cat_in(docker, "--pids-limit", "20", files=("pids.max",))
    assert got["pids.max"] == "20"
    # 30 background sleeps in a group allowing 20 tasks: fork fails.
    res = docker.run("run", "--rm", "--pids-limit", "20", "busybox", "sh", "-c",
                     "i=0; while [ $i -lt 30 ]; do sleep 3 & i=$((i + 1)); done; echo all forked")
    assert "all forked" not in res.stdout
    assert "can't fork" in res.stderr, res.stderr


def test_io_throttle_lines(docker, data_dev):
    dev, majmin = data_dev
    got = cat_in(docker, "--device-read-bps", f"{dev}:1mb", "--device-write-iops", f"{dev}:100",
                 files=("io.max",))
    assert got["io.max"] == f"{majmin} rbps=1048576 wbps=max riops=max wiops=100"


def test_io_read_bps_enforced(docker, data_dev):
    dev, _ = data_dev
    # 2 MiB of direct reads at 1 MiB/s: well over a second (unthrottled: ms).
    t0 = time.monotonic()
    res = docker.run("run", "--rm", "--device", dev, "--device-read-bps", f"{dev}:1mb",
                     "busybox", "dd", f"if={dev}", "of=/dev/null", "bs=64k", "count=32",
                     "iflag=direct")
    took = time.monotonic() - t0
    assert res.returncode == 0, res.stderr
    assert took >= 1.5, f"2 MiB read at 1 MiB/s took only {took:.2f} s"


def test_blkio_weight(docker, info):
    # The lane's kernel has blk-iocost (io.weight) built in, BFQ as a module
    # that nothing loads: the daemon must see weight support, and runc write
    # the converted value to io.weight (io.bfq.weight as is, were BFQ active).
    assert "WARNING: No blkio weight support" not in info["Warnings"], info["Warnings"]
    out = docker.out("run", "--rm", "--blkio-weight", "300", "busybox", "sh", "-c",
                     "cat /sys/fs/cgroup/io.bfq.weight 2>/dev/null || cat /sys/fs/cgroup/io.weight")
    assert out.split()[:2] in (["default", "300"], ["default", str(io_weight(300))]), out


def test_ulimits_and_oom_score_adj(docker):
    out = docker.out("run", "--rm", "--ulimit", "nofile=1024:2048", "--ulimit", "nproc=500",
                     "--oom-score-adj", "200", "busybox", "sh", "-c",
                     "ulimit -Sn; ulimit -Hn; ulimit -u; cat /proc/self/oom_score_adj")
    assert out.split() == ["1024", "2048", "500", "200"]


def test_oom_kill_reported(docker, name):
    # No swap in the VM and memory.swap.max 0: the pipe's tail buffers 200 MB
    # of newline-free input and is OOM-killed in its 32 MB group.
    res = docker.run("run", "--name", name, "--memory", "32m", "--memory-swap", "32m",
                     "busybox", "sh", "-c", "head -c 200m /dev/zero | tail")
    assert res.returncode == 137, (res.returncode, res.stderr)
    st = docker.inspect(name)["State"]
    assert st["OOMKilled"] is True, st
    assert st["ExitCode"] == 137


def test_docker_py_resources(client, data_dev):
    dev, majmin = data_dev
    out = client.containers.run(
        "busybox", ["sh", "-c", "cd /sys/fs/cgroup && cat memory.max cpu.max pids.max io.max"],
        remove=True, mem_limit="48m", nano_cpus=250_000_000, pids_limit=33,
        device_write_bps=[{"Path": dev, "Rate": 2 * MB}])
    assert out.decode().splitlines() == [
        str(48 * MB), "25000 100000", "33", f"{majmin} rbps=max wbps={2 * MB} riops=max wiops=max"]


def test_other_runtimes(docker, info):
    """Every other runtime the daemon offers (crun: no hybrid-host detour
    here) creates limited containers on v2 too; the default one is used by
    every other test."""
    runtimes = sorted(info["Runtimes"])
    assert info["DefaultRuntime"] in runtimes
    if len(runtimes) < 2:
        pytest.skip(f"only {runtimes} installed")
    for rt in (r for r in runtimes if r != info["DefaultRuntime"]):
        got = cat_in(docker, "--runtime", rt, "--memory", "64m", "--cpus", "0.5",
                     "--cpu-shares", "512", "--pids-limit", "20",
                     files=("memory.max", "cpu.max", "cpu.weight", "pids.max"))
        assert got == {"memory.max": str(64 * MB), "cpu.max": "50000 100000",
                       "cpu.weight": str(runc_weight(512)), "pids.max": "20"}, rt


def test_v1_only_options_discarded_with_warnings(docker):
    """memory.swappiness and the OOM-killer switch have no v2 file: dockerd
    drops them with its warnings and the container still runs."""
    res = docker.run("run", "--rm", "--memory", "64m", "--memory-swappiness", "10",
                     "--oom-kill-disable", "busybox", "cat", "/sys/fs/cgroup/memory.max")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(64 * MB)
    assert "Memory swappiness discarded" in res.stderr, res.stderr
    assert "OomKillDisable discarded" in res.stderr, res.stderr
