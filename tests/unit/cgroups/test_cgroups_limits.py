from __future__ import annotations

from cgroups_testutil import FIXTURES

from dockyard.cgroups.limits import (
    CpuQuota,
    parse_oom_kill_count,
    read_cpu_quota,
    read_cpu_shares,
    read_cpuset,
    read_memory_limit,
    read_memory_reservation,
    read_memory_swap_limit,
    read_oom_kill_count,
    read_pids_limit,
)
from dockyard.cgroups.paths import ContainerCgroup

V1_CTRLS = ("memory", "cpu", "cpuacct", "pids", "blkio", "cpuset")


def v1(dirname: str) -> ContainerCgroup:
    # v1 file names carry their controller's prefix, so one directory can
    # stand in for every controller's.
    return ContainerCgroup(1, {c: str(FIXTURES / dirname) for c in V1_CTRLS})


def v2(dirname: str) -> ContainerCgroup:
    return ContainerCgroup(2, {"": str(FIXTURES / "v2" / dirname)})


def test_v1_captured_limits():
    cg = v1("v1")
    assert read_memory_limit(cg) == 268435456
    assert read_memory_swap_limit(cg) is None        # memsw left unlimited
    assert read_memory_reservation(cg) is None
    assert read_cpu_quota(cg) == CpuQuota(50000, 100000)
    assert read_cpu_shares(cg) == 1024
    assert read_pids_limit(cg) == 64
    assert read_cpuset(cg) == ("0-1", "0")
    assert read_oom_kill_count(cg) == 0


def test_v1_captured_oom_kill():
    cg = ContainerCgroup(1, {"memory": str(FIXTURES / "v1-oom")})
    assert read_oom_kill_count(cg) == 1
    assert read_memory_limit(cg) == 33554432


def test_v1_unlimited_spellings(tmp_path):
    (tmp_path / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (tmp_path / "cpu.cfs_quota_us").write_text("-1\n")
    (tmp_path / "cpu.cfs_period_us").write_text("100000\n")
    (tmp_path / "pids.max").write_text("max\n")
    cg = ContainerCgroup(1, {c: str(tmp_path) for c in V1_CTRLS})
    assert read_memory_limit(cg) is None
    assert read_cpu_quota(cg) == CpuQuota(None, 100000)
    assert read_pids_limit(cg) is None


def test_v2_limited():
    cg = v2("limited")
    assert read_memory_limit(cg) == 67108864
    assert read_memory_swap_limit(cg) == 67108864   # memory.swap.max 0: no swap
    assert read_cpu_quota(cg) == CpuQuota(50000, 100000)
    assert read_cpu_shares(cg) == 100               # cpu.weight
    assert read_pids_limit(cg) == 64
    assert read_oom_kill_count(cg) == 1
    assert read_cpuset(cg) == ("0-1", None)


def test_v2_unlimited():
    cg = v2("unlimited")
    assert read_memory_limit(cg) is None
    assert read_memory_swap_limit(cg) is None
    assert read_cpu_quota(cg) == CpuQuota(None, 100000)
    assert read_pids_limit(cg) is None
    assert read_oom_kill_count(cg) == 0


def test_gone_cgroup_reads_as_nothing(tmp_path):
    for cg in (ContainerCgroup(1, {c: str(tmp_path / "gone") for c in V1_CTRLS}),
               ContainerCgroup(2, {"": str(tmp_path / "gone")}), ContainerCgroup(1, {})):
        assert read_oom_kill_count(cg) == 0
        assert read_memory_limit(cg) is None
        assert read_cpu_quota(cg) == CpuQuota(None, None)
        assert read_pids_limit(cg) is None
        assert read_cpuset(cg) == (None, None)


def test_parse_oom_kill_count_formats():
    assert parse_oom_kill_count("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n") == 3
    assert parse_oom_kill_count("low 0\nhigh 0\nmax 9\noom 2\noom_kill 2\noom_group_kill 0\n") == 2
    assert parse_oom_kill_count("oom_kill_disable 0\nunder_oom 0\n") == 0   # kernels < 4.13
    assert parse_oom_kill_count(None) == 0
