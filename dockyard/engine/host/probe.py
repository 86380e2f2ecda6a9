"""Read the host facts the engine decides on (the I/O half of oci.host)."""

from __future__ import annotations

import os
import platform
import resource
from pathlib import Path

from dockyard.oci.host import HostFacts

GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
          "s390x": "s390x", "riscv64": "riscv64", "i686": "386"}

# Docker's ulimit names -> resource module constants
RLIMITS = {
    "core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA", "fsize": "RLIMIT_FSIZE",
    "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK", "msgqueue": "RLIMIT_MSGQUEUE",
    "nice": "RLIMIT_NICE", "nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC",
    "rss": "RLIMIT_RSS", "rtprio": "RLIMIT_RTPRIO", "rttime": "RLIMIT_RTTIME",
    "sigpending": "RLIMIT_SIGPENDING", "stack": "RLIMIT_STACK", "as": "RLIMIT_AS",
}


def read_text(path: str | Path, default: str = "") -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return default


def mem_total() -> int:
    for line in read_text("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def cap_bounding_mask() -> int:
    for line in read_text("/proc/self/status").splitlines():
        if line.startswith("CapBnd:"):
            return int(line.split()[1], 16)
    return 0


def cap_names_from_mask(mask: int) -> frozenset[str]:
    from dockyard.oci.caps import caps_from_mask

    return caps_from_mask(mask)


def rlimit_ceilings() -> dict[str, int]:
    """Hard limits this process can grant.  Without CAP_SYS_RESOURCE no
    container may get a hard limit above ours."""
    out: dict[str, int] = {}
    for name, const in RLIMITS.items():
        if hasattr(resource, const):
            _soft, hard = resource.getrlimit(getattr(resource, const))
            out[name] = -1 if hard == resource.RLIM_INFINITY else hard
    return out


def thermal_throttle_paths() -> tuple[str, ...]:
    """Docker masks each CPU's thermal_throttle dir where one exists."""
    base = Path("/sys/devices/system/cpu")
    try:
        cpus = sorted(p for p in base.iterdir() if p.name[3:].isdigit() and
                      p.name.startswith("cpu"))
    except OSError:
        return ()
    return tuple(str(p / "thermal_throttle") for p in cpus
                 if (p / "thermal_throttle").exists())


def running_in_userns() -> bool:
    """True unless uid_map is the initial namespace's full identity map."""
    fields = read_text("/proc/self/uid_map").split()
    return fields[:3] != ["0", "0", "4294967295"] if fields else False


def probe_host() -> HostFacts:
    from dockyard.cgroups import detect as cgdetect

    info = cgdetect.detect_cgroups()
    fields = cgdetect.cgroup_fact_fields(info)
    caps = cap_names_from_mask(cap_bounding_mask())
    apparmor = read_text("/sys/module/apparmor/parameters/enabled").strip() == "Y"
    # "name (mode)" lines; no securityfs to look in: assume it is loaded
    aa_profiles = "/sys/kernel/security/apparmor/profiles"
    apparmor_default_loaded = not apparmor or not os.path.exists(aa_profiles) or any(
        ln.split(" (")[0] == "docker-default" for ln in read_text(aa_profiles).splitlines())
    selinux = os.path.exists("/sys/fs/selinux/enforce")
    return HostFacts(
        ncpu=os.cpu_count() or 1,
        mem_total=mem_total(),
        arch=GOARCH.get(platform.machine(), platform.machine()),
        kernel_version=platform.release(),
        cap_bounding=caps,
        rlimit_ceilings=rlimit_ceilings(),
        apparmor=apparmor,
        apparmor_default_loaded=apparmor_default_loaded,
        selinux=selinux,
        seccomp="Seccomp:" in read_text("/proc/self/status"),
        cgroup_namespaces=os.path.exists("/proc/self/ns/cgroup"),
        thermal_throttle_paths=thermal_throttle_paths(),
        has_ping_group_range=os.path.exists("/proc/sys/net/ipv4/ping_group_range"),
        has_ip_unprivileged_port_start=os.path.exists(
            "/proc/sys/net/ipv4/ip_unprivileged_port_start"),
        running_in_userns=running_in_userns(),
        **fields,
    )


def operating_system() -> tuple[str, str]:
    name, version = "Linux", ""
    for line in read_text("/etc/os-release").splitlines():
        k, _, v = line.partition("=")
        v = v.strip().strip('"')
        if k == "PRETTY_NAME":
            name = v
        elif k == "VERSION_ID":
            version = v
    return name, version
