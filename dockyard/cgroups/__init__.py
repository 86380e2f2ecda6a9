"""Find a container's cgroup, learn what the host's cgroups support, and read
v1/v2 cgroup files into Docker's stats shapes."""

from dockyard.cgroups.detect import CgroupInfo, CgroupMount, cgroup_fact_fields, detect_cgroups
from dockyard.cgroups.limits import (
    CpuQuota,
    read_cpu_quota,
    read_cpu_shares,
    read_cpuset,
    read_memory_limit,
    read_memory_reservation,
    read_memory_swap_limit,
    read_oom_kill_count,
    read_pids_limit,
)
from dockyard.cgroups.paths import (
    ContainerCgroup,
    container_cgroup_dir,
    container_cgroup_dirs,
    locate_container_cgroup,
    parse_proc_cgroup,
    process_cgroup,
    read_process_cgroup,
)
from dockyard.cgroups.stats import (
    build_stats_v1,
    build_stats_v2,
    empty_cpu_stats,
    read_cgroup_stats,
    read_memory_total,
    read_network_stats,
)

__all__ = [
    "CgroupInfo", "CgroupMount", "ContainerCgroup", "CpuQuota", "build_stats_v1",
    "build_stats_v2", "cgroup_fact_fields", "container_cgroup_dir", "container_cgroup_dirs",
    "detect_cgroups", "empty_cpu_stats", "locate_container_cgroup", "parse_proc_cgroup",
    "process_cgroup", "read_cgroup_stats", "read_cpu_quota", "read_cpu_shares", "read_cpuset",
    "read_memory_limit", "read_memory_reservation", "read_memory_swap_limit",
    "read_memory_total", "read_network_stats", "read_oom_kill_count", "read_pids_limit",
    "read_process_cgroup",
]
