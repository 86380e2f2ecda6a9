"""The composition root: `Engine` builds the services, wires them, starts and
stops them.  It holds no Docker logic of its own.

Start order: lock the data root, probe the host, set up emulation and
userns-remap, open the image store (making the embedded busybox image if
needed) while the runtimes are probed (`start`); then load the container
records, reattach to what still runs and start what restart policies want
running (`restore_containers`).  `backends` is what the API layer is given.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from pathlib import Path

from dockyard.backend import Backends
from dockyard.config import DaemonConfig
from dockyard.engine.build.service import BuildService
from dockyard.engine.build.steps import EngineSteps
from dockyard.engine.container_backend import ContainerBackendService
from dockyard.engine.containers.attach import AttachWaiters, ContainerAttach
from dockyard.engine.containers.create import ContainerCreator
from dockyard.engine.containers.health import HealthMonitor
from dockyard.engine.containers.lifecycle import Lifecycle
from dockyard.engine.containers.monitor import ExitMonitor
from dockyard.engine.containers.operate import ContainerOperations
from dockyard.engine.containers.record import Container
from dockyard.engine.containers.removal import ContainerRemover
from dockyard.engine.containers.restart import RestartManager
from dockyard.engine.containers.runner import ContainerRunner
from dockyard.engine.containers.specbuild import SpecBuilder
from dockyard.engine.containers.stats import StatsService
from dockyard.engine.containers.store import ContainerStore
from dockyard.engine.containers.views import ContainerViews
from dockyard.engine.diskusage import DiskUsage
from dockyard.engine.events import EventBus
from dockyard.engine.exec.service import ExecService
from dockyard.engine.fs.service import ContainerFiles
from dockyard.engine.fs.views import unmount_stale_views
from dockyard.engine.host.emulation import Emulation
from dockyard.engine.host.environment import HostEnv
from dockyard.engine.host.probe import probe_host
from dockyard.engine.host.reaper import reaper_loop
from dockyard.engine.host.seccomp import select_seccomp
from dockyard.engine.host.userns import UsernsRemap
from dockyard.engine.images import ImageBackendService
from dockyard.engine.logs.service import LogService
from dockyard.engine.networks.endpoints import ContainerNetworking
from dockyard.engine.networks.plumbing import Plumbing
from dockyard.engine.networks.ports import PortHolder
from dockyard.engine.networks.service import NetworkService
from dockyard.engine.networks.store import HostNames, NetworkStore, default_bridge_subnet
from dockyard.engine.swarm.service import SwarmService
from dockyard.engine.system import SystemService, node_description
from dockyard.engine.volumes.mounts import ContainerMounts
from dockyard.engine.volumes.service import VolumeService
from dockyard.errors import Unavailable
from dockyard.images.distribution.hosts import DOCKER_CERTS_DIR
from dockyard.images.distribution.proxies import Proxies
from dockyard.images.distribution.service import Distribution, DistributionOptions
from dockyard.images.service import ImageService
from dockyard.network import links
from dockyard.network.firewall import Chains
from dockyard.network.ipam import DEFAULT_POOLS, parse_pools
from dockyard.network.netns import prepare_netns_dir
from dockyard.runtime.runtimes import (
    OCIRuntime,
    RuntimeVersion,
    prepare_runtimes,
    runtime_version,
)
from dockyard.volumes.local import LocalDriver

log = logging.getLogger("dockyard.engine")


async def _version_or_blank(rt: OCIRuntime) -> RuntimeVersion:
    try:
        return await runtime_version(rt)
    except Exception:  # noqa: BLE001 - a version string is not worth failing for
        return RuntimeVersion("", "")


class Engine:
    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.data_root = Path(config.data_root)
        self.exec_root = Path(config.exec_root)
        self.events = EventBus()
        self.store = ContainerStore(self.data_root, self.exec_root, self.events)
        self._lock_fd: int | None = None
        self._lifecycle: Lifecycle | None = None
        self._remover: ContainerRemover | None = None
        self._files: ContainerFiles | None = None
        self._networking: ContainerNetworking | None = None
        self._logs: LogService | None = None
        self._execs: ExecService | None = None
        self._mounts: ContainerMounts | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._backends: Backends | None = None
        self._distribution: Distribution | None = None
        self.build: BuildService | None = None
        self._host_names = HostNames.for_data_root(self.data_root)
        self._net_store = NetworkStore(self.data_root, self._host_names.default_bridge)

    @property
    def backends(self) -> Backends:
        if self._backends is None:
            raise Unavailable("the engine has not started")
        return self._backends

    # ----------------------------------------------------------- start
    def lock_data_root(self) -> None:
        self.data_root.mkdir(parents=True, exist_ok=True, mode=0o711)
        # others may pass (a remapped root must) but list nothing; what is
        # inside keeps itself private (images/ 0700, containers/ 0710)
        os.chmod(self.data_root, 0o711)
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
        os.chmod(self.exec_root, 0o700)
        facts = await asyncio.to_thread(probe_host)
        seccomp = select_seccomp(self.config.seccomp_profile, facts.seccomp)
        for warning in seccomp.warnings:
            log.warning("seccomp: %s", warning)
        log.info("seccomp: default profile %s: %s", seccomp.name, seccomp.origin)
        # binfmt_misc for foreign images (a daemon option; see host/emulation.py)
        emulation = Emulation(self.config.emulation, facts.arch)
        await asyncio.to_thread(emulation.setup)
        userns = None
        if self.config.userns_remap:
            # resolve (and for "default" create) the remap user
            userns = UsernsRemap(self.config.userns_remap, self.data_root)
            await userns.setup()
        images = ImageService(self.data_root, self._emit_image_event, self.store.using_image)
        busybox = asyncio.create_task(images.ensure_default_busybox())
        runtimes = await prepare_runtimes(str(self.exec_root), self.config.runtimes,
                                          self.config.default_runtime)
        names = list(runtimes.runtimes)     # asked all at once: a restart waits for them
        versions = dict(zip(names, await asyncio.gather(
            *(_version_or_blank(runtimes.runtimes[n]) for n in names))))
        await busybox
        if not runtimes.runtimes:
            log.error("no OCI runtime can create containers here: %s", runtimes.unusable)
        host = HostEnv(self.config, facts, runtimes, emulation, userns, versions, seccomp)
        distribution = Distribution(images, DistributionOptions(
            mirrors=list(self.config.registry_mirrors),
            insecure=list(self.config.insecure_registries),
            certs_dirs=[self._config_dir() / "certs.d", DOCKER_CERTS_DIR],
            max_downloads=self.config.max_concurrent_downloads,
            max_uploads=self.config.max_concurrent_uploads,
            proxies=Proxies.from_config(self.config.proxies, {})))
        self._distribution = distribution
        await self._open_networks()
        owner = (userns.mapping.root_uid, userns.mapping.root_gid) \
            if userns is not None and userns.mapping is not None else (0, 0)
        volumes = VolumeService(LocalDriver(self.data_root, owner), self.store, self.events)
        await volumes.load()
        self._wire(host, images, distribution, volumes)
        self._reaper = asyncio.create_task(reaper_loop())

    async def restore_containers(self) -> None:
        """After `start`: load the container records, reattach to what still
        runs and start what restart policies want running.  The API may
        already answer `_ping` meanwhile; every other request waits for this
        (cli.py), as dockerd answers none before its restore."""
        await self._open_containers()

    def _config_dir(self) -> Path:
        """Where the daemon's configuration lives (certs.d/ beside daemon.json)."""
        if self.config.config_file is not None:
            return Path(self.config.config_file).parent
        return Path("/etc/dockyard")

    async def _open_networks(self) -> None:
        pools = parse_pools(self.config.default_address_pools) or DEFAULT_POOLS
        self._net_store.load(lambda: default_bridge_subnet(self.config.bip, pools,
                                                             self._net_store))
        self._plumbing = Plumbing(self.exec_root / "dns",
                                  Chains(self._host_names.chain_prefix))
        if self.config.ip_forward:
            await asyncio.to_thread(links.enable_forwarding)
        self._pools = pools

    def _wire(self, host: HostEnv, images: ImageService, distribution: Distribution,
              volumes: VolumeService) -> None:
        store = self.store
        waiters = AttachWaiters()
        logs = LogService(store)
        networking = ContainerNetworking(self._net_store, store, self._plumbing, PortHolder())
        self._networking = networking
        mounts = ContainerMounts(volumes, store, host, images)
        self._mounts = mounts
        runner = ContainerRunner(store, host, images,
                                 SpecBuilder(store, host, images, networking, mounts))
        monitor = ExitMonitor(logs)
        restart = RestartManager(store)
        health = HealthMonitor(store, runner)
        remover = ContainerRemover(store, runner, restart, waiters, monitor, mounts)
        self._remover = remover
        lifecycle = Lifecycle(store, runner, monitor, restart, health, waiters, remover)
        stats = StatsService(store, host)
        execs = ExecService(store, runner, host, self.events)
        files = ContainerFiles(store, images, lifecycle, volumes)
        creator = ContainerCreator(store, images, host, networking, mounts)
        attach = ContainerAttach(store, waiters, logs)
        views = ContainerViews(store, images, self._net_store)
        containers = ContainerBackendService(
            creator=creator,
            views=views,
            lifecycle=lifecycle, remover=remover,
            attach=attach, logs=logs, stats=stats,
            operations=ContainerOperations(store, runner, stats, host),
            files=files)
        self._lifecycle, self._logs, self._execs, self._files = lifecycle, logs, execs, files
        networks = NetworkService(self._net_store, store, networking, self.events,
                                  self._pools, links.host_routes)
        image_backend = ImageBackendService(images, distribution)
        builder_root = self.data_root / "builder"
        build = BuildService(builder_root, EngineSteps(
            images, image_backend, store, creator, lifecycle, attach, builder_root / "layers"),
            self.events, store.using_image)
        build.start()
        self.build = build
        usage = DiskUsage(images, store, views, volumes, build.cache_usage)
        swarm = SwarmService(self.data_root, networks, lambda: node_description(host))
        swarm.load()
        self._backends = Backends(system=SystemService(host, store, images, self.events, usage,
                                                       swarm.info),
                                  images=image_backend, containers=containers,
                                  execs=execs, networks=networks, volumes=volumes, build=build,
                                  swarm=swarm)

    async def _open_containers(self) -> None:
        assert self._lifecycle is not None and self._remover is not None
        assert self._networking is not None and self._mounts is not None
        await asyncio.to_thread(prepare_netns_dir, self.store.netns_dir)
        loaded = await asyncio.to_thread(self.store.load_all)
        await asyncio.to_thread(self._unmount_stale_views, loaded)  # a crash's
        for c in loaded:
            if c.state.running and c.endpoints:
                self._networking.restore(c)     # addresses and ports it still holds
        await asyncio.to_thread(self._remover.sweep_orphans, self.store.orphans())
        await self._mounts.restore(loaded)      # the volumes running containers hold
        await self._lifecycle.restore_all()
        await self._networking.sync()
        if self._files is not None:
            await self._files.resume_interrupted_commits()

    def _unmount_stale_views(self, loaded: list[Container]) -> None:
        """In one worker thread for all the containers (blocking)."""
        for c in loaded:
            try:
                unmount_stale_views(self.store.dir(c))
            except OSError as e:
                log.warning("container %s: stale views: %s", c.id[:12], e)

    # ----------------------------------------------------------- stop
    async def shutdown(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        if self._execs is not None:
            await self._execs.close()
        if self._lifecycle is not None:
            self._lifecycle.shutdown()
        if self._logs is not None:
            await self._logs.flush_all()
        if self._networking is not None:
            await self._networking.settle()
        if self._distribution is not None:
            await self._distribution.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _emit_image_event(self, action: str, actor_id: str, attributes: dict[str, str]) -> None:
        self.events.emit("image", action, actor_id, attributes)
