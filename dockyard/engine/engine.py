"""The Engine: one object that owns the daemon's state.

Its async methods are the Docker operations; `api/` calls them and shapes
the answers.  Another backend (say, pods on a cluster) would implement the
same surface and answer what it cannot do with NotImplementedByEngine.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import platform
import socket
import time
from pathlib import Path
from typing import Any

from dockyard import API_VERSION, MIN_API_VERSION, __version__
from dockyard.config import DaemonConfig
from dockyard.engine.events import EventBus
from dockyard.engine.hostprobe import operating_system, probe_host
from dockyard.errors import Unavailable
from dockyard.oci.host import HostFacts

log = logging.getLogger("dockyard.engine")


class Engine:
    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.data_root = Path(config.data_root)
        self.exec_root = Path(config.exec_root)
        self.events = EventBus()
        self.host: HostFacts = HostFacts()
        self.images: Any = None
        self.containers: Any = None
        self.execs: Any = None
        self.runtimes: Any = None
        self.started_at = time.time()
        self._lock_fd: int | None = None
        self._options: Any = None
        self._reaper: asyncio.Task[None] | None = None
        self.runtime_versions: dict[str, str] = {}
        self._seccomp: dict[str, Any] | None = None
        self.emulation: Any = None
        self.userns: Any = None
        self.name = socket.gethostname()

    # ----- life cycle -------------------------------------------------
    def lock_data_root(self) -> None:
        self.data_root.mkdir(parents=True, exist_ok=True, mode=0o711)
        fd = os.open(self.data_root / "dockyard.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise Unavailable(
                f"another dockyard daemon (pid {other or '?'}) is already using the data root "
                f"{self.data_root}; stop it first or pass a different --data-root") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    async def start(self) -> None:
        self.lock_data_root()
        self.exec_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.host = await asyncio.to_thread(probe_host)
        from dockyard.engine.emulation import Emulation

        # binfmt_misc for foreign images (a daemon option; see emulation.py)
        self.emulation = Emulation(self.config.emulation, self.host.arch)
        await asyncio.to_thread(self.emulation.setup)
        if self.config.userns_remap:
            from dockyard.engine.userns import UsernsRemap

            # userns-remap: resolve (and for "default" create) the remap user
            self.userns = UsernsRemap(self.config.userns_remap, self.data_root)
            await self.userns.setup()
        from dockyard.images.service import ImageService

        self.images = ImageService(self.data_root, self._emit_image_event, self._containers_using)
        from dockyard.runtime.runtimes import prepare_runtimes

        busybox_task = asyncio.create_task(self.images.ensure_default_busybox())
        self.runtimes = await prepare_runtimes(str(self.exec_root), self.config.runtimes,
                                               self.config.default_runtime)
        await busybox_task
        from dockyard.runtime.runtimes import runtime_version

        for n, rt in self.runtimes.runtimes.items():
            try:
                self.runtime_versions[n] = await runtime_version(rt)
            except Exception:  # noqa: BLE001 - a version string is not worth failing for
                self.runtime_versions[n] = ""
        if not self.runtimes.runtimes:
            log.error("no OCI runtime can create containers here: %s", self.runtimes.unusable)
        self._options = self._build_engine_options()
        await self._start_containers()
        from dockyard.engine.reaper import reaper_loop

        self._reaper = asyncio.create_task(reaper_loop())

    async def _start_containers(self) -> None:
        from dockyard.engine.containers import ContainerManager
        from dockyard.engine.execs import ExecManager

        self.containers = ContainerManager(self)
        self.execs = ExecManager(self)
        await self.containers.open()

    async def shutdown(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        if self.containers is not None:
            await self.containers.shutdown()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # ----- facts the spec builder needs ------------------------------------
    def _build_engine_options(self) -> Any:
        from dockyard.oci.host import EngineOptions

        c = self.config
        ulimits = {}
        for name, v in (c.default_ulimits or {}).items():
            soft, hard = int(v.get("Soft", v.get("soft", 0))), int(v.get("Hard", v.get("hard", 0)))
            ceiling = self.host.rlimit_ceilings.get(name, -1)
            if ceiling >= 0 and hard > ceiling:
                log.warning("default-ulimits %s hard %d is above what this host grants (%d): "
                            "clamped", name, hard, ceiling)
                hard = ceiling
                soft = min(soft, hard)
            ulimits[name] = (soft, hard)
        names = frozenset(self.runtimes.runtimes) if self.runtimes else frozenset({"runc"})
        return EngineOptions(
            default_runtime=(self.runtimes.default if self.runtimes else None) or "runc",
            runtimes=names, cgroup_parent=c.cgroup_parent, init=c.init,
            no_new_privileges=c.no_new_privileges, default_ulimits=ulimits,
            userns_remap=bool(c.userns_remap), log_driver=c.log_driver,
            log_opts=dict(c.log_opts))

    def engine_options(self) -> Any:
        return self._options

    def seccomp_profile(self) -> dict[str, Any] | None:
        if self._seccomp is None:
            import json

            path = self.config.seccomp_profile or "/usr/share/containers/seccomp.json"
            try:
                self._seccomp = json.loads(Path(path).read_text())
            except (OSError, ValueError) as e:
                log.warning("no default seccomp profile (%s): containers run unfiltered", e)
                self._seccomp = {}
        return self._seccomp or None

    def init_path(self) -> str | None:
        import shutil

        if self.config.init_path:
            return self.config.init_path
        for name in ("catatonit", "tini-static", "tini", "docker-init"):
            p = shutil.which(name) or (f"/usr/libexec/podman/{name}"
                                       if os.path.exists(f"/usr/libexec/podman/{name}") else None)
            if p:
                return p
        return None

    def host_gateway_ips(self) -> list[str]:
        # No bridge network yet: host-gateway resolves to the host's loopback
        # only where the container shares the host's network; elsewhere the
        # first non-loopback address of the host.
        import socket as _s

        try:
            addrs = {ai[4][0] for ai in _s.getaddrinfo(_s.gethostname(), None, _s.AF_INET)}
        except OSError:
            addrs = set()
        addrs = {a for a in addrs if not a.startswith("127.")}
        return sorted(addrs)[:1]

    # ----- hooks shared by services --------------------------------------
    def _emit_image_event(self, action: str, actor_id: str, attributes: dict[str, str]) -> None:
        self.events.emit("image", action, actor_id, attributes)

    def _containers_using(self, image_id: str) -> list[tuple[str, bool]]:
        if self.containers is None:
            return []
        return self.containers.using_image(image_id)

    # ----- system --------------------------------------------------------
    def version(self) -> dict[str, Any]:
        kernel = platform.release()
        arch = self.host.arch
        comps = [{"Name": "Engine", "Version": __version__,
                  "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
                              "Arch": arch, "Os": "linux", "KernelVersion": kernel,
                              "GitCommit": "", "GoVersion": f"python{platform.python_version()}",
                              "BuildTime": "", "Experimental": "false"}}]
        for name, ver in self.runtime_versions.items():
            comps.append({"Name": name, "Version": ver, "Details": {"GitCommit": ""}})
        return {
            "Platform": {"Name": f"dockyard {__version__}"},
            "Components": comps,
            "Version": __version__, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "", "GoVersion": f"python{platform.python_version()}", "Os": "linux",
            "Arch": arch, "KernelVersion": kernel, "BuildTime": "",
        }

    def info(self) -> dict[str, Any]:
        h = self.host
        os_name, os_version = operating_system()
        counts = self.containers.counts() if self.containers is not None else {
            "Containers": 0, "ContainersRunning": 0, "ContainersPaused": 0,
            "ContainersStopped": 0}
        runtimes: dict[str, Any] = {}
        default_runtime = self.config.default_runtime or "runc"
        if self.runtimes is not None:
            runtimes = {n: {"path": rt.path, **({"runtimeArgs": list(rt.args)} if rt.args
                                                else {})}
                        for n, rt in self.runtimes.runtimes.items()}
            default_runtime = self.runtimes.default or ""
        images = len(self.images.list_records()) if self.images is not None and hasattr(
            self.images, "list_records") else 0
        sec = ["name=seccomp,profile=builtin"] if h.seccomp else []
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
        return {
            "ID": self._daemon_id(), **counts, "Images": images,
            "Driver": "overlay2",
            "DriverStatus": [["Backing Filesystem", _fs_type(self.data_root)],
                             ["Supports d_type", "true"], ["Using metacopy", "false"],
                             ["Native Overlay Diff", "true"], ["userxattr", "false"]],
            "DockerRootDir": str(self.data_root),
            "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "none"],
                        "Authorization": None,
                        "Log": ["json-file", "none"]},
            "MemoryLimit": h.memory_limit, "SwapLimit": h.swap_limit,
            "KernelMemory": h.kernel_memory, "KernelMemoryTCP": False,
            "CpuCfsPeriod": h.cpu_cfs_period, "CpuCfsQuota": h.cpu_cfs_quota,
            "CPUShares": h.cpu_shares, "CPUSet": h.cpuset, "PidsLimit": h.pids_limit,
            "IPv4Forwarding": _read("/proc/sys/net/ipv4/ip_forward").strip() == "1",
            "BridgeNfIptables": False, "BridgeNfIp6tables": False,
            "OomKillDisable": h.oom_kill_disable, "Debug": self.config.debug,
            "NFd": _count_fds(), "NGoroutines": len(asyncio.all_tasks()),
            "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime()),
            "LoggingDriver": self.config.log_driver,
            "CgroupDriver": "none" if False else "cgroupfs",
            "CgroupVersion": str(h.cgroup_version),
            "NEventsListener": self.events.listeners, "KernelVersion": h.kernel_version or platform.release(),
            "OperatingSystem": os_name, "OSVersion": os_version, "OSType": "linux",
            "Architecture": platform.machine(), "NCPU": h.ncpu, "MemTotal": h.mem_total,
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": None,
                               "AllowNondistributableArtifactsHostnames": None,
                               "InsecureRegistryCIDRs": ["127.0.0.0/8", "::1/128"],
                               "IndexConfigs": {}, "Mirrors": None},
            "GenericResources": None, "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
            "Name": self.name, "Labels": [], "ExperimentalBuild": False,
            "ServerVersion": __version__, "Runtimes": runtimes, "DefaultRuntime": default_runtime,
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                      "ControlAvailable": False, "Error": "", "RemoteManagers": None},
            "LiveRestoreEnabled": True, "Isolation": "",
            "InitBinary": "docker-init",
            "ContainerdCommit": {"ID": ""}, "RuncCommit": {"ID": ""}, "InitCommit": {"ID": ""},
            "SecurityOptions": sec, "DefaultAddressPools": [], "CDISpecDirs": ["/etc/cdi",
                                                                                "/var/run/cdi"],
            "Warnings": warnings,
        }

    def _daemon_id(self) -> str:
        p = self.data_root / "engine-id"
        try:
            return p.read_text().strip()
        except OSError:
            import uuid

            ident = str(uuid.uuid4())
            from dockyard.util.atomic import atomic_write

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
