"""HostConfig resources: Docker's checks, discards and the OCI translation.

`verify_resources` is moby's verifyPlatformContainerResources (plus the
decode-time checks of runconfig validateResources): it raises
InvalidParameter with Docker's texts, and returns the warnings and a copy of
the resources with the values the host cannot enforce dropped, exactly as
dockerd stores them.  `linux_resources` turns the (adjusted) values into the
spec's `linux.resources` memory/cpu/pids/blockIO parts.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping

from dockyard.errors import InvalidParameter
from dockyard.oci.host import HostFacts

MIN_MEMORY = 6 * 1024 * 1024      # not a kernel limit: room for a working container
CFS_DEFAULT_PERIOD = 100_000      # µs, used for NanoCpus

_THROTTLE_WARNINGS = (
    ("BlkioDeviceReadBps", ("Your kernel does not support BPS Block I/O read limit or the "
     "cgroup is not mounted. Block I/O BPS read limit discarded.")),
    ("BlkioDeviceWriteBps", ("Your kernel does not support BPS Block I/O write limit or the "
     "cgroup is not mounted. Block I/O BPS write limit discarded.")),
    ("BlkioDeviceReadIOps", ("Your kernel does not support IOPS Block read limit or the "
     "cgroup is not mounted. Block I/O IOPS read limit discarded.")),
    ("BlkioDeviceWriteIOps", ("Your kernel does not support IOPS Block write limit or the "
     "cgroup is not mounted. Block I/O IOPS write limit discarded.")),
)

_LIST = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


def parse_cpuset(text: str) -> set[int]:
    """`0-2,5` -> {0, 1, 2, 5}; raise ValueError on bad syntax."""
    if not text:
        return set()
    if not _LIST.match(text):
        raise ValueError(f"invalid format: {text}")
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        a, b = int(lo), int(hi or lo)
        if b < a:
            raise ValueError(f"invalid range format: {part}")
        out.update(range(a, b + 1))
    return out


def _cpuset_available(requested: str, available: str, what: str) -> None:
    if not requested:
        return
    try:
        want = parse_cpuset(requested)
    except ValueError as e:
        raise InvalidParameter(f"Invalid value {requested} for cpuset {what}: {e}") from None
    have = parse_cpuset(available)
    if not want <= have:
        label = "CPUs" if what == "cpus" else "memory nodes"
        raise InvalidParameter(
            f"Requested {label} are not available - requested {requested}, available: {available}"
        )


def verify_resources(resources: Mapping, host: HostFacts,
                     update: bool = False) -> tuple[list[str], dict]:
    """Check Docker resource fields; return (warnings, adjusted copy).

    Each check may drop from the copy what the host cannot enforce, and the
    later checks see the copy, so the order matters: it is dockerd's, and the
    first check that fails raises.
    """
    r = copy.deepcopy(dict(resources))
    w: list[str] = []
    # decode-time checks (runconfig.validateResources) come first in Docker
    _check_realtime(r, host)
    _check_cpu_shares_sign(r, host)
    _check_io_maximums(r)
    # then verifyPlatformContainerResources
    _check_memory_and_swap(r, host, w, update)
    _check_memory_swappiness(r, host, w)
    _check_memory_reservation(r, host, w)
    _check_kernel_memory(r, host, w)
    _check_oom_kill_disable(r, host, w)
    _check_pids(r, host, w)
    _check_nano_cpus(r, host)
    _check_cpu_shares(r, host, w)
    _check_cpu_period_quota(r, host, w)
    _check_cpu_percent(r, w)
    _check_cpuset(r, host, w)
    _check_blkio_weight(r, host)
    _check_blkio_weight_device(r, host)
    _check_blkio_throttle(r, host, w)
    return w, r


def _check_realtime(r: dict, host: HostFacts) -> None:
    period, runtime = r.get("CpuRealtimePeriod") or 0, r.get("CpuRealtimeRuntime") or 0
    if (period or runtime) and not host.cpu_realtime:
        raise InvalidParameter("kernel does not support CPU real-time scheduler")
    if period and runtime and runtime > period:
        raise InvalidParameter("cpu real-time runtime cannot be higher than cpu real-time period")


def _check_cpu_shares_sign(r: dict, host: HostFacts) -> None:
    shares = r.get("CpuShares") or 0
    if host.cpu_shares and shares < 0:
        raise InvalidParameter(f"invalid CPU shares ({shares}): value must be a positive integer")


def _check_io_maximums(r: dict) -> None:
    if r.get("IOMaximumBandwidth"):
        raise InvalidParameter(
            "invalid option: QoS maximum bandwidth configuration is not supported on linux")
    if r.get("IOMaximumIOps"):
        raise InvalidParameter(
            "invalid option: QoS maximum IOPs configuration is not supported on linux")


def _check_memory_and_swap(r: dict, host: HostFacts, w: list[str], update: bool) -> None:
    memory = r.get("Memory") or 0
    if memory != 0 and memory < MIN_MEMORY:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    if memory > 0 and not host.memory_limit:
        w.append("Your kernel does not support memory limit capabilities or the cgroup is "
                 "not mounted. Limitation discarded.")
        r["Memory"], r["MemorySwap"] = 0, -1
    memory, swap = r.get("Memory") or 0, r.get("MemorySwap") or 0
    if memory > 0 and swap != -1 and not host.swap_limit:
        w.append("Your kernel does not support swap limit capabilities or the cgroup is not "
                 "mounted. Memory limited without swap.")
        r["MemorySwap"] = swap = -1
    if memory > 0 and swap > 0 and swap < memory:
        raise InvalidParameter(
            "Minimum memoryswap limit should be larger than memory limit, see usage")
    if memory == 0 and swap > 0 and not update:
        raise InvalidParameter(
            "You should always set the Memory limit when using Memoryswap limit, see usage")


def _check_memory_swappiness(r: dict, host: HostFacts, w: list[str]) -> None:
    # -1 swappiness means "unset" (fixMemorySwappiness)
    if r.get("MemorySwappiness") == -1:
        r["MemorySwappiness"] = None
    if r.get("MemorySwappiness") is not None and not host.memory_swappiness:
        w.append("Your kernel does not support memory swappiness capabilities or the cgroup "
                 "is not mounted. Memory swappiness discarded.")
        r["MemorySwappiness"] = None
    swappiness = r.get("MemorySwappiness")
    if swappiness is not None and not 0 <= swappiness <= 100:
        raise InvalidParameter(
            f"Invalid value: {swappiness}, valid memory swappiness range is 0-100")


def _check_memory_reservation(r: dict, host: HostFacts, w: list[str]) -> None:
    reservation = r.get("MemoryReservation") or 0
    if reservation > 0 and not host.memory_reservation:
        w.append("Your kernel does not support memory soft limit capabilities or the cgroup "
                 "is not mounted. Limitation discarded.")
        r["MemoryReservation"] = reservation = 0
    if reservation > 0 and reservation < MIN_MEMORY:
        raise InvalidParameter("Minimum memory reservation allowed is 6MB")
    memory = r.get("Memory") or 0
    if memory > 0 and reservation > 0 and memory < reservation:
        raise InvalidParameter("Minimum memory limit can not be less than memory reservation "
                               "limit, see usage")


def _check_kernel_memory(r: dict, host: HostFacts, w: list[str]) -> None:
    kmem = r.get("KernelMemory") or 0
    if kmem and not host.kernel_memory:
        # kmem limits are gone on cgroup v2 and deprecated on v1 since 5.4
        w.append("Your kernel does not support kernel memory limit capabilities or the cgroup "
                 "is not mounted. Limitation discarded.")
        r["KernelMemory"] = kmem = 0
    if 0 < kmem < 4 * 1024 * 1024:
        raise InvalidParameter("Minimum kernel memory limit allowed is 4MB")


def _check_oom_kill_disable(r: dict, host: HostFacts, w: list[str]) -> None:
    oom = r.get("OomKillDisable")
    if oom is not None and not host.oom_kill_disable:
        if oom:
            w.append("Your kernel does not support OomKillDisable. OomKillDisable discarded.")
        r["OomKillDisable"] = oom = None
    if oom and (r.get("Memory") or 0) == 0:
        w.append("OOM killer is disabled for the container, but no memory limit is set, this "
                 "can result in the system running out of resources.")


def _check_pids(r: dict, host: HostFacts, w: list[str]) -> None:
    pids = r.get("PidsLimit")
    if pids is not None and not host.pids_limit:
        if pids > 0:
            w.append("Your kernel does not support PIDs limit capabilities or the cgroup is not "
                     "mounted. PIDs limit discarded.")
        r["PidsLimit"] = None


def _has_cfs(host: HostFacts) -> bool:
    return host.cpu_cfs_quota and host.cpu_cfs_period


def _check_nano_cpus(r: dict, host: HostFacts) -> None:
    nano = r.get("NanoCpus") or 0
    period, quota = r.get("CpuPeriod") or 0, r.get("CpuQuota") or 0
    if nano > 0 and period > 0:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano > 0 and quota > 0:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if nano > 0 and not _has_cfs(host):
        raise InvalidParameter("NanoCPUs can not be set, as your kernel does not support CPU "
                               "CFS scheduler or the cgroup is not mounted")
    if nano != 0 and (nano < 0 or nano > host.ncpu * 10**9):
        n = host.ncpu
        raise InvalidParameter(
            f"range of CPUs is from 0.01 to {n}.00, as there are only {n} CPUs available")


def _check_cpu_shares(r: dict, host: HostFacts, w: list[str]) -> None:
    if (r.get("CpuShares") or 0) > 0 and not host.cpu_shares:
        w.append("Your kernel does not support CPU shares or the cgroup is not mounted. "
                 "Shares discarded.")
        r["CpuShares"] = 0


def _check_cpu_period_quota(r: dict, host: HostFacts, w: list[str]) -> None:
    period, quota = r.get("CpuPeriod") or 0, r.get("CpuQuota") or 0
    if (period or quota) and not _has_cfs(host):
        w.append("Your kernel does not support CPU CFS scheduler. CPU period/quota discarded.")
        r["CpuPeriod"] = r["CpuQuota"] = period = quota = 0
    if period and not 1000 <= period <= 1_000_000:
        raise InvalidParameter("CPU cfs period can not be less than 1ms (i.e. 1000) or larger "
                               "than 1s (i.e. 1000000)")
    if 0 < quota < 1000:
        raise InvalidParameter("CPU cfs quota can not be less than 1ms (i.e. 1000)")


def _check_cpu_percent(r: dict, w: list[str]) -> None:
    if (r.get("CpuPercent") or 0) > 0:
        w.append("linux does not support CPU percent. Percent discarded.")
        r["CpuPercent"] = 0


def _check_cpuset(r: dict, host: HostFacts, w: list[str]) -> None:
    cpus, mems = r.get("CpusetCpus") or "", r.get("CpusetMems") or ""
    if (cpus or mems) and not host.cpuset:
        w.append("Your kernel does not support cpuset or the cgroup is not mounted. "
                 "Cpuset discarded.")
        r["CpusetCpus"] = r["CpusetMems"] = cpus = mems = ""
    _cpuset_available(cpus, host.cpus_available, "cpus")
    _cpuset_available(mems, host.mems_available, "mems")


def _check_blkio_weight(r: dict, host: HostFacts) -> None:
    # Range first, in Docker's words; then, unlike dockerd (which warns and
    # drops the weight), refuse: a user asking for I/O weighting on a kernel
    # without it should learn that it would not be enforced.
    weight = r.get("BlkioWeight") or 0
    if weight > 0 and not 10 <= weight <= 1000:
        raise InvalidParameter("Range of blkio weight is from 10 to 1000")
    if weight > 0 and not host.blkio_weight:
        raise InvalidParameter("Your kernel does not support Block I/O weight or the cgroup "
                               "is not mounted: --blkio-weight cannot be enforced on this host")


def _check_blkio_weight_device(r: dict, host: HostFacts) -> None:
    for d in r.get("BlkioWeightDevice") or []:
        weight = d.get("Weight") or 0
        if weight and not 10 <= weight <= 1000:
            raise InvalidParameter("Range of blkio weight is from 10 to 1000")
    if r.get("BlkioWeightDevice") and not host.blkio_weight_device:
        raise InvalidParameter("Your kernel does not support Block I/O weight_device or the "
                               "cgroup is not mounted: --blkio-weight-device cannot be "
                               "enforced on this host")


def _check_blkio_throttle(r: dict, host: HostFacts, w: list[str]) -> None:
    for key, text in _THROTTLE_WARNINGS:
        if r.get(key) and not host.blkio_throttle:
            w.append(text)
            r[key] = []


def default_memory_swap(resources: dict) -> None:
    """dockerd's create-time default: MemorySwap = 2 x Memory when unset."""
    mem = resources.get("Memory") or 0
    if mem > 0 and not resources.get("MemorySwap"):
        resources["MemorySwap"] = mem * 2


