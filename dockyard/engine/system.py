"""`SystemService`: `/version`, `/info` and `/events` (the system backend).

/info reports what was detected at start and what the services hold now;
nothing in it is made up (an unknown value is left empty, as dockerd does).
"""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from dockyard import API_VERSION, MIN_API_VERSION, __version__
from dockyard.backend import DiskUsageOptions, EventsOptions
from dockyard.engine.containers.store import ContainerStore
from dockyard.engine.diskusage import DiskUsage
from dockyard.engine.events import EventBus, validate_event_filters
from dockyard.engine.host.environment import HostEnv
from dockyard.engine.host.probe import operating_system
from dockyard.images.distribution.hosts import validate_mirror
from dockyard.images.distribution.proxies import Proxies
from dockyard.images.service import ImageService
from dockyard.util.atomic import atomic_write
from dockyard.util.timefmt import rfc3339_nano_fixed

NETWORK_DRIVERS = ("bridge", "host", "null", "overlay")
LOG_DRIVERS = ("json-file", "none")


def node_description(host: HostEnv) -> dict[str, Any]:
    """This engine as a swarm node describes itself (`docker node inspect`)."""
    return {
        "Hostname": socket.gethostname(),
        "Platform": {"Architecture": platform.machine(), "OS": "linux"},
        "Resources": {"NanoCPUs": host.facts.ncpu * 1_000_000_000,
                      "MemoryBytes": host.facts.mem_total},
        "Engine": {"EngineVersion": __version__,
                   "Plugins": [{"Type": "Log", "Name": n} for n in LOG_DRIVERS] +
                              [{"Type": "Network", "Name": n} for n in NETWORK_DRIVERS] +
                              [{"Type": "Volume", "Name": "local"}]},
    }


