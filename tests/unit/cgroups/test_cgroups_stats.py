from __future__ import annotations

import json
import shutil

from cgroups_testutil import FIXTURES, load_dir

from dockyard.cgroups.parse import (
    UINT64_MAX,
    parse_blkio_v1,
    parse_cpu_max,
    parse_cpuset_list,
    parse_io_stat,
    parse_net_dev,
    parse_proc_stat,
)
from dockyard.cgroups.paths import ContainerCgroup
from dockyard.cgroups.stats import (
    BLKIO_LISTS,
    V1_MEMORY_STAT_KEYS,
    V2_MEMORY_STAT_KEYS,
    build_stats_v1,
    build_stats_v2,
    empty_cpu_stats,
    read_cgroup_files,
    read_cgroup_stats,
    read_memory_total,
    read_network_stats,
)

GiB = 1 << 30
HOST = {"mem_total": 24 * GiB, "system_cpu_usage": 555_000_000_000, "host_online_cpus": 8}
V1_CTRLS = ("memory", "cpu", "cpuacct", "pids", "blkio", "cpuset")


# -- the captured v1 group (256 MiB, 50% CPU, pids 64, 1 GiB/s throttle rule) --

def test_v1_cpu_stats_from_capture():
    cpu = build_stats_v1(load_dir(FIXTURES / "v1"), **HOST)["cpu_stats"]
    assert cpu == {
        "cpu_usage": {
            "total_usage": 838316323,
            "percpu_usage": [20522198, 817794125],
            "usage_in_kernelmode": 6 * 10_000_000,     # cpuacct.stat ticks -> ns
            "usage_in_usermode": 77 * 10_000_000,
        },
        "system_cpu_usage": 555_000_000_000,
        "online_cpus": 2,                              # the group's cpuset, not the host's 8
        "throttling_data": {"periods": 19, "throttled_periods": 16,
                            "throttled_time": 795686174},
    }


def test_v1_memory_stats_from_capture():
    mem = build_stats_v1(load_dir(FIXTURES / "v1"), **HOST)["memory_stats"]
    assert mem["usage"] == 74645504 and mem["max_usage"] == 74645504
    assert mem["limit"] == 268435456
    assert "failcnt" not in mem                        # 0 is omitted, as dockerd's omitempty
    assert list(mem["stats"]) == list(V1_MEMORY_STAT_KEYS)
    assert mem["stats"]["rss"] == 74223616 and mem["stats"]["cache"] == 53248
    assert mem["stats"]["hierarchical_memory_limit"] == 268435456
    assert "swap" not in mem["stats"] and "total_hierarchical_memory_limit" not in mem["stats"]


def test_v1_pids_from_capture():
    assert build_stats_v1(load_dir(FIXTURES / "v1"), **HOST)["pids_stats"] == {
        "current": 2, "limit": 64}


def test_v1_blkio_falls_back_to_throttle_files_without_cfq():
    blkio = build_stats_v1(load_dir(FIXTURES / "v1"), **HOST)["blkio_stats"]
    assert list(blkio) == list(BLKIO_LISTS)
    read = {e["op"]: e["value"] for e in blkio["io_service_bytes_recursive"]}
    assert read == {"Read": 4247552, "Write": 4194304, "Sync": 12640256, "Async": 0,
                    "Discard": 4198400, "Total": 12640256}
    ops = [(e["major"], e["minor"], e["op"]) for e in blkio["io_serviced_recursive"]]
    assert ops[0] == (254, 0, "Read") and len(ops) == 6    # the bare "Total" line dropped
    for name in BLKIO_LISTS[2:]:
        assert blkio[name] is None


def test_v1_blkio_prefers_cfq_when_it_has_data():
    files = load_dir(FIXTURES / "v1")
    files["blkio.io_serviced_recursive"] = "8:0 Read 5\n8:0 Write 1\n8:0 Total 6\nTotal 6\n"
    files["blkio.sectors_recursive"] = "8:0 80\n"
    files["blkio.time_recursive"] = "8:0 1234\n"
    blkio = build_stats_v1(files, **HOST)["blkio_stats"]
    assert blkio["io_serviced_recursive"][0] == {"major": 8, "minor": 0, "op": "Read", "value": 5}
    assert blkio["sectors_recursive"] == [{"major": 8, "minor": 0, "op": "", "value": 80}]
    assert blkio["io_time_recursive"][0]["value"] == 1234
    assert blkio["io_service_bytes_recursive"] is None     # CFQ file missing: not the throttle one


def test_v1_blkio_empty_cfq_files_fall_back():
    files = load_dir(FIXTURES / "v1")
    files["blkio.io_serviced_recursive"] = "Total 0\n"
    files["blkio.io_service_bytes_recursive"] = "Total 0\n"
    blkio = build_stats_v1(files, **HOST)["blkio_stats"]
    assert blkio["io_service_bytes_recursive"][0]["value"] == 4247552


