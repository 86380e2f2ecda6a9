"""`ContainerMounts`: a container's volumes, binds and `--mount` tmpfs, from
its create request to the runtime spec of each start.

At create (dockerd's registerMountPoints and createContainerVolumesOS):
`plan` checks everything a create asks for before anything is made
(Docker's texts: specs, duplicate destinations, a `--mount` bind source
that does not exist, unknown drivers, bad volume names and options,
`--volumes-from` containers); `attach` then makes or finds the volumes,
holds them for the container, records its mount points and fills new
volumes from the image (copyup.py).  A create that fails after that
removes the volumes it made.

At each start (`prepare`): a volume with driver options is mounted, a
missing `-v` bind source directory is made (owned by the container's root),
each destination is resolved and made inside the root (targets.py), and
the mounts become `oci.mounts.MountSpec`s; `release` undoes the device
mounts when the run ends.  Volume events are dockerd's: `mount` at each
start, `unmount` when the run ends.

The mounts of a running container live in its own mount namespace, so a
daemon killed and restarted changes nothing for it; `restore` relearns
which runs hold which volumes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import posixpath
import secrets
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dockyard.engine.containers.record import Container
from dockyard.engine.containers.store import ContainerStore
from dockyard.engine.fs.views import VIEW_PREFIX, mount_view, unmount_view
from dockyard.engine.host.environment import HostEnv
from dockyard.engine.volumes.copyup import MapIds, copy_up, is_empty
from dockyard.engine.volumes.points import MountPoint, covers, points_of
from dockyard.engine.volumes.propagation import SharedSources, needed
from dockyard.engine.volumes.service import VolumeService, check_driver
from dockyard.engine.volumes.targets import make_target, resolve_target
from dockyard.errors import DockyardError, InvalidParameter, NotFound
from dockyard.images.service import ImageService
from dockyard.oci.mounts import MountSpec
from dockyard.oci.volumespec import (
    MountRequest,
    anonymous_destinations,
    bind_needs_slave,
    mode_is_rw,
    parse_requests,
    parse_volumes_from,
)
from dockyard.util.safetar import DIR_FLAGS
from dockyard.volumes.local import new_volume_name, validate_name, validate_options

log = logging.getLogger("dockyard.volumes")

# statvfs flag -> the mount option a bind in a user namespace must keep
_LOCKED = ((os.ST_RDONLY, "ro"), (os.ST_NODEV, "nodev"), (os.ST_NOEXEC, "noexec"),
           (os.ST_NOSUID, "nosuid"), (os.ST_NOATIME, "noatime"),
           (os.ST_NODIRATIME, "nodiratime"), (os.ST_RELATIME, "relatime"))
Item = MountPoint | MountRequest | str        # copied point, request, anonymous destination


@dataclass
class MountPlan:
    """What a create will mount, checked; `items` in dockerd's order."""

    items: list[Item] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    volume_driver: str = ""


def _depth(dest: str) -> int:
    return posixpath.normpath(dest).count("/")


def locked_flags(source: str) -> tuple[str, ...]:
    """moby UnprivilegedMountFlags: what the source's mount locks."""
    try:
        flags = os.statvfs(source).f_flag
    except OSError:
        return ()
    return tuple(word for bit, word in _LOCKED if flags & bit)


def make_source_dir(path: str, owner: tuple[int, int]) -> None:
    """mkdir -p of a `-v` bind source; only the directories made here get
    `owner`.  An existing non-directory is left for the runtime to bind."""
    missing: list[str] = []
    p = path
    while p not in ("/", "") and not os.path.lexists(p):
        missing.append(p)
        p = os.path.dirname(p)
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o755)
        except FileExistsError:
            continue
        except NotADirectoryError:
            return
        os.chown(d, *owner)
    if missing:
        log.info("made the missing bind source directory %s", path)