class SystemService:
    def __init__(self, host: HostEnv, store: ContainerStore, images: ImageService,
                 events: EventBus, usage: DiskUsage,
                 swarm_info: Callable[[], dict[str, Any]]) -> None:
        self.host = host
        self.swarm_info = swarm_info
        self.store = store
        self.images = images
        self.events_bus = events
        self.usage = usage
        self.name = socket.gethostname()

    def events(self, opts: EventsOptions) -> AsyncIterator[dict[str, Any]]:
        validate_event_filters(opts.filters)
        return self._events(opts)

    async def _events(self, opts: EventsOptions) -> AsyncIterator[dict[str, Any]]:
        async for ev in self.events_bus.stream(opts.since_ns, opts.until_ns, opts.filters):
            yield ev.to_json()

    async def disk_usage(self, opts: DiskUsageOptions) -> dict[str, Any]:
        return await self.usage.report(opts)

    def version(self) -> dict[str, Any]:
        kernel = platform.release()
        arch = self.host.facts.arch
        comps = [{"Name": "Engine", "Version": __version__,
                  "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
                              "Arch": arch, "Os": "linux", "KernelVersion": kernel,
                              "GitCommit": "", "GoVersion": f"python{platform.python_version()}",
                              "BuildTime": "", "Experimental": "false"}}]
        for name, ver in self.host.runtime_versions.items():
            comps.append({"Name": name, "Version": ver.version,
                          "Details": {"GitCommit": ver.commit}})
        return {
            "Platform": {"Name": f"dockyard {__version__}"},
            "Components": comps,
            "Version": __version__, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "", "GoVersion": f"python{platform.python_version()}", "Os": "linux",
            "Arch": arch, "KernelVersion": kernel, "BuildTime": "",
        }

    def info(self) -> dict[str, Any]:
        h = self.host.facts
        data_root = self.host.data_root
        os_name, os_version = operating_system()
        runtimes = {n: {"path": rt.path, **({"runtimeArgs": list(rt.args)} if rt.args else {})}
                    for n, rt in self.host.runtimes.runtimes.items()}
        seccomp = self.host.seccomp
        sec = [f"name=seccomp,profile={seccomp.name}"] if h.seccomp else []
        if h.apparmor:
            sec.insert(0, "name=apparmor")
        if h.cgroup_version == 2:
            sec.append("name=cgroupns")
        warnings = []
        if not h.swap_limit:
            warnings.append("WARNING: No swap limit support")
        if not h.blkio_weight:
            warnings.append("WARNING: No blkio weight support")
            warnings.append("WARNING: No blkio weight_device support")
        warnings += self.host.emulation.info_warnings()
        if h.seccomp and seccomp.name != "builtin":
            warnings.append("WARNING: daemon is not using the default seccomp profile")
        elif h.seccomp:
            warnings += [f"WARNING: seccomp: {w}; using {seccomp.origin}"
                         for w in seccomp.warnings]
        default = self.host.runtime_versions.get(self.host.runtimes.default or "")
        return {
            "ID": self._daemon_id(), **self.store.counts(),
            "Images": len(self.images.list_records()),
            "Driver": "overlay2",
            "DriverStatus": [["Backing Filesystem", _fs_type(data_root)],
                             ["Supports d_type", "true"], ["Using metacopy", "false"],
                             ["Native Overlay Diff", "true"], ["userxattr", "false"]],
            "DockerRootDir": str(data_root),
            "Plugins": {"Volume": ["local"], "Network": list(NETWORK_DRIVERS),
                        "Authorization": None,
                        "Log": list(LOG_DRIVERS)},
            "MemoryLimit": h.memory_limit, "SwapLimit": h.swap_limit,
            "KernelMemory": h.kernel_memory, "KernelMemoryTCP": False,
            "CpuCfsPeriod": h.cpu_cfs_period, "CpuCfsQuota": h.cpu_cfs_quota,
            "CPUShares": h.cpu_shares, "CPUSet": h.cpuset, "PidsLimit": h.pids_limit,
            "IPv4Forwarding": _read("/proc/sys/net/ipv4/ip_forward").strip() == "1",
            "BridgeNfIptables": False, "BridgeNfIp6tables": False,
            "OomKillDisable": h.oom_kill_disable, "Debug": self.host.config.debug,
            "NFd": _count_fds(), "NGoroutines": len(asyncio.all_tasks()),
            "SystemTime": rfc3339_nano_fixed(time.time_ns()),
            "LoggingDriver": self.host.config.log_driver,
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": str(h.cgroup_version),
            "NEventsListener": self.events_bus.listeners,
            "KernelVersion": h.kernel_version or platform.release(),
            "OperatingSystem": os_name, "OSVersion": os_version, "OSType": "linux",
            "Architecture": platform.machine(), "NCPU": h.ncpu, "MemTotal": h.mem_total,
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": _registry_config(self.host.config.registry_mirrors,
                                               self.host.config.insecure_registries),
            "GenericResources": None,
            **Proxies.from_config(self.host.config.proxies, {}).shown(),
            "Name": self.name, "Labels": [], "ExperimentalBuild": False,
            "ServerVersion": __version__, "Runtimes": runtimes,
            "DefaultRuntime": self.host.runtimes.default or "",
            "Swarm": self.swarm_info(),
            "LiveRestoreEnabled": True, "Isolation": "",
            "InitBinary": "docker-init",
            "ContainerdCommit": {"ID": ""}, "RuncCommit": {"ID": default.commit if default else ""}, "InitCommit": {"ID": ""},
            "SecurityOptions": sec, "DefaultAddressPools": [],
            "CDISpecDirs": ["/etc/cdi", "/var/run/cdi"],
            "Warnings": warnings,
        }

    def _daemon_id(self) -> str:
        p = self.host.data_root / "engine-id"
        try:
            return p.read_text().strip()
        except OSError:
            ident = str(uuid.uuid4())
            atomic_write(p, ident.encode())
            return ident


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _count_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def _fs_type(path: Path) -> str:
    best, fstype = "", "unknown"
    for line in _read("/proc/self/mounts").splitlines():
        parts = line.split()
        if len(parts) > 2 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
            best, fstype = parts[1], parts[2]
    return {"ext4": "extfs", "ext3": "extfs", "ext2": "extfs"}.get(fstype, fstype)


def _registry_config(mirrors: list[str], insecure: list[str]) -> dict[str, Any]:
    """dockerd's ServiceConfig as /info shows it."""
    mirrors = [validate_mirror(m) for m in mirrors]     # as dockerd shows them: ".../"
    cidrs = ["::1/128", "127.0.0.0/8", *(i for i in insecure if "/" in i)]
    index = {"docker.io": {"Name": "docker.io", "Mirrors": list(mirrors), "Secure": True,
                           "Official": True}}
    for name in insecure:
        if "/" not in name:
            index[name] = {"Name": name, "Mirrors": [], "Secure": False, "Official": False}
    return {"AllowNondistributableArtifactsCIDRs": None,
            "AllowNondistributableArtifactsHostnames": None,
            "InsecureRegistryCIDRs": cidrs, "IndexConfigs": index,
            "Mirrors": list(mirrors)}
