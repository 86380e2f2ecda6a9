"""A container's cgroup files -> the pieces of Docker's stats JSON.

Two layers:
- `build_stats_v1` / `build_stats_v2` are pure: they take {file name: text}
  (only the files that could be read) plus host numbers and return
  `cpu_stats`, `memory_stats`, `pids_stats` and `blkio_stats` exactly as
  dockerd fills them from containerd's cgroup metrics.
- `read_cgroup_files` / `read_cgroup_stats` do the I/O.  A file that cannot be
  read is simply absent, so an exited container's vanished cgroup gives
  zeros, never an exception.

Docker's Go types use `omitempty` on most of these numbers and leave
unfilled blkio lists nil; the builders reproduce that (zero fields dropped,
empty lists as None) so clients see what they would from dockerd.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dockyard.cgroups.parse import (
    NS_PER_TICK,
    UINT64_MAX,
    parse_blkio_v1,
    parse_cpuset_list,
    parse_flat_keyed,
    parse_int,
    parse_io_stat,
    parse_net_dev,
    parse_percpu,
    parse_proc_stat,
    parse_uint_or_max,
)
from dockyard.cgroups.paths import ContainerCgroup
from dockyard.util.kernelfile import read_small

# The files each controller contributes, per cgroup version.
V1_FILES: dict[str, tuple[str, ...]] = {
    "cpuacct": ("cpuacct.usage", "cpuacct.usage_percpu", "cpuacct.stat"),
    "cpu": ("cpu.stat",),
    "memory": ("memory.usage_in_bytes", "memory.max_usage_in_bytes", "memory.limit_in_bytes",
               "memory.failcnt", "memory.stat"),
    "pids": ("pids.current", "pids.max"),
    "blkio": ("blkio.sectors_recursive", "blkio.io_service_bytes_recursive",
              "blkio.io_serviced_recursive", "blkio.io_queued_recursive",
              "blkio.io_service_time_recursive", "blkio.io_wait_time_recursive",
              "blkio.io_merged_recursive", "blkio.time_recursive",
              "blkio.throttle.io_service_bytes", "blkio.throttle.io_serviced"),
    "cpuset": ("cpuset.effective_cpus",),
}
V2_FILES: tuple[str, ...] = (
    "cpu.stat", "memory.current", "memory.max", "memory.stat", "memory.events",
    "pids.current", "pids.max", "io.stat", "cpuset.cpus.effective",
)

# Docker's blkio list name -> the CFQ file that fills it on v1.
_V1_CFQ_LISTS = {
    "io_service_bytes_recursive": "blkio.io_service_bytes_recursive",
    "io_serviced_recursive": "blkio.io_serviced_recursive",
    "io_queue_recursive": "blkio.io_queued_recursive",
    "io_service_time_recursive": "blkio.io_service_time_recursive",
    "io_wait_time_recursive": "blkio.io_wait_time_recursive",
    "io_merged_recursive": "blkio.io_merged_recursive",
    "io_time_recursive": "blkio.time_recursive",
    "sectors_recursive": "blkio.sectors_recursive",
}
BLKIO_LISTS: tuple[str, ...] = tuple(_V1_CFQ_LISTS)

# memory_stats.stats keys, in dockerd's order.  dockerd always sends every
# key (0 when the kernel lacks it), so the CLI's "total_inactive_file" /
# "inactive_file" test tells v1 from v2 reliably.
_V1_MEM_KEYS = (
    "cache", "rss", "rss_huge", "mapped_file", "dirty", "writeback", "pgpgin", "pgpgout",
    "pgfault", "pgmajfault", "inactive_anon", "active_anon", "inactive_file", "active_file",
    "unevictable",
)
V1_MEMORY_STAT_KEYS: tuple[str, ...] = (
    *_V1_MEM_KEYS, "hierarchical_memory_limit", "hierarchical_memsw_limit",
    *(f"total_{k}" for k in _V1_MEM_KEYS),
)
# Kernels since 5.9 split workingset_refault/activate into _anon/_file;
# containerd reads the old names, so dockerd reports 0 for them there and so
# do we.
V2_MEMORY_STAT_KEYS: tuple[str, ...] = (
    "anon", "file", "kernel_stack", "slab", "sock", "shmem", "file_mapped", "file_dirty",
    "file_writeback", "anon_thp", "inactive_anon", "active_anon", "inactive_file",
    "active_file", "unevictable", "slab_reclaimable", "slab_unreclaimable", "pgfault",
    "pgmajfault", "workingset_refault", "workingset_activate", "workingset_nodereclaim",
    "pgrefill", "pgscan", "pgsteal", "pgactivate", "pgdeactivate", "pglazyfree",
    "pglazyfreed", "thp_fault_alloc", "thp_collapse_alloc",
)


def _omit_zero(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    for k in keys:
        if not d.get(k):
            d.pop(k, None)
    return d


def _cap_to_ram(limit: int, mem_total: int) -> int:
    # dockerd: "if the container does not set memory limit, use the machineMemory"
    return mem_total if mem_total > 0 and limit > mem_total else limit


def _online_cpus(files: Mapping[str, str], name: str, host_online_cpus: int) -> int:
    n = len(parse_cpuset_list(files.get(name)))
    return n or host_online_cpus


def _cpu_stats(usage: dict[str, Any], throttling: dict[str, int], system_cpu_usage: int,
               online_cpus: int) -> dict[str, Any]:
    return _omit_zero({
        "cpu_usage": usage,
        "system_cpu_usage": system_cpu_usage,
        "online_cpus": online_cpus,
        "throttling_data": throttling,
    }, "system_cpu_usage", "online_cpus")


def _blkio(lists: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {name: (lists.get(name) or None) for name in BLKIO_LISTS}


def build_stats_v1(files: Mapping[str, str], *, mem_total: int, system_cpu_usage: int,
                   host_online_cpus: int) -> dict[str, Any]:
    """cgroup v1 file texts -> {cpu_stats, memory_stats, pids_stats, blkio_stats}."""
    acct = parse_flat_keyed(files.get("cpuacct.stat"))
    usage: dict[str, Any] = {
        "total_usage": parse_uint_or_max(files.get("cpuacct.usage"), 0),
        "percpu_usage": parse_percpu(files.get("cpuacct.usage_percpu")),
        "usage_in_kernelmode": acct.get("system", 0) * NS_PER_TICK,
        "usage_in_usermode": acct.get("user", 0) * NS_PER_TICK,
    }
    _omit_zero(usage, "percpu_usage")
    cpu = parse_flat_keyed(files.get("cpu.stat"))
    throttling = {
        "periods": cpu.get("nr_periods", 0),
        "throttled_periods": cpu.get("nr_throttled", 0),
        "throttled_time": cpu.get("throttled_time", 0),   # already ns on v1
    }
    cpu_stats = _cpu_stats(usage, throttling, system_cpu_usage,
                           _online_cpus(files, "cpuset.effective_cpus", host_online_cpus))

    memory_stats: dict[str, Any] = {}
    if "memory.stat" in files or "memory.usage_in_bytes" in files:
        raw = parse_flat_keyed(files.get("memory.stat"))
        memory_stats = _omit_zero({
            "usage": parse_uint_or_max(files.get("memory.usage_in_bytes")),
            "max_usage": parse_uint_or_max(files.get("memory.max_usage_in_bytes")),
            "stats": {k: raw.get(k, 0) for k in V1_MEMORY_STAT_KEYS},
            "failcnt": parse_uint_or_max(files.get("memory.failcnt")),
            "limit": _cap_to_ram(parse_uint_or_max(files.get("memory.limit_in_bytes")),
                                 mem_total),
        }, "usage", "max_usage", "failcnt", "limit")

    # v1 pids.max "max" means no limit, which containerd reports as 0.
    pids_stats = _omit_zero({
        "current": parse_uint_or_max(files.get("pids.current")),
        "limit": parse_uint_or_max(files.get("pids.max"), 0),
    }, "current", "limit")

    lists: dict[str, list[dict[str, Any]]] = {}
    # CFQ's files exist only on kernels that still have CFQ (< 5.0); where
    # they exist but hold nothing (devices on another scheduler), containerd
    # falls back to the throttle files, which count all I/O reaching the
    # block layer -- though only on devices that have a throttle rule.
    if "blkio.io_serviced_recursive" in files:
        lists = {name: parse_blkio_v1(files.get(f)) for name, f in _V1_CFQ_LISTS.items()}
    if not any(lists.values()):
        lists = {
            "io_service_bytes_recursive": parse_blkio_v1(files.get("blkio.throttle.io_service_bytes")),
            "io_serviced_recursive": parse_blkio_v1(files.get("blkio.throttle.io_serviced")),
        }
    return {
        "cpu_stats": cpu_stats,
        "memory_stats": memory_stats,
        "pids_stats": pids_stats,
        "blkio_stats": _blkio(lists),
    }


def build_stats_v2(files: Mapping[str, str], *, mem_total: int, system_cpu_usage: int,
                   host_online_cpus: int) -> dict[str, Any]:
    """cgroup v2 file texts -> {cpu_stats, memory_stats, pids_stats, blkio_stats}."""
    cpu = parse_flat_keyed(files.get("cpu.stat"))
    usage = {
        "total_usage": cpu.get("usage_usec", 0) * 1000,
        "usage_in_kernelmode": cpu.get("system_usec", 0) * 1000,
        "usage_in_usermode": cpu.get("user_usec", 0) * 1000,
    }
    throttling = {
        "periods": cpu.get("nr_periods", 0),
        "throttled_periods": cpu.get("nr_throttled", 0),
        "throttled_time": cpu.get("throttled_usec", 0) * 1000,
    }
    cpu_stats = _cpu_stats(usage, throttling, system_cpu_usage,
                           _online_cpus(files, "cpuset.cpus.effective", host_online_cpus))

    memory_stats: dict[str, Any] = {}
    if "memory.stat" in files or "memory.current" in files:
        raw = parse_flat_keyed(files.get("memory.stat"))
        # memory.max "max" -> uint64 max, which the RAM cap then turns into
        # the host's RAM (dockerd's order of operations).
        limit = parse_uint_or_max(files.get("memory.max"))
        memory_stats = _omit_zero({
            "usage": parse_uint_or_max(files.get("memory.current")),
            "stats": {k: raw.get(k, 0) for k in V2_MEMORY_STAT_KEYS},
            "failcnt": parse_flat_keyed(files.get("memory.events")).get("oom", 0),
            "limit": _cap_to_ram(limit, mem_total) if "memory.max" in files else 0,
        }, "usage", "failcnt", "limit")

    # containerd's v2 reader turns pids.max "max" into uint64 max (unlike v1).
    pids_stats = _omit_zero({
        "current": parse_uint_or_max(files.get("pids.current")),
        "limit": parse_uint_or_max(files.get("pids.max")) if "pids.max" in files else 0,
    }, "current", "limit")

    return {
        "cpu_stats": cpu_stats,
        "memory_stats": memory_stats,
        "pids_stats": pids_stats,
        "blkio_stats": _blkio({"io_service_bytes_recursive": parse_io_stat(files.get("io.stat"))}),
    }


def empty_cpu_stats() -> dict[str, Any]:
    """What `precpu_stats` holds before the first sample (all zero)."""
    return {
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    }


# -- I/O ----------------------------------------------------------------------

def _read_text(path: Path | str) -> str | None:
    """A small kernel file's text, None if it cannot be read (gone with the
    container, or never there): a sample reads some twenty of these,
    `docker stats` of hundreds of containers thousands a second."""
    data = read_small(path)
    return None if data is None else data.decode(errors="replace")


def read_cgroup_files(cg: ContainerCgroup) -> dict[str, str]:
    """The stats files of `cg` that exist, {file name: text}."""
    wanted: list[tuple[str | None, str]] = []
    if cg.version == 2:
        wanted = [(cg.dir(""), name) for name in V2_FILES]
    else:
        wanted = [(cg.dir(ctrl), name) for ctrl, names in V1_FILES.items() for name in names]
    out: dict[str, str] = {}
    for d, name in wanted:
        if d is None:
            continue
        text = _read_text(f"{d}/{name}")
        if text is not None:
            out[name] = text
    return out


def read_proc_stat(proc_root: str = "/proc") -> tuple[int, int]:
    """(system_cpu_usage ns, number of online CPUs) from /proc/stat."""
    text = _read_text(Path(proc_root) / "stat") or ""
    ps = parse_proc_stat(text)
    return ps.system_cpu_usage, ps.online_cpus


def read_cgroup_stats(cg: ContainerCgroup, *, mem_total: int,
                      proc_root: str = "/proc") -> dict[str, Any]:
    """One sample of a container's cgroup numbers in Docker's shapes.

    Returns {cpu_stats, memory_stats, pids_stats, blkio_stats}; blocking file
    I/O, so call it from a thread in the daemon.
    """
    system_cpu_usage, host_cpus = read_proc_stat(proc_root)
    build = build_stats_v2 if cg.version == 2 else build_stats_v1
    return build(read_cgroup_files(cg), mem_total=mem_total,
                 system_cpu_usage=system_cpu_usage, host_online_cpus=host_cpus)


def read_network_stats(pid: int, *, proc_root: str = "/proc",
                       include_loopback: bool = False) -> dict[str, dict[str, int]] | None:
    """Docker `networks` for the netns of `pid`, or None if it cannot be read.

    /proc/<pid>/net/dev shows the device table of the process's own network
    namespace, so no setns is needed.
    """
    text = _read_text(Path(proc_root) / str(pid) / "net" / "dev")
    if text is None:
        return None
    return parse_net_dev(text, include_loopback=include_loopback)


def read_memory_total(proc_root: str = "/proc") -> int:
    """MemTotal in bytes, the cap dockerd applies to reported limits."""
    for line in (_read_text(Path(proc_root) / "meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            v = parse_int(line.split()[1]) if len(line.split()) > 1 else None
            return (v or 0) * 1024
    return 0


__all__ = [
    "BLKIO_LISTS", "UINT64_MAX", "V1_FILES", "V1_MEMORY_STAT_KEYS", "V2_FILES",
    "V2_MEMORY_STAT_KEYS", "build_stats_v1", "build_stats_v2", "empty_cpu_stats",
    "read_cgroup_files", "read_cgroup_stats", "read_memory_total", "read_network_stats",
    "read_proc_stat",
]
