"""Facts about the host that decide how a Docker request becomes an OCI spec.

Pure data: the engine detects these once at start (cgroups/, runtime/ and
the host probes do the I/O) and hands them to the `oci/` functions, so every
translation and validation rule can be tested for any host without root.

`EngineOptions` holds the daemon's own configuration (what dockerd reads from
daemon.json) that shapes the same translation; it is not detected but chosen.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class HostFacts:
    cgroup_version: int = 1                      # 1 (v1 or hybrid) or 2 (unified)
    cgroup_controllers: frozenset[str] = frozenset()
    ncpu: int = 1
    cpus_available: str = "0"                    # cpuset list form, e.g. "0-1"
    mems_available: str = "0"
    mem_total: int = 0                           # bytes
    arch: str = "amd64"                          # GOARCH-style name
    kernel_version: str = ""
    cap_bounding: frozenset[str] = frozenset()   # e.g. {"CAP_CHOWN", ...}
    # hard rlimit ceilings the host can grant, by Docker's ulimit name ("nofile")
    rlimit_ceilings: dict[str, int] = field(default_factory=dict)
    apparmor: bool = False
    # docker-default is loaded in the kernel.  dockerd loads it at start; we
    # do not (yet), and runc fails every container (ENOENT on attr/exec) if
    # the spec names a profile the kernel lacks, e.g. on a stock Debian kernel
    # without docker.io installed.  False: no profile unless asked for one.
    apparmor_default_loaded: bool = True
    selinux: bool = False
    seccomp: bool = True
    # what the cgroup setup supports (as `docker info` reports)
    memory_limit: bool = True
    swap_limit: bool = True
    memory_reservation: bool = True
    memory_swappiness: bool = True               # v1 only
    kernel_memory: bool = False
    oom_kill_disable: bool = True
    cpu_cfs_quota: bool = True
    cpu_cfs_period: bool = True
    cpu_shares: bool = True
    cpu_realtime: bool = False                   # RT group scheduling
    cpuset: bool = True
    pids_limit: bool = True
    blkio_weight: bool = False
    blkio_weight_device: bool = False
    blkio_throttle: bool = True
    cdi_devices: frozenset[str] = frozenset()    # fully qualified CDI device names
    # --- added by oci/ ---
    cgroup_namespaces: bool = True               # kernel has cgroup namespaces
    time_namespace: bool = False                 # kernel *and* runtime support "time"
    # the OCI runtime accepts the "rro" (recursive read-only) mount option
    rro_supported: bool = False
    # /sys/devices/system/cpu/cpuN/thermal_throttle paths that exist; Docker
    # masks each of them in addition to its fixed masked-path list
    thermal_throttle_paths: tuple[str, ...] = ()
    # sysctls present under /proc/sys (only the two Docker sets by default
    # matter); Docker skips a default sysctl the kernel does not have
    has_ping_group_range: bool = True
    has_ip_unprivileged_port_start: bool = True
    running_in_userns: bool = False              # the daemon itself runs in a userns


@dataclass(frozen=True)
class EngineOptions:
    """The daemon configuration that decides defaults (dockerd's daemon.json)."""

    default_runtime: str = "runc"
    runtimes: frozenset[str] = frozenset({"runc"})
    cgroup_driver: str = "cgroupfs"              # "cgroupfs" or "systemd"
    cgroup_parent: str = ""                      # daemon-wide --cgroup-parent
    default_shm_size: int = 64 * 1024 * 1024
    default_ipc_mode: str = "private"
    default_cgroupns_mode: str = ""              # "" = private on v2, host on v1
    init: bool = False                           # daemon `init: true`
    no_new_privileges: bool = False
    # daemon default-ulimits, by Docker name: {"nofile": (soft, hard)}
    default_ulimits: dict[str, tuple[int, int]] = field(default_factory=dict)
    userns_remap: bool = False
    log_driver: str = "json-file"
    log_opts: dict[str, str] = field(default_factory=dict)
