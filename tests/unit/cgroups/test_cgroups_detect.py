from __future__ import annotations

from pathlib import Path

from cgroups_testutil import FIXTURES, make_tree

from dockyard.cgroups.detect import cgroup_fact_fields, detect_cgroups, parse_mountinfo
from dockyard.oci.host import HostFacts

HYBRID_MOUNTINFO = (FIXTURES / "mountinfo" / "hybrid_host").read_text()
V1_MOUNTINFO = (FIXTURES / "mountinfo" / "v1_host").read_text()
V2_MOUNTINFO = (FIXTURES / "mountinfo" / "v2_host").read_text()

# The root-level files of this project's hybrid host (kernel 6.18), as listed
# from /sys/fs/cgroup/<controller>: no CFQ blkio.weight, RT group scheduling
# built in, kmem files present but inert.
HOST_ROOT_FILES = {
    "cpu": ["cpu.cfs_burst_us", "cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.idle",
            "cpu.rt_period_us", "cpu.rt_runtime_us", "cpu.shares", "cpu.stat"],
    "cpuacct": ["cpuacct.stat", "cpuacct.usage", "cpuacct.usage_percpu"],
    "cpuset": ["cpuset.cpus", "cpuset.mems", "cpuset.effective_cpus", "cpuset.effective_mems"],
    "memory": ["memory.failcnt", "memory.kmem.limit_in_bytes", "memory.kmem.tcp.limit_in_bytes",
               "memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.oom_control",
               "memory.soft_limit_in_bytes", "memory.stat", "memory.swappiness"],
    "blkio": ["blkio.bfq.io_service_bytes", "blkio.throttle.io_service_bytes",
              "blkio.throttle.read_bps_device", "blkio.throttle.read_iops_device",
              "blkio.throttle.write_bps_device", "blkio.throttle.write_iops_device"],
    "pids": ["cgroup.procs"],
    "devices": ["devices.list"],
    "freezer": ["cgroup.procs"],
    "systemd": ["cgroup.procs"],
}
HOST_CONTENTS = {
    "cpu/cpu.rt_runtime_us": "950000\n",
    "cpuset/cpuset.cpus": "0-1\n",
    "cpuset/cpuset.mems": "0\n",
    "unified/cgroup.controllers": "hugetlb\n",
}


def hybrid_tree(root: Path, **overrides: str) -> Path:
    files = {f"{c}/{n}": "" for c, names in HOST_ROOT_FILES.items() for n in names}
    files.update(HOST_CONTENTS)
    files.update(overrides)
    return make_tree(root, files)


def test_parse_mountinfo_keeps_only_cgroup_mounts_with_their_controllers():
    mounts = parse_mountinfo(HYBRID_MOUNTINFO)
    by_point = {m.mount_point: m for m in mounts}
    assert by_point["/sys/fs/cgroup/cpu"].controllers == {"cpu"}
    assert by_point["/sys/fs/cgroup/systemd"].controllers == frozenset()   # name=systemd
    assert by_point["/sys/fs/cgroup/unified"].fstype == "cgroup2"
    assert "/sys/fs/cgroup" not in by_point                               # the tmpfs


def test_parse_mountinfo_comounted_and_escaped():
    text = (
        "34 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
        "50 30 0:40 /docker/abc /mnt/my\\040cgroups rw shared:3 - cgroup cgroup rw,memory\n"
        "garbage line\n"
    )
    a, b = parse_mountinfo(text)
    assert a.controllers == {"cpu", "cpuacct"}
    assert b.mount_point == "/mnt/my cgroups"
    assert b.root == "/docker/abc"


def test_hybrid_host(tmp_path):
    info = detect_cgroups(HYBRID_MOUNTINFO, str(hybrid_tree(tmp_path)), kernel_release="6.18.44")
    assert (info.mode, info.version) == ("hybrid", 1)
    assert info.controllers == {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer",
                                "blkio", "pids"}
    assert info.unified_controllers == {"hugetlb"}
    assert info.unified_mount == str(tmp_path / "unified")
    assert info.v1_mount_point("memory") == str(tmp_path / "memory")
    assert info.memory_limit and info.swap_limit and info.memory_reservation
    assert info.oom_kill_disable and info.memory_swappiness
    assert info.kernel_memory is False          # inert since 5.16
    assert info.cpu_shares and info.cpu_cfs_quota and info.cpu_cfs_period
    assert info.cpu_realtime is True
    assert info.cpuset and info.pids_limit and info.blkio_throttle
    assert info.blkio_weight is False and info.blkio_weight_device is False
    assert (info.cpus_available, info.mems_available) == ("0-1", "0")


