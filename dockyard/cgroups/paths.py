"""Where a container's cgroup lives on disk.

The engine gives every container an absolute `cgroupsPath` (`/dockyard/<id>`):
a relative one would be placed under the runtime's own cgroup.  On v1 that
path exists once per hierarchy; on v2 it is one directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from dockyard.cgroups.detect import CgroupInfo
from dockyard.cgroups.parse import UNIFIED, parse_proc_cgroup


def _dir_in_mount(mount_point: str, mount_root: str, cgroup_path: str) -> str:
    # A mount whose root is not "/" (a container's view without a cgroup
    # namespace) shows only part of the hierarchy; strip that part.
    path = "/" + cgroup_path.strip("/")
    root = "/" + mount_root.strip("/")
    if root != "/" and (path == root or path.startswith(root + "/")):
        path = path[len(root):] or "/"
    return os.path.normpath(os.path.join(mount_point, path.lstrip("/")))


@dataclass(frozen=True)
class ContainerCgroup:
    """A container's cgroup directories: per controller on v1, one on v2."""

    version: int
    dirs: dict[str, str] = field(default_factory=dict)

    def dir(self, controller: str) -> str | None:
        """The directory holding `controller`'s files (any controller on v2)."""
        if self.version == 2:
            return self.dirs.get(UNIFIED)
        return self.dirs.get(controller)


def container_cgroup_dirs(info: CgroupInfo, cgroups_path: str) -> dict[str, str]:
    """{controller: dir} for each mounted v1 controller, or {"": dir} on v2."""
    if info.version == 2:
        return {UNIFIED: container_cgroup_dir(info, cgroups_path)}
    return {
        ctrl: _dir_in_mount(m.mount_point, m.root, cgroups_path)
        for ctrl, m in info.v1_mounts.items()
    }


def container_cgroup_dir(info: CgroupInfo, cgroups_path: str) -> str:
    """The single v2 directory for `cgroups_path` (ValueError on v1 hosts)."""
    if info.version != 2:
        raise ValueError("a v1 host has one directory per controller")
    return _dir_in_mount(info.root, "/", cgroups_path)


def locate_container_cgroup(info: CgroupInfo, cgroups_path: str) -> ContainerCgroup:
    return ContainerCgroup(info.version, container_cgroup_dirs(info, cgroups_path))


def process_cgroup(info: CgroupInfo, proc_cgroup_text: str) -> ContainerCgroup:
    """The cgroup dirs of a process, from its /proc/<pid>/cgroup text.

    Useful when only the container's pid is known (or to check that the
    runtime put it where the engine asked).
    """
    paths = parse_proc_cgroup(proc_cgroup_text)
    if info.version == 2:
        p = paths.get(UNIFIED)
        return ContainerCgroup(2, {UNIFIED: _dir_in_mount(info.root, "/", p)} if p else {})
    dirs = {
        ctrl: _dir_in_mount(m.mount_point, m.root, paths[ctrl])
        for ctrl, m in info.v1_mounts.items()
        if ctrl in paths
    }
    return ContainerCgroup(1, dirs)


def read_process_cgroup(info: CgroupInfo, pid: int | str = "self") -> ContainerCgroup:
    """`process_cgroup` for a live pid; empty dirs if the process is gone."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            text = f.read()
    except OSError:
        return ContainerCgroup(info.version, {})
    return process_cgroup(info, text)