def test_v1_unlimited_memory_reports_host_ram_and_pids_max_as_zero():
    files = load_dir(FIXTURES / "v1")
    files["memory.limit_in_bytes"] = "9223372036854771712\n"
    files["pids.max"] = "max\n"
    stats = build_stats_v1(files, **HOST)
    assert stats["memory_stats"]["limit"] == 24 * GiB
    assert stats["pids_stats"] == {"current": 2}           # limit 0 -> omitted


def test_v1_oom_capture_counts_failures():
    mem = build_stats_v1(load_dir(FIXTURES / "v1-oom"), **HOST)["memory_stats"]
    assert mem["limit"] == 33554432 and mem["max_usage"] == 33554432
    assert set(mem["stats"]) == set(V1_MEMORY_STAT_KEYS)   # all keys, even without memory.stat


# -- v2, in the kernel's 6.x formats --

def test_v2_limited():
    stats = build_stats_v2(load_dir(FIXTURES / "v2" / "limited"), **HOST)
    assert stats["cpu_stats"] == {
        "cpu_usage": {"total_usage": 2843106000, "usage_in_kernelmode": 251284000,
                      "usage_in_usermode": 2591822000},
        "system_cpu_usage": 555_000_000_000,
        "online_cpus": 2,
        "throttling_data": {"periods": 31, "throttled_periods": 27,
                            "throttled_time": 1349512000},
    }
    mem = stats["memory_stats"]
    assert mem["usage"] == 61321216 and mem["limit"] == 67108864
    assert mem["failcnt"] == 2                              # memory.events "oom"
    assert "max_usage" not in mem
    assert list(mem["stats"]) == list(V2_MEMORY_STAT_KEYS)
    assert mem["stats"]["anon"] == 52559872 and mem["stats"]["inactive_file"] == 4902912
    assert mem["stats"]["workingset_refault"] == 0          # split into _anon/_file since 5.9
    assert stats["pids_stats"] == {"current": 3, "limit": 64}
    blkio = stats["blkio_stats"]
    assert blkio["io_service_bytes_recursive"] == [
        {"major": 254, "minor": 0, "op": "read", "value": 4247552},
        {"major": 254, "minor": 0, "op": "write", "value": 4194304},
        {"major": 8, "minor": 0, "op": "read", "value": 1310720},
        {"major": 8, "minor": 0, "op": "write", "value": 0},
    ]
    assert all(blkio[n] is None for n in BLKIO_LISTS if n != "io_service_bytes_recursive")


def test_v2_unlimited():
    stats = build_stats_v2(load_dir(FIXTURES / "v2" / "unlimited"), **HOST)
    assert stats["memory_stats"]["limit"] == 24 * GiB       # "max" -> uint64 max -> RAM
    assert "failcnt" not in stats["memory_stats"]
    assert stats["pids_stats"] == {"current": 1, "limit": UINT64_MAX}
    assert stats["cpu_stats"]["online_cpus"] == 5           # 0-3,6
    assert stats["cpu_stats"]["throttling_data"]["periods"] == 0
    assert stats["blkio_stats"]["io_service_bytes_recursive"] is None


def test_v2_without_host_ram_keeps_uint64_max():
    files = load_dir(FIXTURES / "v2" / "unlimited")
    del files["cpuset.cpus.effective"]
    stats = build_stats_v2(files, mem_total=0, system_cpu_usage=0, host_online_cpus=0)
    assert stats["memory_stats"]["limit"] == UINT64_MAX
    assert "system_cpu_usage" not in stats["cpu_stats"] and "online_cpus" not in stats["cpu_stats"]


def test_gone_cgroup_gives_zeros_not_errors():
    for build in (build_stats_v1, build_stats_v2):
        stats = build({}, **HOST)
        assert stats["cpu_stats"]["cpu_usage"]["total_usage"] == 0
        assert stats["cpu_stats"]["online_cpus"] == 8           # falls back to the host's
        assert stats["memory_stats"] == {} and stats["pids_stats"] == {}
        assert all(v is None for v in stats["blkio_stats"].values())


def test_stats_are_json_serialisable():
    json.dumps(build_stats_v1(load_dir(FIXTURES / "v1"), **HOST))
    json.dumps(build_stats_v2(load_dir(FIXTURES / "v2" / "limited"), **HOST))
    assert empty_cpu_stats()["cpu_usage"]["total_usage"] == 0


# -- readers over real directories --

