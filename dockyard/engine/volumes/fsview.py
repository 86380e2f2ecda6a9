"""A container's volumes and binds inside a filesystem view, for `docker cp`.

`docker cp` into or out of a path inside a volume or bind mount reaches the
volume's or the host directory's content, running container or not, as
under dockerd (which mounts the container's volumes for the copy; its
tmpfs mounts are not: their content lives in the container's mount
namespace only).  The view (fs/views.py) is made private first, so nothing
bound into it propagates anywhere, and every bind goes onto a target
opened without following symlinks, resolved inside the view's root; the
whole tree goes with the view's lazy unmount.  `docker export`, `diff`
and `commit` never see volumes: they use no such view.
"""

from __future__ import annotations

import logging
import os
import posixpath
import stat
from dataclasses import dataclass
from pathlib import Path

from dockyard.engine.volumes.points import MountPoint, covers, points_of
from dockyard.engine.volumes.service import VolumeService
from dockyard.engine.volumes.targets import make_target, resolve_target
from dockyard.errors import InvalidParameter
from dockyard.util.mount import MS_BIND, MS_PRIVATE, MS_RDONLY, MS_REC, MS_REMOUNT, mount
from dockyard.util.safetar import DIR_FLAGS, open_dir_at

log = logging.getLogger("dockyard.volumes")


@dataclass(frozen=True)
class ViewBind:
    destination: str
    source: str
    rw: bool


def view_binds(mounts: list[dict], volumes: VolumeService) -> list[ViewBind]:
    """The container's volumes and binds whose source is there, parents first."""
    out = []
    for p in sorted(points_of(mounts), key=lambda p: posixpath.normpath(p.destination)
                    .count("/")):
        if p.type == "tmpfs":
            continue
        if p.is_volume:
            vol = volumes.find(p.name)
            if vol is None:
                continue
            source = str(vol.path)
        else:
            source = p.source
        if os.path.exists(source):
            out.append(ViewBind(p.destination, source, p.rw))
    return out


def writable_at(mounts: list[dict], path: str) -> bool | None:
    """None when `path` is on no volume or bind; else whether that mount
    (the deepest holding it) is writable."""
    best: MountPoint | None = None
    for p in points_of(mounts):
        if p.type != "tmpfs" and covers(p.destination, path) and (
                best is None or len(p.destination) > len(best.destination)):
            best = p
    return None if best is None else best.rw


def check_writable(mounts: list[dict], path: str, readonly_rootfs: bool) -> None:
    """moby's checks before an upload: a read-only volume, or a read-only
    root outside any volume, is refused."""
    rw = writable_at(mounts, posixpath.normpath("/" + path.lstrip("/")))
    if rw is False:
        raise InvalidParameter("mounted volume is marked read-only")
    if rw is None and readonly_rootfs:
        raise InvalidParameter("container rootfs is marked read-only")


def make_targets(view_root: Path, binds: list[ViewBind]) -> None:
    """Create the mount targets missing in a writable view (in the
    container's upper layer, as dockerd creates them in its rootfs)."""
    root_fd = os.open(view_root, DIR_FLAGS)
    try:
        for b in binds:
            if any(o is not b and covers(o.destination, b.destination)
                   and o.destination != b.destination for o in binds):
                continue                # inside another mount: the source's business
            try:
                comps = resolve_target(root_fd, b.destination)
                make_target(root_fd, comps, os.path.isdir(b.source))
            except (InvalidParameter, OSError) as e:
                log.info("cp view: no mount target for %s: %s", b.destination, e)
    finally:
        os.close(root_fd)


def bind_into(view_root: Path, binds: list[ViewBind]) -> None:
    """Bind each source onto its target in the view (parents first)."""
    mount("", str(view_root), "", MS_PRIVATE | MS_REC)
    for b in binds:
        root_fd = os.open(view_root, DIR_FLAGS)
        try:
            comps = resolve_target(root_fd, b.destination)
            parent = open_dir_at(root_fd, comps[:-1], DIR_FLAGS)
        except (InvalidParameter, OSError) as e:
            log.info("cp view: %s is not mounted: %s", b.destination, e)
            continue
        finally:
            os.close(root_fd)
        try:
            target = os.open(comps[-1], os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        except OSError as e:
            log.info("cp view: %s has no mount target: %s", b.destination, e)
            os.close(parent)
            continue
        try:
            if stat.S_ISLNK(os.fstat(target).st_mode):
                continue
            mount(b.source, f"/proc/self/fd/{target}", None, MS_BIND | MS_REC)
            _seal(parent, comps[-1], b.rw)
        finally:
            os.close(target)
            os.close(parent)


def _seal(parent: int, name: str, rw: bool) -> None:
    """Make the bind just made on `name` private (its source may be a
    shared mount, whose peers the view's unmount must not reach) and
    read-only when asked.  The bind is reached through a new lookup from
    its parent's fd (which crosses onto it), never through a path the
    container could have changed."""
    top = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    try:
        if stat.S_ISLNK(os.fstat(top).st_mode):
            return
        where = f"/proc/self/fd/{top}"
        mount("", where, "", MS_PRIVATE | MS_REC)
        if not rw:
            mount("", where, "", MS_BIND | MS_REMOUNT | MS_RDONLY)
    finally:
        os.close(top)