def test_v1_host_with_comounted_cpu_and_cfq(tmp_path):
    files = {
        "cpu,cpuacct/cpu.shares": "1024\n", "cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
        "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
        "memory/memory.limit_in_bytes": "", "memory/memory.kmem.limit_in_bytes": "",
        "blkio/blkio.weight": "500\n", "blkio/blkio.weight_device": "",
        "blkio/blkio.throttle.read_bps_device": "",
        "cpuset/cpuset.cpus": "0-7\n", "cpuset/cpuset.mems": "0-1\n",
        "pids/": "",
    }
    info = detect_cgroups(V1_MOUNTINFO, str(make_tree(tmp_path, files)), kernel_release="4.15.0")
    assert (info.mode, info.version, info.unified_mount) == ("v1", 1, None)
    assert info.v1_mount_point("cpu") == info.v1_mount_point("cpuacct") == str(
        tmp_path / "cpu,cpuacct")
    assert {"net_cls", "net_prio", "hugetlb", "perf_event"} <= info.controllers
    assert info.kernel_memory is True           # old kernel: the file still works
    assert info.swap_limit is False             # no memsw (swapaccount=0)
    assert info.cpu_realtime is False           # no cpu.rt_* files
    assert info.blkio_weight and info.blkio_weight_device
    assert info.blkio_throttle is False         # only one of the four throttle files
    assert info.cpus_available == "0-7" and info.mems_available == "0-1"


def test_rt_files_with_no_root_budget_are_not_realtime(tmp_path):
    root = hybrid_tree(tmp_path, **{"cpu/cpu.rt_runtime_us": "0\n"})
    assert detect_cgroups(HYBRID_MOUNTINFO, str(root)).cpu_realtime is False


def test_v2_host(tmp_path):
    files = {
        "cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma misc\n",
        "cpuset.cpus.effective": "0-3\n", "cpuset.mems.effective": "0\n",
        "system.slice/cgroup.controllers": "cpu io memory pids\n",
        "system.slice/memory.swap.max": "max\n",
        "system.slice/io.bfq.weight": "default 100\n",
    }
    info = detect_cgroups(V2_MOUNTINFO, str(make_tree(tmp_path, files)), self_cgroup_text="0::/\n")
    assert (info.mode, info.version) == ("v2", 2)
    assert info.root == str(tmp_path) and info.unified_mount == str(tmp_path)
    assert info.controllers == {"cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc"}
    assert info.v1_mounts == {}
    assert info.memory_limit and info.swap_limit and info.memory_reservation
    assert not (info.oom_kill_disable or info.memory_swappiness or info.kernel_memory)
    assert info.cpu_shares and info.cpu_cfs_quota and info.cpu_cfs_period
    assert info.cpu_realtime is False
    assert info.blkio_weight and info.blkio_weight_device and info.blkio_throttle
    assert info.cpuset and info.pids_limit
    assert (info.cpus_available, info.mems_available) == ("0-3", "0")


def test_v2_without_swap_accounting_or_io_weight(tmp_path):
    files = {
        "cgroup.controllers": "cpu io memory pids\n",
        "init.scope/cgroup.controllers": "cpu io memory pids\n",
        "init.scope/io.max": "",
    }
    info = detect_cgroups(V2_MOUNTINFO, str(make_tree(tmp_path, files)),
                          self_cgroup_text="0::/init.scope\n")
    assert info.swap_limit is False
    assert info.blkio_throttle is True
    assert info.blkio_weight is False           # neither io.weight nor io.bfq.weight
    assert info.cpuset is False and info.cpus_available == ""


def test_v2_with_missing_controllers(tmp_path):
    info = detect_cgroups(V2_MOUNTINFO, str(make_tree(tmp_path, {"cgroup.controllers": "pids\n"})))
    assert info.pids_limit and not info.memory_limit and not info.cpu_shares
    assert not info.blkio_throttle


def test_no_cgroups_at_all(tmp_path):
    info = detect_cgroups("22 27 0:20 / /sys rw - sysfs sysfs rw\n", str(tmp_path))
    assert info.mode == "none" and not info.controllers and not info.memory_limit


def test_fact_fields_build_host_facts(tmp_path):
    info = detect_cgroups(HYBRID_MOUNTINFO, str(hybrid_tree(tmp_path)), kernel_release="6.18.44")
    facts = HostFacts(**cgroup_fact_fields(info))
    assert facts.cgroup_version == 1
    assert "memory" in facts.cgroup_controllers
    assert facts.cpus_available == "0-1" and facts.cpu_realtime and not facts.kernel_memory
    assert not facts.blkio_weight


def test_fact_fields_v2_and_empty_cpuset_keep_defaults(tmp_path):
    info = detect_cgroups(V2_MOUNTINFO, str(make_tree(tmp_path, {"cgroup.controllers": "cpu\n"})))
    fields = cgroup_fact_fields(info)
    assert "cpus_available" not in fields
    facts = HostFacts(**fields)
    assert facts.cgroup_version == 2 and facts.cpus_available == "0"
    assert not facts.memory_swappiness and not facts.oom_kill_disable
