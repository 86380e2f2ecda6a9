"""Docker's init layer: the few paths every container's root has.

dockerd puts a small layer between the image and the container's own
writable layer (daemon/initlayer): the mount targets of the files the engine
provides (/etc/hosts, /etc/hostname, /etc/resolv.conf), /.dockerenv,
/dev/console, /dev/pts, /dev/shm, /proc, /sys as empty 0755 files and
directories, and /etc/mtab as a link to /proc/mounts.  It is why
`docker export` of any container, even one never started, lists them, why
`/etc/mtab` exists in a container whose image has none, and why the runtime
finds its mount targets already there instead of leaving them in the
container's writable layer.  dockyard keeps the same layer as a directory
beside the container's upper dir and mounts it as the top lower layer.

Making it is idempotent (a crash half way is completed next time) and only
done while no overlay of the container is mounted, as changing a lower
layer under a mounted overlay is not allowed.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

INIT_DIR = "init"
DIR, FILE = "dir", "file"
# path -> "dir", "file" or a symlink target (moby's initlayer.Setup table)
INIT_ENTRIES: tuple[tuple[str, str], ...] = (
    ("dev/pts", DIR),
    ("dev/shm", DIR),
    ("proc", DIR),
    ("sys", DIR),
    (".dockerenv", FILE),
    ("etc/resolv.conf", FILE),
    ("etc/hosts", FILE),
    ("etc/hostname", FILE),
    ("dev/console", FILE),
    ("etc/mtab", "/proc/mounts"),
)


def _mkdir(path: Path, uid: int, gid: int) -> None:
    try:
        os.mkdir(path, 0o755)
        os.chmod(path, 0o755)       # whatever the daemon's umask
    except FileExistsError:
        pass
    os.lchown(path, uid, gid)       # also one made for another owner before


def ensure_init_layer(path: Path, uid: int = 0, gid: int = 0) -> Path:
    """Make (or complete) the init layer at `path`, owned by uid:gid (the
    container's root on the host); returns `path`."""
    _mkdir(path, uid, gid)
    for rel, kind in INIT_ENTRIES:
        target = path / rel
        for parent in reversed(target.relative_to(path).parents[:-1]):
            _mkdir(path / parent, uid, gid)
        if kind == DIR:
            _mkdir(target, uid, gid)
            continue
        if os.path.lexists(target):
            os.lchown(target, uid, gid)
            continue
        if kind == FILE:
            with contextlib.suppress(FileExistsError):
                fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC
                             | os.O_NOFOLLOW, 0o755)
                try:
                    os.fchmod(fd, 0o755)
                    os.fchown(fd, uid, gid)
                finally:
                    os.close(fd)
        else:
            with contextlib.suppress(FileExistsError):
                os.symlink(kind, target)
                os.lchown(target, uid, gid)
    return path


def init_lower(container_dir: Path, create: bool = False) -> list[str]:
    """The init layer as overlay lower dirs.  A container made before
    dockyard kept one has none until its next start, or until a read of its
    filesystem (`create`, owned by root) makes it."""
    path = container_dir / INIT_DIR
    if path.is_dir():
        return [str(path)]
    if create:
        return [str(ensure_init_layer(path))]
    return []
