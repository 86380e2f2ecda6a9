"""The spec's `mounts`: Docker's default mounts merged with the container's.

Rules (moby withMounts / withCommonOptions):
- defaults: /proc, /dev, /dev/pts, /sys (ro), /sys/fs/cgroup (ro),
  /dev/mqueue, /dev/shm (tmpfs, `size=<ShmSize>`; dropped with IpcMode none);
- a container mount on a destination replaces the default there, and one on
  /dev drops every default below /dev;
- container mounts (binds, volumes, tmpfs, /dev/shm of a shared IPC, the
  /etc/{resolv.conf,hostname,hosts} files) follow, sorted by path depth;
- ReadonlyRootfs adds `ro` to the defaults except /proc, /dev*, /dev/shm,
  /dev/mqueue; privileged makes /sys writable, and the cgroup mount is
  writable when privileged or with `writable-cgroups=true`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

from dockyard.errors import InvalidParameter
from dockyard.oci.sizes import tmpfs_mount_options

INIT_PATH_IN_CONTAINER = "/sbin/docker-init"
PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
_RO_EXEMPT = ("/proc", "/dev/pts", "/dev/shm", "/dev/mqueue", "/dev")


@dataclass(frozen=True)
class MountSpec:
    """A container mount resolved by the engine (Binds, Mounts, volumes).

    type "bind": `source` is the host path (a volume's data dir for volumes).
    type "tmpfs": `data` is the option string (`size=64m,mode=1777`), see
    sizes.tmpfs_data_from_mount for `Mounts` entries.
    """

    destination: str
    source: str = ""
    type: str = "bind"
    read_only: bool = False
    propagation: str = "rprivate"
    non_recursive: bool = False
    read_only_non_recursive: bool = False
    read_only_force_recursive: bool = False
    data: str = ""
    # flags the source's mount carries that a bind in a user namespace
    # must keep (nosuid, nodev, noexec, ro...), or the runtime's remount fails
    locked_flags: tuple[str, ...] = ()


def default_mounts() -> list[dict]:
    return [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["ro", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777"]},
    ]


def _clean(path: str) -> str:
    return posixpath.normpath(path) if path else path


def _depth(dest: str) -> int:
    """Docker sorts container mounts by path depth so parents mount first."""
    return _clean(dest).count("/")


def bind_options(m: MountSpec, rro_supported: bool) -> list[str]:
    """Docker's option list for a bind: rbind|bind, rro|ro, propagation."""
    opts = ["bind" if m.non_recursive else "rbind"]
    if m.read_only:
        rro = not m.read_only_non_recursive
        if m.read_only_non_recursive and m.read_only_force_recursive:
            raise InvalidParameter(
                "mount options conflict: ReadOnlyNonRecursive && ReadOnlyForceRecursive")
        if not rro_supported:
            if m.read_only_force_recursive:
                raise InvalidParameter(
                    "recursively read-only mounts are not supported by the runtime")
            rro = False
        opts.append("rro" if rro else "ro")
    if m.propagation:
        if m.propagation not in PROPAGATIONS:
            raise InvalidParameter(f"invalid propagation mode: {m.propagation}")
        opts.append(m.propagation)
    return [*opts, *(f for f in m.locked_flags if f not in opts)]


@dataclass(frozen=True)
class MountPlan:
    """Inputs that decide the mount list, gathered by spec.py."""

    container_mounts: Sequence[MountSpec]
    shm_size: int
    ipc_none: bool
    readonly_rootfs: bool
    privileged: bool
    writable_cgroups: bool
    rro_supported: bool
    init_source: str = ""          # host path of docker-init when Init applies


def build_mounts(plan: MountPlan) -> tuple[list[dict], str]:
    """(mounts, rootfsPropagation) for the spec; propagation "" = unset."""
    ordered = sorted(plan.container_mounts, key=lambda m: _depth(m.destination))
    user_dests = {_clean(m.destination) for m in ordered}
    mount_dev = "/dev" in user_dests

    base = default_mounts()
    if plan.init_source:
        base.append({"destination": INIT_PATH_IN_CONTAINER, "type": "bind",
                     "source": plan.init_source, "options": ["bind", "ro"]})
    out: list[dict] = []
    for d in base:
        dest = d["destination"]
        if dest in user_dests or (mount_dev and dest.startswith("/dev/")):
            continue
        if dest == "/dev/shm":
            if plan.ipc_none:
                continue
            d["options"].append(f"size={plan.shm_size}")
        out.append(d)
    n_defaults = len(out)

    rootfs_propagation = ""
    for m in ordered:
        if m.type == "tmpfs":
            out.append({"destination": m.destination, "type": "tmpfs", "source": "tmpfs",
                        "options": tmpfs_mount_options(m.data)})
            continue
        if m.propagation in ("shared", "rshared"):
            rootfs_propagation = "shared"
        elif m.propagation in ("slave", "rslave") and rootfs_propagation != "shared":
            rootfs_propagation = "rslave"
        out.append({"destination": m.destination, "type": "bind", "source": m.source,
                    "options": bind_options(m, plan.rro_supported)})

    if plan.readonly_rootfs:
        for d in out[:n_defaults]:
            if d["destination"] not in _RO_EXEMPT and "ro" not in d["options"]:
                d["options"].append("ro")
    for d in out[:n_defaults]:
        if (plan.privileged and d["destination"] == "/sys") or (
                plan.writable_cgroups and d["type"] == "cgroup"):
            d["options"] = [o for o in d["options"] if o != "ro"]
    return out, rootfs_propagation
