"""`SpecBuilder`: the I/O half of building a container's OCI spec at start.

Mount the rootfs, write the /etc files, make the network namespace, read
the container's passwd/group, stat devices, then hand everything to the
pure `oci.spec.build_runtime_spec` and write the bundle's config.json.
What start mounted on the host besides the rootfs (a shareable /dev/shm)
is undone by `release_host_mounts`.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path
from typing import Any

from dockyard.engine.containers.initlayer import INIT_DIR, ensure_init_layer
from dockyard.engine.containers.record import Container
from dockyard.engine.containers.store import ContainerStore
from dockyard.engine.host.environment import HostEnv
from dockyard.engine.networks import legacy_links
from dockyard.engine.networks.endpoints import ContainerNetworking
from dockyard.engine.volumes.mounts import ContainerMounts
from dockyard.errors import Conflict, InvalidParameter, NotFound
from dockyard.images.service import ImageService
from dockyard.network.netns import create_netns
from dockyard.oci import etcfiles
from dockyard.oci import spec as ocispec
from dockyard.oci.mounts import MountSpec
from dockyard.oci.spec import DeviceNode
from dockyard.util.atomic import atomic_write
from dockyard.util.mount import (
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    is_mountpoint,
    mount,
    mount_overlay,
    umount,
)

# ---------------------------------------------------------------- start

class SpecBuilder:
    def __init__(self, store: ContainerStore, host: HostEnv, images: ImageService,
                 networking: ContainerNetworking, mounts: ContainerMounts) -> None:
        self.store = store
        self.host = host
        self.images = images
        self.networking = networking
        self.mounts = mounts

    async def prepare(self, c: Container) -> None:
        """Mount the rootfs and write the bundle's config.json for a start."""
        d = self.store.dir(c)
        rootfs = self.store.rootfs(c)
        lower = self.images.lower_dirs(c.image_id)
        # -- userns-remap (host/userns.py): layers with shifted ids, owned dirs
        remap = self.host.userns
        remap = remap if remap is not None and remap.applies(c.host_config) else None
        if remap is not None:
            lower = await remap.prepare_layers(lower, d)
        # --
        if not is_mountpoint(str(rootfs)):
            owner = remap.mapping if remap is not None else None
            init = await asyncio.to_thread(
                ensure_init_layer, d / INIT_DIR, *((owner.root_uid, owner.root_gid)
                                                   if owner is not None else (0, 0)))
            lower = [str(init), *lower]
        await asyncio.to_thread(_mount_rootfs, lower, d, rootfs)
        hc = c.host_config
        net_mode = hc.get("NetworkMode") or "bridge"
        netns = None
        if net_mode not in ("host",) and not net_mode.startswith("container:"):
            netns = self.store.netns_path(c)
            if not netns.exists() or not is_mountpoint(str(netns)):
                await create_netns(netns)
        passwd, group = await asyncio.to_thread(_read_user_db, rootfs)
        resolv = await asyncio.to_thread(self._resolv_conf, c)
        endpoints = []
        if netns is not None:
            # the container's interfaces are there before its process starts
            endpoints = await self.networking.start(c, str(netns),
                                                    list(resolv.external_nameservers))
        # legacy links (hosts lines, variables) on the default bridge only; on
        # a user-defined network a link is a name its name server answers
        links = legacy_links.resolve(self.store, c, endpoints[0].network_name) \
            if endpoints and endpoints[0].network_name == "bridge" \
            and legacy_links.wanted(c, endpoints[0].network_name) else []
        etc_dir = d
        if net_mode.startswith("container:"):
            # As dockerd's initializeNetworking: the container takes the donor's
            # name and its hostname/hosts/resolv.conf files, since it lives in
            # the donor's network.
            donor = self.store.get(net_mode.split(":", 1)[1])
            c.config["Hostname"] = donor.config.get("Hostname") or donor.id[:12]
            c.config["Domainname"] = donor.config.get("Domainname") or ""
            etc_dir = self.store.dir(donor)
        else:
            extra = legacy_links.hosts_entries(links, endpoints[0].network_name) \
                if links else []
            await asyncio.to_thread(self._write_etc_files, c, d,
                                    [e.ip for e in endpoints if e.ip], resolv.text, extra)
        ns_paths = self._joined_namespaces(c)
        await asyncio.to_thread(self._check_rt_budget, c)
        shm_path = await asyncio.to_thread(self._prepare_shm, c)
        devices = await asyncio.to_thread(_resolve_devices, hc)

        if netns is not None:
            ns_paths["network"] = str(netns)
        # -- userns-remap (host/userns.py): mappings, owned /etc files
        uid_maps: list[Any] = []
        gid_maps: list[Any] = []
        if remap is not None:
            await asyncio.to_thread(remap.own_files,
                                    [d / "hostname", d / "hosts", d / "resolv.conf"])
            uid_maps, gid_maps = remap.spec_maps()
            joined = remap.joined_user_ns(self._joined_namespaces(c))
            if joined:
                ns_paths["user"] = joined
        # --
        host_devices = await asyncio.to_thread(_host_devices) if hc.get("Privileged") else []
        volume_mounts = await self.mounts.prepare(c, rootfs)
        inp = ocispec.SpecInput(
            container_id=c.id,
            config=c.config,
            host_config=hc,
            host=self.host.facts,
            opts=self.host.options,
            rootfs=str(rootfs),
            passwd=passwd,
            group=group,
            hostname_path=str(etc_dir / "hostname"),
            hosts_path=str(etc_dir / "hosts"),
            resolv_conf_path=str(etc_dir / "resolv.conf"),
            namespace_paths=ns_paths,
            devices=devices[0],
            host_devices=host_devices,
            blkio_devices=devices[1],
            shm_path=shm_path,
            seccomp_profile=self.host.seccomp_profile(),
            builtin_seccomp_profile=self.host.builtin_seccomp_profile(),
            init_path=self.host.init_path() or "",
            mounts=[_dockerenv_mount(d), *volume_mounts],
            cgroups_path=self.host.cgroups_path(c.id, c.host_config),
            uid_mappings=uid_maps,
            gid_mappings=gid_maps,
        )
        spec = ocispec.build_runtime_spec(inp)
        if links:
            # the link variables, under what the container's own Env sets
            env = spec["process"]["env"]
            own = {e.split("=", 1)[0] for e in env}
            env[:0] = [e for e in legacy_links.environment(
                links, endpoints[0].network_name, c) if e.split("=", 1)[0] not in own]
        if remap is not None and netns is not None:
            await remap.apply_net_sysctls(spec, str(netns))   # userns-remap, see userns.py
        bundle = self.store.bundle(c)
        bundle.mkdir(parents=True, exist_ok=True, mode=0o700)
        workdir = c.config.get("WorkingDir") or ""
        if workdir:
            await asyncio.to_thread(_ensure_workdir, rootfs, workdir, spec)
        await asyncio.to_thread(atomic_write, bundle / "config.json",
                                json.dumps(spec).encode(), 0o600)

    def _check_rt_budget(self, c: Container) -> None:
        """A real-time runtime needs a budget in every ancestor cgroup (v1
        RT group scheduling).  dockerd hands the parent its --cpu-rt-runtime;
        without one the runtime fails with a bare EINVAL, so say why first."""
        want = c.host_config.get("CpuRealtimeRuntime") or 0
        if want <= 0 or self.host.facts.cgroup_version != 1:
            return
        parent = os.path.dirname(self.host.cgroups_path(c.id, c.host_config)).strip("/")
        budget_file = Path("/sys/fs/cgroup/cpu") / parent / "cpu.rt_runtime_us"
        try:
            budget = int(budget_file.read_text())
        except (OSError, ValueError):
            budget = 0  # the runtime would create the parent with no RT budget
        if budget < want:
            raise InvalidParameter(
                f"cpu real-time runtime {want}us is more than the cgroup parent /{parent} grants "
                f"({budget}us in {budget_file}); give the parent a real-time budget first")

    def shm_dir(self, c: Container) -> Path:
        """Where a shareable IPC container's /dev/shm lives on the host."""
        return self.store.dir(c) / "mounts" / "shm"

    def _prepare_shm(self, c: Container) -> str:
        """The host directory bound at /dev/shm, or "" for the spec's own tmpfs.

        A private /dev/shm is a tmpfs the runtime mounts.  Sharing needs one
        that outlives any single mount namespace: `shareable` gets a tmpfs on
        the host (as dockerd's setupIpcDirs), `container:` binds the donor's,
        `host` binds the host's /dev/shm.
        """
        hc = c.host_config
        mode = hc.get("IpcMode") or "private"
        if mode == "host":
            return "/dev/shm"
        if mode == "shareable":
            d = self.shm_dir(c)
            if not is_mountpoint(str(d)):
                d.mkdir(parents=True, exist_ok=True, mode=0o700)
                size = hc.get("ShmSize") or self.host.options.default_shm_size
                mount("shm", str(d), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      f"mode=1777,size={size}")
            return str(d)
        ref = mode.split(":", 1)[1] if mode.startswith("container:") else None
        if ref is None:
            return ""
        donor = self.store.get(ref)
        donor_mode = donor.host_config.get("IpcMode") or "private"
        if donor_mode == "host":
            return "/dev/shm"
        d = self.shm_dir(donor)
        if not is_mountpoint(str(d)):
            raise InvalidParameter(f"container {ref}: non-shareable IPC (hint: use "
                                   "IpcMode:shareable for the donor container)")
        return str(d)

    def release_host_mounts(self, c: Container) -> None:
        """Undo what start mounted on the host besides the rootfs (the shareable
        /dev/shm); called when the container stops, fails to start or is removed."""
        d = self.shm_dir(c)
        umount(str(d))
        try:
            d.rmdir()
        except OSError:
            pass

    def _resolv_conf(self, c: Container) -> etcfiles.ResolvResult:
        hc = c.host_config
        try:
            host_resolv: str | None = Path("/etc/resolv.conf").read_text()
        except OSError:
            host_resolv = None
        cfg = self.host.config
        return etcfiles.resolv_conf(host_resolv, hc.get("Dns") or cfg.dns,
                                    hc.get("DnsSearch") or cfg.dns_search,
                                    hc.get("DnsOptions") or cfg.dns_opts,
                                    host_network=(hc.get("NetworkMode") or "") == "host",
                                    internal_resolver=self.networking.resolver(c))

    def host_gateway_ips(self) -> list[str]:
        if self.host.config.host_gateway_ip:
            return [self.host.config.host_gateway_ip]
        return self.networking.host_gateway()

    def _write_etc_files(self, c: Container, d: Path, addresses: list[str],
                         resolv_text: str, link_hosts: list[str]) -> None:
        hc = c.host_config
        hostname = c.config.get("Hostname") or c.id[:12]
        net_mode = hc.get("NetworkMode") or "bridge"
        if net_mode == "host":
            hostname = os.uname().nodename
        atomic_write(d / "hostname", etcfiles.hostname_file(hostname).encode())
        if net_mode == "host":
            host_hosts = Path("/etc/hosts").read_text() if Path("/etc/hosts").exists() else ""
            hosts = etcfiles.host_network_hosts_file(host_hosts, hc.get("ExtraHosts") or [],
                                                     self.host_gateway_ips())
        else:
            hosts = etcfiles.hosts_file(hostname, c.config.get("Domainname") or "", addresses,
                                        [*link_hosts, *(hc.get("ExtraHosts") or [])],
                                        self.host_gateway_ips())
        atomic_write(d / "hosts", hosts.encode())
        atomic_write(d / "resolv.conf", resolv_text.encode())

    def _joined_namespaces(self, c: Container) -> dict[str, str]:
        """`container:<id>` modes join another running container's namespaces."""
        out: dict[str, str] = {}
        hc = c.host_config
        for key, ns in (("PidMode", "pid"), ("IpcMode", "ipc"), ("NetworkMode", "network")):
            mode = hc.get(key) or ""
            if not mode.startswith("container:"):
                continue
            ref = mode.split(":", 1)[1]
            try:
                other = self.store.get(ref)
            except NotFound:
                raise NotFound(f"No such container: {ref}") from None
            if not other.state.running or not other.state.pid:
                raise Conflict(f"cannot join {ns} namespace of a non running container: "
                               f"container {other.id} is not running")
            name = {"network": "net"}.get(ns, ns)
            out[ns] = f"/proc/{other.state.pid}/ns/{name}"
        return out


