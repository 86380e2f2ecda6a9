"""What the host's cgroup setup is and what it can enforce.

Detection reads two things: the mount table (text passed in, so any host's
layout can be tested) and files under the cgroup root (a parameter, so a
temporary directory can stand in for /sys/fs/cgroup).  The flags follow the
rules `dockerd` uses for `docker info` (pkg/sysinfo), with a few corrections
where a file exists but the kernel ignores it; each such case says why.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.cgroups.parse import parse_proc_cgroup
from dockyard.util.mount import unescape_mountinfo

CGROUP_ROOT = "/sys/fs/cgroup"

# Resource controllers a v1 hierarchy can carry; `name=systemd` style named
# hierarchies carry none and are not counted.
V1_CONTROLLERS = frozenset({
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
    "net_cls", "net_prio", "perf_event", "hugetlb", "rdma", "misc",
})

# Kernel docs (cgroup-v1/memory.rst): "Kernel hard limit is not supported
# since 5.16.  Writing any value to [memory.kmem.limit_in_bytes] will not have
# any effect".  Measured here on 6.18: the write returns 0 and the limit stays
# unlimited.  So the file's presence alone would claim a feature that is gone.
KMEM_LIMIT_REMOVED_IN = (5, 16)


@dataclass(frozen=True)
class CgroupMount:
    mount_point: str            # where it is mounted, mountinfo field 5
    root: str                   # the hierarchy path seen at mount_point (field 4)
    fstype: str                 # "cgroup" or "cgroup2"
    controllers: frozenset[str]  # v1: from the super options; v2: empty here


@dataclass(frozen=True)
class CgroupInfo:
    mode: str                   # "v1", "hybrid", "v2" or "none"
    version: int                # as Docker reports CgroupVersion: 2 only for unified
    root: str                   # the cgroup filesystem base, normally /sys/fs/cgroup
    unified_mount: str | None   # cgroup2 mount point (the root on v2, root/unified on hybrid)
    # Resource controllers this host can put a container under: the mounted
    # v1 controllers, or those in the v2 root's cgroup.controllers.
    controllers: frozenset[str] = frozenset()
    # v2 controllers enabled in the hybrid host's unified tree (hugetlb here);
    # the engine cannot limit through them with a v1 runtime setup.
    unified_controllers: frozenset[str] = frozenset()
    v1_mounts: dict[str, CgroupMount] = field(default_factory=dict)
    memory_limit: bool = False
    swap_limit: bool = False
    memory_reservation: bool = False
    memory_swappiness: bool = False
    kernel_memory: bool = False
    kernel_memory_tcp: bool = False
    oom_kill_disable: bool = False
    cpu_shares: bool = False
    cpu_cfs_quota: bool = False
    cpu_cfs_period: bool = False
    cpu_realtime: bool = False
    cpuset: bool = False
    pids_limit: bool = False
    blkio_weight: bool = False
    blkio_weight_device: bool = False
    blkio_throttle: bool = False
    devices: bool = False
    cpus_available: str = ""
    mems_available: str = ""

    def v1_mount_point(self, controller: str) -> str | None:
        m = self.v1_mounts.get(controller)
        return m.mount_point if m else None


def parse_mountinfo(text: str) -> list[CgroupMount]:
    """The cgroup and cgroup2 mounts in /proc/<pid>/mountinfo text, in order."""
    mounts: list[CgroupMount] = []
    for line in text.splitlines():
        fields = line.split()
        try:
            sep = fields.index("-")
        except ValueError:
            continue
        if len(fields) < sep + 3 or sep < 5:
            continue
        fstype = fields[sep + 1]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        controllers: frozenset[str] = frozenset()
        if fstype == "cgroup":
            supers = fields[sep + 3].split(",") if len(fields) > sep + 3 else []
            controllers = frozenset(o for o in supers if o in V1_CONTROLLERS)
        mounts.append(CgroupMount(
            mount_point=unescape_mountinfo(fields[4]),
            root=unescape_mountinfo(fields[3]),
            fstype=fstype,
            controllers=controllers,
        ))
    return mounts


def _reroot(path: str, mount_base: str, root: str) -> str:
    """Map a mount point under `mount_base` onto `root` (tests use a temp dir)."""
    if root == mount_base:
        return path
    if path == mount_base:
        return root
    if path.startswith(mount_base.rstrip("/") + "/"):
        return os.path.join(root, path[len(mount_base.rstrip("/")) + 1:])
    return path


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def _exists(base: str, name: str) -> bool:
    return os.path.exists(os.path.join(base, name))


def _kernel_tuple(release: str) -> tuple[int, int]:
    """(major, minor) of a release string like "6.18.44-fc-v782"."""
    nums = re.findall(r"\d+", release)[:2]
    return (int(nums[0]) if nums else 0, int(nums[1]) if len(nums) > 1 else 0)


def _v1_flags(mounts: dict[str, CgroupMount], kernel: tuple[int, int]) -> dict[str, Any]:
    flags: dict[str, Any] = {}
    mem = mounts.get("memory")
    if mem:
        mp = mem.mount_point
        flags["memory_limit"] = True
        flags["swap_limit"] = _exists(mp, "memory.memsw.limit_in_bytes")
        flags["memory_reservation"] = _exists(mp, "memory.soft_limit_in_bytes")
        flags["oom_kill_disable"] = _exists(mp, "memory.oom_control")
        flags["memory_swappiness"] = _exists(mp, "memory.swappiness")
        kmem_works = kernel < KMEM_LIMIT_REMOVED_IN
        flags["kernel_memory"] = kmem_works and _exists(mp, "memory.kmem.limit_in_bytes")
        flags["kernel_memory_tcp"] = _exists(mp, "memory.kmem.tcp.limit_in_bytes")
    cpu = mounts.get("cpu")
    if cpu:
        mp = cpu.mount_point
        flags["cpu_shares"] = _exists(mp, "cpu.shares")
        flags["cpu_cfs_quota"] = _exists(mp, "cpu.cfs_quota_us")
        flags["cpu_cfs_period"] = _exists(mp, "cpu.cfs_period_us")
        # The files exist only with CONFIG_RT_GROUP_SCHED; a root runtime of 0
        # leaves no budget for any child, so RT groups would be unusable.
        rt = (_read(os.path.join(mp, "cpu.rt_runtime_us")) or "").strip()
        flags["cpu_realtime"] = (
            _exists(mp, "cpu.rt_period_us") and rt.lstrip("-").isdigit() and int(rt) != 0
        )
    blkio = mounts.get("blkio")
    if blkio:
        mp = blkio.mount_point
        # blkio.weight is CFQ's (gone since 5.0); BFQ's blkio.bfq.weight only
        # appears below the root and runc 1.1 does not fall back to it on v1.
        flags["blkio_weight"] = _exists(mp, "blkio.weight")
        flags["blkio_weight_device"] = _exists(mp, "blkio.weight_device")
        flags["blkio_throttle"] = all(
            _exists(mp, f"blkio.throttle.{k}_device")
            for k in ("read_bps", "write_bps", "read_iops", "write_iops")
        )
    cpuset = mounts.get("cpuset")
    if cpuset:
        cpus = _read(os.path.join(cpuset.mount_point, "cpuset.cpus"))
        mems = _read(os.path.join(cpuset.mount_point, "cpuset.mems"))
        if cpus is not None and mems is not None:
            flags["cpuset"] = True
            flags["cpus_available"] = cpus.strip()
            flags["mems_available"] = mems.strip()
    flags["pids_limit"] = "pids" in mounts
    flags["devices"] = "devices" in mounts
    return flags


def _v2_probe_dirs(root: str, self_cgroup_text: str | None) -> list[str]:
    """Non-root groups to look for per-group files (io.weight, memory.swap.max).

    Those files never exist in the root group, so, like dockerd, look in our
    own group first, then in any direct child of the root.
    """
    dirs: list[str] = []
    if self_cgroup_text:
        own = parse_proc_cgroup(self_cgroup_text).get("")
        if own and own != "/":
            dirs.append(os.path.join(root, own.lstrip("/")))
    try:
        with os.scandir(root) as it:
            dirs.extend(sorted(e.path for e in it if e.is_dir(follow_symlinks=False)))
    except OSError:
        pass
    return dirs


def _v2_flags(root: str, controllers: frozenset[str],
              self_cgroup_text: str | None) -> dict[str, Any]:
    flags: dict[str, Any] = {}
    probes = _v2_probe_dirs(root, self_cgroup_text)

    def any_probe_has(*names: str) -> bool:
        return any(_exists(d, n) for d in probes for n in names)

    if "memory" in controllers:
        flags["memory_limit"] = True
        flags["memory_reservation"] = True         # memory.low
        flags["swap_limit"] = any_probe_has("memory.swap.max")
    if "cpu" in controllers:
        flags["cpu_shares"] = flags["cpu_cfs_quota"] = flags["cpu_cfs_period"] = True
    if "io" in controllers:
        flags["blkio_throttle"] = True
        # io.weight needs blk-iocost, io.bfq.weight the BFQ scheduler; if no
        # group exists yet to look in, trust the controller as dockerd does.
        has_io_group = any(
            "io" in (_read(os.path.join(d, "cgroup.controllers")) or "").split() for d in probes
        )
        weight = any_probe_has("io.weight", "io.bfq.weight") if has_io_group else True
        flags["blkio_weight"] = flags["blkio_weight_device"] = weight
    if "cpuset" in controllers:
        flags["cpuset"] = True
        flags["cpus_available"] = (_read(os.path.join(root, "cpuset.cpus.effective")) or "").strip()
        flags["mems_available"] = (_read(os.path.join(root, "cpuset.mems.effective")) or "").strip()
    flags["pids_limit"] = "pids" in controllers
    # v2 device control is eBPF, always there when cgroups are.
    flags["devices"] = True
    return flags


def detect_cgroups(
    mountinfo_text: str | None = None,
    root: str = CGROUP_ROOT,
    *,
    mount_base: str = CGROUP_ROOT,
    self_cgroup_text: str | None = None,
    kernel_release: str | None = None,
) -> CgroupInfo:
    """Describe the host's cgroup setup.

    `mountinfo_text` defaults to /proc/self/mountinfo, `self_cgroup_text` to
    /proc/self/cgroup and `kernel_release` to uname.  Mount points under
    `mount_base` are read under `root` instead, so tests can lay out a fake
    cgroup tree in a temporary directory.
    """
    if mountinfo_text is None:
        mountinfo_text = _read("/proc/self/mountinfo") or ""
    if self_cgroup_text is None and root == CGROUP_ROOT:
        self_cgroup_text = _read("/proc/self/cgroup")
    kernel = _kernel_tuple(kernel_release if kernel_release is not None else os.uname().release)

    mounts = parse_mountinfo(mountinfo_text)
    v1_mounts: dict[str, CgroupMount] = {}
    unified: CgroupMount | None = None
    for m in mounts:
        m = CgroupMount(_reroot(m.mount_point, mount_base, root), m.root, m.fstype, m.controllers)
        if m.fstype == "cgroup2":
            # Prefer the mount at the base (pure v2) or base/unified (hybrid)
            # over stray mounts elsewhere, e.g. inside a container's rootfs.
            if unified is None or m.mount_point in (root, os.path.join(root, "unified")):
                unified = m
            continue
        for c in m.controllers:
            v1_mounts.setdefault(c, m)

    if unified is not None and unified.mount_point == root:
        mode = "v2"
    elif v1_mounts:
        mode = "hybrid" if unified is not None else "v1"
    elif unified is not None:
        # cgroup2 mounted somewhere other than the base and no v1 at all: still
        # a unified host, just an unusual layout.
        mode = "v2"
    else:
        return CgroupInfo(mode="none", version=1, root=root, unified_mount=None)

    unified_controllers: frozenset[str] = frozenset()
    if unified is not None:
        text = _read(os.path.join(unified.mount_point, "cgroup.controllers")) or ""
        unified_controllers = frozenset(text.split())

    if mode == "v2":
        assert unified is not None
        flags = _v2_flags(unified.mount_point, unified_controllers, self_cgroup_text)
        return CgroupInfo(
            mode=mode, version=2, root=unified.mount_point, unified_mount=unified.mount_point,
            controllers=unified_controllers, **flags,
        )
    flags = _v1_flags(v1_mounts, kernel)
    return CgroupInfo(
        mode=mode, version=1, root=root,
        unified_mount=unified.mount_point if unified else None,
        controllers=frozenset(v1_mounts),
        unified_controllers=unified_controllers if mode == "hybrid" else frozenset(),
        v1_mounts=v1_mounts, **flags,
    )


def cgroup_fact_fields(info: CgroupInfo) -> dict[str, Any]:
    """The cgroup part of `dockyard.oci.host.HostFacts`, as constructor kwargs."""
    facts: dict[str, Any] = {
        "cgroup_version": info.version,
        "cgroup_controllers": info.controllers,
        "memory_limit": info.memory_limit,
        "swap_limit": info.swap_limit,
        "memory_reservation": info.memory_reservation,
        "memory_swappiness": info.memory_swappiness,
        "kernel_memory": info.kernel_memory,
        "oom_kill_disable": info.oom_kill_disable,
        "cpu_cfs_quota": info.cpu_cfs_quota,
        "cpu_cfs_period": info.cpu_cfs_period,
        "cpu_shares": info.cpu_shares,
        "cpu_realtime": info.cpu_realtime,
        "cpuset": info.cpuset,
        "pids_limit": info.pids_limit,
        "blkio_weight": info.blkio_weight,
        "blkio_weight_device": info.blkio_weight_device,
        "blkio_throttle": info.blkio_throttle,
    }
    # An empty cpuset would make every --cpuset-cpus request look invalid;
    # leave HostFacts' own default in place when the host did not say.
    if info.cpus_available:
        facts["cpus_available"] = info.cpus_available
    if info.mems_available:
        facts["mems_available"] = info.mems_available
    return facts
