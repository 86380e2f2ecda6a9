"""Read back the limits a container's cgroup is enforcing, and its OOM kills.

For `docker update` verification, tests, and setting State.OOMKilled.  Every
reader returns None (or 0 for counts) when the file is missing, so asking
about a container that has already gone is not an error.  "No limit" is
None throughout, whatever the version's spelling ("max", -1, or v1's
near-2^63 page-counter maximum).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dockyard.cgroups.parse import (
    V1_UNLIMITED_AT,
    parse_cpu_max,
    parse_flat_keyed,
    parse_int,
)
from dockyard.cgroups.paths import ContainerCgroup


def _read(cg: ContainerCgroup, controller: str, name: str) -> str | None:
    d = cg.dir(controller)
    if d is None:
        return None
    try:
        return (Path(d) / name).read_text()
    except OSError:
        return None


def _v1_bytes(text: str | None) -> int | None:
    v = parse_int(text)
    if v is None or v < 0 or v >= V1_UNLIMITED_AT:
        return None
    return v


def parse_oom_kill_count(text: str | None) -> int:
    """`oom_kill` from v1 memory.oom_control or v2 memory.events text."""
    return parse_flat_keyed(text).get("oom_kill", 0)


def read_oom_kill_count(cg: ContainerCgroup) -> int:
    """How many processes the kernel OOM-killed in this cgroup.

    Read it before the cgroup is removed: a non-zero count at exit is what
    Docker's State.OOMKilled reports.
    """
    name = "memory.events" if cg.version == 2 else "memory.oom_control"
    return parse_oom_kill_count(_read(cg, "memory", name))


def read_memory_limit(cg: ContainerCgroup) -> int | None:
    """Hard memory limit in bytes (memory.limit_in_bytes / memory.max)."""
    if cg.version == 2:
        return parse_int(_read(cg, "memory", "memory.max"))
    return _v1_bytes(_read(cg, "memory", "memory.limit_in_bytes"))


def read_memory_reservation(cg: ContainerCgroup) -> int | None:
    """Soft limit (memory.soft_limit_in_bytes / memory.low); 0 on v2 means none."""
    if cg.version == 2:
        v = parse_int(_read(cg, "memory", "memory.low"))
        return v or None
    return _v1_bytes(_read(cg, "memory", "memory.soft_limit_in_bytes"))


def read_memory_swap_limit(cg: ContainerCgroup) -> int | None:
    """Memory plus swap, in Docker's `MemorySwap` sense.

    v1's memsw limit already is memory+swap; v2 limits swap alone
    (memory.swap.max), so add the memory limit to it.
    """
    if cg.version == 2:
        mem = parse_int(_read(cg, "memory", "memory.max"))
        swap = parse_int(_read(cg, "memory", "memory.swap.max"))
        if mem is None or swap is None:
            return None
        return mem + swap
    return _v1_bytes(_read(cg, "memory", "memory.memsw.limit_in_bytes"))


@dataclass(frozen=True)
class CpuQuota:
    quota_us: int | None    # None: unlimited
    period_us: int | None   # None: could not be read


def read_cpu_quota(cg: ContainerCgroup) -> CpuQuota:
    """CFS bandwidth: cpu.cfs_quota_us + cpu.cfs_period_us, or v2 cpu.max."""
    if cg.version == 2:
        quota, period = parse_cpu_max(_read(cg, "cpu", "cpu.max"))
        return CpuQuota(quota, period)
    quota = parse_int(_read(cg, "cpu", "cpu.cfs_quota_us"))
    period = parse_int(_read(cg, "cpu", "cpu.cfs_period_us"))
    return CpuQuota(quota if quota is not None and quota >= 0 else None, period)


def read_cpu_shares(cg: ContainerCgroup) -> int | None:
    """v1 cpu.shares; on v2 the raw cpu.weight (1-10000), which runc derives
    from shares as 1 + ((shares - 2) * 9999) / 262142."""
    if cg.version == 2:
        return parse_int(_read(cg, "cpu", "cpu.weight"))
    return parse_int(_read(cg, "cpu", "cpu.shares"))


def read_pids_limit(cg: ContainerCgroup) -> int | None:
    """pids.max; None for "max" (same file on both versions)."""
    return parse_int(_read(cg, "pids", "pids.max"))


def read_cpuset(cg: ContainerCgroup) -> tuple[str | None, str | None]:
    """(cpus, mems) as configured (not effective): "" when inherited on v2."""
    cpus = _read(cg, "cpuset", "cpuset.cpus")
    mems = _read(cg, "cpuset", "cpuset.mems")
    return (cpus.strip() if cpus is not None else None,
            mems.strip() if mems is not None else None)