def _dockerenv_mount(d: Path) -> Any:
    """`/.dockerenv`: tools detect a Docker container by this empty file."""
    marker = d / "dockerenv"
    if not marker.exists():
        marker.touch(mode=0o755)
    return MountSpec(destination="/.dockerenv", source=str(marker), read_only=True)


def _mount_rootfs(lower: list[str], d: Path, rootfs: Path) -> None:
    if is_mountpoint(str(rootfs)):
        return
    rootfs.mkdir(exist_ok=True)
    mount_overlay(lower, str(d / "upper"), str(d / "work"), str(rootfs))


def _read_user_db(rootfs: Path) -> tuple[str | None, str | None]:
    def rd(p: str) -> str | None:
        path = _resolve_in_root(rootfs, p)
        try:
            return path.read_text(errors="replace") if path else None
        except OSError:
            return None

    return rd("/etc/passwd"), rd("/etc/group")


def _resolve_in_root(root: Path, path: str) -> Path | None:
    """Follow symlinks inside the container root, never out of it."""
    parts = [p for p in path.split("/") if p]
    cur = root
    depth = 0
    i = 0
    while i < len(parts):
        p = parts[i]
        i += 1
        if p == "..":
            cur = cur.parent if cur != root else root
            continue
        nxt = cur / p
        if nxt.is_symlink():
            depth += 1
            if depth > 40:
                return None
            target = os.readlink(nxt)
            rest = [x for x in target.split("/") if x]
            if target.startswith("/"):
                cur = root
            parts = rest + parts[i:]
            i = 0
            continue
        cur = nxt
    return cur