class ContainerMounts:
    def __init__(self, volumes: VolumeService, store: ContainerStore, host: HostEnv,
                 images: ImageService) -> None:
        self.volumes = volumes
        self.store = store
        self.host = host
        self.images = images
        self.shared = SharedSources(Path(host.config.exec_root))
        self._mounted: dict[str, set[str]] = {}      # container id -> volumes of its run

    # ------------------------------------------------------------ create
    def plan(self, config: dict[str, Any], hc: dict[str, Any]) -> MountPlan:
        plan = MountPlan(volume_driver=hc.get("VolumeDriver") or "")
        by_dest: dict[str, Item] = {}
        for spec in hc.get("VolumesFrom") or []:
            ref, mode = parse_volumes_from(spec)
            try:
                donor = self.store.get(ref)
            except NotFound as e:
                raise InvalidParameter(e.message) from None
            for p in points_of(donor.mounts):
                if p.is_volume:
                    self.volumes.get(p.name)
                p.rw = p.rw and mode_is_rw(mode)
                p.copy_data = False
                p.mode = ""
                by_dest[p.destination] = p
        data_root = str(self.host.data_root)
        for req in parse_requests(hc, os.path.exists):
            if req.type == "bind":
                if bind_needs_slave(req.source, data_root,
                                    req.propagation if req.explicit_propagation else ""):
                    req = replace(req, propagation="rslave")
                self._label_mode(req, plan)
            elif req.type == "volume":
                self._check_volume(req)
                self._label_mode(req, plan)
            by_dest[req.destination] = req
        plan.items = list(by_dest.values())
        anonymous = anonymous_destinations(config.get("Volumes"), list(by_dest),
                                           hc.get("Tmpfs"))
        if anonymous:
            check_driver(new_volume_name(), plan.volume_driver)
        plan.items += anonymous
        return plan

    def _label_mode(self, req: MountRequest, plan: MountPlan) -> None:
        if not {"z", "Z"} & set(req.mode.split(",")):
            return
        if self.host.facts.selinux:
            raise InvalidParameter(f"SELinux relabeling of mounts (:z, :Z) is not supported "
                                   f"by this engine: {req.source}")
        plan.warnings.append(f"SELinux is not enabled on this host: the relabel option "
                             f"of {req.source}:{req.destination}:{req.mode} has no effect")

    def _check_volume(self, req: MountRequest) -> None:
        check_driver(req.source or new_volume_name(), req.driver)
        if not req.source or self.volumes.find(req.source) is not None:
            return
        try:
            validate_name(req.source)
            validate_options(req.driver_opts)
        except InvalidParameter as e:
            raise InvalidParameter(f"create {req.source}: {e.message}") from None

    async def attach(self, c: Container, plan: MountPlan) -> list[str]:
        """Make or find the plan's volumes (held for `c` until `attached`),
        record the mount points in `c` and fill new volumes from the image.
        The names of the volumes made, for `undo`."""
        made: list[str] = []
        points: list[MountPoint] = []
        try:
            for item in plan.items:
                if isinstance(item, MountPoint):
                    if item.is_volume:
                        self.volumes.hold(item.name, c.id)
                    points.append(item)
                elif isinstance(item, MountRequest):
                    points.append(await self._point(c, item, made))
                else:
                    vol, _ = await self.volumes.ensure("", plan.volume_driver, {}, {},
                                                       ref=c.id)
                    made.append(vol.name)
                    points.append(MountPoint("volume", item, source=str(vol.path),
                                             name=vol.name, driver="local", copy_data=True))
            c.mounts = [p.to_record() for p in points]
            await self._copy_up(c, points)
        except BaseException:
            c.mounts = [p.to_record() for p in points]
            await self.undo(c, made)
            raise
        return made

    async def _point(self, c: Container, req: MountRequest, made: list[str]) -> MountPoint:
        if req.type == "volume":
            vol, created = await self.volumes.ensure(
                req.source, req.driver, req.driver_opts, req.labels, ref=c.id)
            if created:
                made.append(vol.name)
            return MountPoint("volume", req.destination, source=str(vol.path), name=vol.name,
                              driver="local", mode=req.mode or "z", rw=req.rw,
                              named=bool(req.source), copy_data=req.copy_data)
        if req.type == "tmpfs":
            return MountPoint("tmpfs", req.destination, mode=req.mode, rw=req.rw,
                              tmpfs_data=req.tmpfs_data)
        return MountPoint("bind", req.destination, source=req.source, mode=req.mode, rw=req.rw,
                          propagation=req.propagation,
                          explicit_propagation=req.explicit_propagation,
                          create_source=req.create_source,
                          non_recursive=req.non_recursive,
                          ro_non_recursive=req.ro_non_recursive,
                          ro_force_recursive=req.ro_force_recursive)

    def attached(self, c: Container) -> None:
        """The record is in the store: its mount points hold the volumes now."""
        self.volumes.release_hold([p.name for p in points_of(c.mounts) if p.is_volume], c.id)

    async def undo(self, c: Container, made: list[str]) -> None:
        self.volumes.release_hold([p.name for p in points_of(c.mounts) if p.is_volume], c.id)
        self.volumes.release_hold(made, c.id)
        for name in made:
            await self.volumes.remove_quietly(name)

    def _map_ids(self, c: Container) -> MapIds | None:
        remap = self.host.userns
        if remap is not None and remap.applies(c.host_config) and remap.mapping is not None:
            return remap.mapping.to_host
        return None

    async def _copy_up(self, c: Container, points: list[MountPoint]) -> None:
        todo = []
        for p in points:
            if not (p.is_volume and p.copy_data):
                continue
            vol = self.volumes.get(p.name)
            # a volume with driver options is mounted only while used (a
            # tmpfs would lose the copy at once): it is never filled
            if not vol.needs_mount and await asyncio.to_thread(is_empty, vol.path):
                todo.append((p, vol.path))
        if not todo:
            return
        d = self.store.dir(c)
        view = d / f"{VIEW_PREFIX}{secrets.token_hex(6)}"
        lowers = self.images.lower_dirs(c.image_id)
        map_ids = self._map_ids(c)

        def work() -> None:
            if len(lowers) == 1:
                # one layer (and a new container's empty upper): the layer's
                # own tree is the image, read without overlayfs in between
                for p, path in todo:
                    copy_up(Path(lowers[0]), p.destination, path, map_ids,
                            anonymous=not p.named, layer=True)
                return
            mount_view(view, lowers, d / "upper", None)
            try:
                for p, path in todo:
                    copy_up(view, p.destination, path, map_ids, anonymous=not p.named)
            finally:
                unmount_view(view)

        await asyncio.to_thread(work)

    # ------------------------------------------------------------ start
    async def prepare(self, c: Container, rootfs: Path) -> list[MountSpec]:
        """The container's mounts for this start, volumes mounted and
        destinations made in the root; undone if anything fails."""
        points = sorted(points_of(c.mounts), key=lambda p: _depth(p.destination))
        if not points:
            return []
        remap = self.host.userns
        remapped = remap is not None and remap.applies(c.host_config)
        owner = (remap.mapping.root_uid, remap.mapping.root_gid) \
            if remapped and remap is not None and remap.mapping is not None else (0, 0)
        specs: list[MountSpec] = []
        try:
            for p in points:
                specs.append(await self._spec(c, p, points, rootfs, owner, remapped))
        except BaseException:
            await self.release(c, quiet=True)
            raise
        return specs

    async def _spec(self, c: Container, p: MountPoint, points: list[MountPoint], rootfs: Path,
                    owner: tuple[int, int], remapped: bool) -> MountSpec:
        if p.type == "tmpfs":
            return MountSpec(destination=p.destination, source="tmpfs", type="tmpfs",
                             data=p.tmpfs_data)
        if p.is_volume:
            vol = self.volumes.get(p.name)
            await self.volumes.activate(vol, c.id)
            self._mounted.setdefault(c.id, set()).add(vol.name)
            self.volumes.events.emit("volume", "mount", vol.name, {
                "driver": "local", "container": c.id, "destination": p.destination,
                "read/write": "true" if p.rw else "false", "propagation": p.propagation})
            source = str(vol.path)
        else:
            source = p.source
            if p.create_source:
                await asyncio.to_thread(make_source_dir, source, owner)
            elif not await asyncio.to_thread(os.path.exists, source):
                raise InvalidParameter(f'invalid mount config for type "bind": bind source '
                                       f"path does not exist: {source}")
            propagation = await self._propagation(p, source)
        nested = any(o.destination != p.destination and o.type != "tmpfs"
                     and covers(o.destination, p.destination) for o in points)
        dest = p.destination
        if not nested:
            dest = await asyncio.to_thread(_place, rootfs, dest, source)
        flags = await asyncio.to_thread(locked_flags, source) if remapped else ()
        return MountSpec(destination=dest, source=source, type="bind", read_only=not p.rw,
                         propagation=propagation if p.type == "bind" else p.propagation,
                         non_recursive=p.non_recursive,
                         read_only_non_recursive=p.ro_non_recursive,
                         read_only_force_recursive=p.ro_force_recursive, locked_flags=flags)

    async def _propagation(self, p: MountPoint, source: str) -> str:
        """The propagation the spec gets: a bind asking for shared or slave
        gets a source that can carry it (propagation.py); the rslave dockerd
        gives binds of its data root falls back to rprivate where the
        source cannot carry it, as in dockerd."""
        if not needed(p.propagation):
            return p.propagation
        if p.explicit_propagation:
            await asyncio.to_thread(self.shared.ensure, source, p.propagation)
            return p.propagation
        if await asyncio.to_thread(self.shared.can_carry, source, p.propagation):
            return p.propagation
        return "rprivate"

    def _propagating_sources(self, skip: str = "") -> list[str]:
        return [p.source for c in self.store if c.state.running and c.id != skip
                for p in points_of(c.mounts)
                if p.type == "bind" and p.explicit_propagation and needed(p.propagation)]

    async def release(self, c: Container, quiet: bool = False) -> None:
        """The run ended: device volumes it mounted are let go, each volume
        it used gets its `unmount` event, and a shared mount point made for
        its binds goes when no other run needs it."""
        if any(p.type == "bind" and p.explicit_propagation and needed(p.propagation)
               for p in points_of(c.mounts)):
            await asyncio.to_thread(self.shared.release_unused,
                                    self._propagating_sources(skip=c.id))
        for name in sorted(self._mounted.pop(c.id, set())):
            vol = self.volumes.find(name)
            if vol is None:
                continue
            try:
                await self.volumes.deactivate(vol, c.id)
            except DockyardError as e:
                log.warning("volume %s: %s", name, e.message)
            if not quiet:
                self.volumes.events.emit("volume", "unmount", name,
                                         {"container": c.id, "driver": "local"})

    # ------------------------------------------------------------ removal
    async def forget(self, c: Container, remove_anonymous: bool) -> None:
        """After the container left the store: `docker rm -v` removes its
        anonymous volumes that no other container uses."""
        if not remove_anonymous:
            return
        for p in points_of(c.mounts):
            if p.is_volume and not p.named:
                await self.volumes.remove_quietly(p.name)

    # ------------------------------------------------------------ daemon start
    async def restore(self, containers: list[Container]) -> None:
        running: dict[str, list[str]] = {}
        for c in containers:
            if c.state.running:
                names = [p.name for p in points_of(c.mounts) if p.is_volume]
                running[c.id] = names
                if names:
                    self._mounted[c.id] = set(names)
        await self.volumes.restore(running)
        await asyncio.to_thread(self.shared.release_unused, self._propagating_sources())


def _place(rootfs: Path, dest: str, source: str) -> str:
    """The destination resolved in the root and made there (a directory, or
    a file for a file source); the path handed to the runtime."""
    root_fd = os.open(rootfs, DIR_FLAGS)
    try:
        comps = resolve_target(root_fd, dest)
        try:
            is_dir = stat.S_ISDIR(os.stat(source).st_mode)
        except OSError:
            is_dir = True
        try:
            make_target(root_fd, comps, is_dir)
        except OSError as e:
            log.info("mount target %s: %s (left to the runtime)", dest, e)
        return "/" + "/".join(comps)
    finally:
        os.close(root_fd)