def test_read_cgroup_stats_v1_layout(tmp_path):
    # one directory per controller, as on a real v1 host
    dirs = {}
    for c in V1_CTRLS:
        d = tmp_path / c / "dockyard" / "abc"
        d.mkdir(parents=True)
        for f in (FIXTURES / "v1").glob(f"{c}.*"):
            shutil.copy(f, d)
        dirs[c] = str(d)
    (tmp_path / "proc").mkdir()
    shutil.copy(FIXTURES / "proc" / "stat", tmp_path / "proc" / "stat")
    cg = ContainerCgroup(1, dirs)
    files = read_cgroup_files(cg)
    assert "cpuacct.usage" in files and "blkio.throttle.io_serviced" in files
    stats = read_cgroup_stats(cg, mem_total=24 * GiB, proc_root=str(tmp_path / "proc"))
    assert stats == build_stats_v1(
        load_dir(FIXTURES / "v1"), mem_total=24 * GiB,
        system_cpu_usage=parse_proc_stat((FIXTURES / "proc" / "stat").read_text()).system_cpu_usage,
        host_online_cpus=2)


def test_read_cgroup_stats_v2_and_vanished(tmp_path):
    cg = ContainerCgroup(2, {"": str(FIXTURES / "v2" / "limited")})
    stats = read_cgroup_stats(cg, mem_total=24 * GiB)
    assert stats["memory_stats"]["limit"] == 67108864
    assert stats["cpu_stats"]["system_cpu_usage"] > 0             # the live /proc/stat
    gone = ContainerCgroup(2, {"": str(tmp_path / "gone")})
    assert read_cgroup_stats(gone, mem_total=GiB)["memory_stats"] == {}
    assert read_cgroup_stats(ContainerCgroup(1, {}), mem_total=GiB)["pids_stats"] == {}


def test_read_network_stats(tmp_path):
    (tmp_path / "42" / "net").mkdir(parents=True)
    shutil.copy(FIXTURES / "proc" / "net_dev_container", tmp_path / "42" / "net" / "dev")
    nets = read_network_stats(42, proc_root=str(tmp_path))
    assert set(nets) == {"eth0", "eth1"}
    assert read_network_stats(43, proc_root=str(tmp_path)) is None


def test_read_memory_total(tmp_path):
    (tmp_path / "meminfo").write_text("MemTotal:       24683656 kB\nMemFree: 1 kB\n")
    assert read_memory_total(str(tmp_path)) == 24683656 * 1024
    assert read_memory_total(str(tmp_path / "none")) == 0


# -- small parsers --

def test_parse_proc_stat_capture():
    ps = parse_proc_stat((FIXTURES / "proc" / "stat").read_text())
    # cpu  3904 0 1137 44137 560 0 126 8 0 0: steal/guest excluded
    assert ps.system_cpu_usage == (3904 + 1137 + 44137 + 560 + 126) * 10_000_000
    assert ps.online_cpus == 2


def test_parse_net_dev_container():
    nets = parse_net_dev((FIXTURES / "proc" / "net_dev_container").read_text())
    assert nets["eth0"] == {"rx_bytes": 21782, "rx_packets": 188, "rx_errors": 1,
                            "rx_dropped": 2, "tx_bytes": 2104, "tx_packets": 25,
                            "tx_errors": 3, "tx_dropped": 4}
    assert "lo" not in nets
    with_lo = parse_net_dev((FIXTURES / "proc" / "net_dev_container").read_text(),
                            include_loopback=True)
    assert with_lo["lo"]["rx_bytes"] == 1344


def test_parse_net_dev_host_capture():
    nets = parse_net_dev((FIXTURES / "proc" / "net_dev_host").read_text())
    assert "eth0" in nets and "lo" not in nets


def test_parse_cpuset_list():
    assert parse_cpuset_list("0-3,6,8-9\n") == [0, 1, 2, 3, 6, 8, 9]
    assert parse_cpuset_list("") == [] and parse_cpuset_list(None) == []
    assert parse_cpuset_list("1,1,0") == [0, 1]


def test_parse_cpu_max():
    assert parse_cpu_max("max 100000\n") == (None, 100000)
    assert parse_cpu_max("50000 100000\n") == (50000, 100000)
    assert parse_cpu_max("") == (None, None)


def test_parse_blkio_and_io_stat_skip_junk():
    assert parse_blkio_v1("Total 0\n") == []
    assert parse_blkio_v1("8:0 Read x\nbad\n8:16 Write 3\n") == [
        {"major": 8, "minor": 16, "op": "Write", "value": 3}]
    assert parse_io_stat("") == []
    # iocost adds cost.* keys; devices without rbytes count as 0
    assert parse_io_stat("259:0 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0 cost.vrate=100.00"
                         "\n7:0 rios=0\n")[2:] == [
        {"major": 7, "minor": 0, "op": "read", "value": 0},
        {"major": 7, "minor": 0, "op": "write", "value": 0}]