def _stat_device(path: str) -> os.stat_result:
    try:
        return os.stat(path)
    except OSError as e:
        raise InvalidParameter(f"error gathering device information while adding custom "
                               f"device \"{path}\": {(e.strerror or str(e)).lower()}") from None


def _resolve_devices(hc: dict[str, Any]) -> tuple[list[Any], dict[str, tuple[int, int]]]:
    """stat() every device the request names: Devices, and blkio throttles."""
    nodes: list[Any] = []
    for dev in hc.get("Devices") or []:
        src = dev.get("PathOnHost", "")
        st = _stat_device(src)
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            kind = "c" if stat.S_ISCHR(st.st_mode) else "b"
        else:
            raise InvalidParameter(f"error gathering device information while adding custom "
                                   f"device \"{src}\": not a device node")
        nodes.append(DeviceNode(path=dev.get("PathInContainer") or src, type=kind,
                                major=os.major(st.st_rdev), minor=os.minor(st.st_rdev),
                                file_mode=stat.S_IMODE(st.st_mode), uid=st.st_uid,
                                gid=st.st_gid,
                                permissions=dev.get("CgroupPermissions") or "rwm"))
    blkio: dict[str, tuple[int, int]] = {}
    for key in ("BlkioWeightDevice", "BlkioDeviceReadBps", "BlkioDeviceWriteBps",
                "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps"):
        for item in hc.get(key) or []:
            p = item.get("Path", "")
            if p in blkio:
                continue
            st = _stat_device(p)
            if not stat.S_ISBLK(st.st_mode):
                raise InvalidParameter(f"{p} is not a block device")
            blkio[p] = (os.major(st.st_rdev), os.minor(st.st_rdev))
    return nodes, blkio