def _blkio_devs(devs: list | None, src: str, dst: str,
                devmap: Mapping[str, tuple[int, int]]) -> list:
    """Docker {Path, Weight|Rate} entries -> OCI {major, minor, weight|rate}.

    The engine stats each path and passes `devmap` (path -> (major, minor)).
    """
    out = []
    for d in devs or []:
        path = d.get("Path", "")
        if path not in devmap:
            raise InvalidParameter(f"stat {path}: no such file or directory")
        major, minor = devmap[path]
        out.append({"major": major, "minor": minor, dst: d.get(src, 0)})
    return out


def linux_resources(r: Mapping, blkio_devices: Mapping[str, tuple[int, int]] | None = None,
                    update: bool = False) -> dict:
    """The memory/cpu/pids/blockIO part of `linux.resources` (devices apart)."""
    devmap = blkio_devices or {}
    out: dict = {}
    mem: dict = {}
    if (r.get("Memory") or 0) > 0:
        mem["limit"] = r["Memory"]
    if (r.get("MemoryReservation") or 0) > 0:
        mem["reservation"] = r["MemoryReservation"]
    if (r.get("MemorySwap") or 0) > 0:
        mem["swap"] = r["MemorySwap"]
    if r.get("MemorySwappiness") is not None and r["MemorySwappiness"] >= 0:
        mem["swappiness"] = r["MemorySwappiness"]
    if (r.get("KernelMemory") or 0) > 0:
        mem["kernel"] = r["KernelMemory"]
    if r.get("OomKillDisable") is not None:
        mem["disableOOMKiller"] = bool(r["OomKillDisable"])
    if mem:
        out["memory"] = mem
    cpu: dict = {}
    if r.get("CpuShares"):
        cpu["shares"] = r["CpuShares"]
    if r.get("CpusetCpus"):
        cpu["cpus"] = r["CpusetCpus"]
    if r.get("CpusetMems"):
        cpu["mems"] = r["CpusetMems"]
    nano = r.get("NanoCpus") or 0
    if nano > 0:
        cpu["period"] = CFS_DEFAULT_PERIOD
        cpu["quota"] = nano * CFS_DEFAULT_PERIOD // 10**9
    if r.get("CpuPeriod"):
        cpu["period"] = r["CpuPeriod"]
    if r.get("CpuQuota"):
        cpu["quota"] = r["CpuQuota"]
        if r["CpuQuota"] < 0 and not update:
            # -1 is "no quota", which a new cgroup already has (it also
            # overrides NanoCpus, as in dockerd); crun 1.8 fails to write it.
            del cpu["quota"]
    if r.get("CpuRealtimePeriod"):
        cpu["realtimePeriod"] = r["CpuRealtimePeriod"]
    if r.get("CpuRealtimeRuntime"):
        cpu["realtimeRuntime"] = r["CpuRealtimeRuntime"]
    if cpu:
        out["cpu"] = cpu
    pids = r.get("PidsLimit")
    if pids is not None and (pids > 0 or update):
        # <= 0 means unlimited.  A new cgroup already is, and crun 1.8 on
        # cgroup v1 refuses to write -1, so the limit is left out at create;
        # an update must say -1 ("max") to lift an earlier limit.
        out["pids"] = {"limit": pids if pids > 0 else -1}
    blkio: dict = {}
    if r.get("BlkioWeight"):
        blkio["weight"] = r["BlkioWeight"]
    for key, name, src, dst in (
            ("BlkioWeightDevice", "weightDevice", "Weight", "weight"),
            ("BlkioDeviceReadBps", "throttleReadBpsDevice", "Rate", "rate"),
            ("BlkioDeviceWriteBps", "throttleWriteBpsDevice", "Rate", "rate"),
            ("BlkioDeviceReadIOps", "throttleReadIOPSDevice", "Rate", "rate"),
            ("BlkioDeviceWriteIOps", "throttleWriteIOPSDevice", "Rate", "rate")):
        devs = _blkio_devs(r.get(key), src, dst, devmap)
        if devs:
            blkio[name] = devs
    out["blockIO"] = blkio
    return out