_SKIP_DEV = ("/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/fd", "/dev/console", "/dev/.lxc",
             "/dev/.udev", "/dev/core")


def _host_devices() -> list[Any]:
    """Every device node of the host, for privileged containers."""
    out: list[Any] = []
    for root, dirs, files in os.walk("/dev"):
        dirs[:] = [x for x in dirs if os.path.join(root, x) not in _SKIP_DEV]
        for f in files:
            p = os.path.join(root, f)
            if p in _SKIP_DEV:
                continue
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                out.append(DeviceNode(path=p, type="c" if stat.S_ISCHR(st.st_mode) else "b",
                                      major=os.major(st.st_rdev), minor=os.minor(st.st_rdev),
                                      file_mode=stat.S_IMODE(st.st_mode), uid=st.st_uid,
                                      gid=st.st_gid))
    return out


def _ensure_workdir(rootfs: Path, workdir: str, spec: dict[str, Any]) -> None:
    target = _resolve_in_root(rootfs, workdir)
    if target is None:
        return
    if target.exists() and not target.is_dir():
        raise InvalidParameter(f"Cannot mkdir: {workdir} is not a directory")
    if not target.exists():
        user = spec.get("process", {}).get("user", {})
        target.mkdir(parents=True, mode=0o755)
        os.chown(target, user.get("uid", 0), user.get("gid", 0))
