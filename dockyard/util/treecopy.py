"""`cp -a` of a directory tree of any depth, with owners mapped on the way.

What userns-remap needs from a layer: an exact copy (every entry type,
overlay whiteouts and opaque directories, xattrs, hardlinks, modes with
set-id bits, times) whose owners are shifted into the remapped range.  GNU
cp gives up past PATH_MAX; this copies with `fstree.TreeWalk` on the source
and one `DirCursor` in step with it on the copy, so depth costs nothing.
Owners are set before modes (chown clears set-id bits) and a directory's
metadata after its entries (they change its mtime, a 0555 one would refuse
them).  Synchronous; callers run it in a thread.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

from dockyard.util.fstree import DIR, DIR_FLAGS, LEAF, POST, DirCursor, TreeWalk, open_regular

MapIds = Callable[[int, int], tuple[int, int]]
CHUNK = 1 << 20


def _same(uid: int, gid: int) -> tuple[int, int]:
    return uid, gid


def _xattrs(path: str | int) -> list[tuple[str, bytes]]:
    """(name, value) of every xattr of an fd, or of a path not followed."""
    follow = isinstance(path, int)
    try:
        names = os.listxattr(path, follow_symlinks=follow)
    except OSError:
        return []
    out = []
    for n in names:
        with contextlib.suppress(OSError):
            out.append((n, os.getxattr(path, n, follow_symlinks=follow)))
    return out


def _set_xattrs(target: str | int, attrs: list[tuple[str, bytes]]) -> None:
    follow = isinstance(target, int)
    for n, v in attrs:
        # a file system or type that cannot hold one: as cp -a, not fatal
        with contextlib.suppress(OSError):
            os.setxattr(target, n, v, follow_symlinks=follow)


def _copy_data(src: int, dst: int) -> None:
    try:
        while os.copy_file_range(src, dst, CHUNK):
            pass
        return
    except OSError:
        os.lseek(src, 0, os.SEEK_SET)
        os.lseek(dst, 0, os.SEEK_SET)
        os.ftruncate(dst, 0)
    while chunk := os.read(src, CHUNK):
        os.write(dst, chunk)


def _meta_fd(fd: int, st: os.stat_result, map_ids: MapIds,
             attrs: list[tuple[str, bytes]]) -> None:
    _set_xattrs(fd, attrs)
    os.fchown(fd, *map_ids(st.st_uid, st.st_gid))
    os.fchmod(fd, stat.S_IMODE(st.st_mode))
    os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))


class _Copier:
    """Copies leaves into where the cursor `dst` stands, remembering where
    each multiply linked file went so its other names become links."""

    def __init__(self, dst_root: int, dst: DirCursor, map_ids: MapIds,
                 attrs: Callable[[str | int], list[tuple[str, bytes]]] = _xattrs) -> None:
        self.dst_root = dst_root
        self.dst = dst
        self.map_ids = map_ids
        self.attrs = attrs
        self.links: dict[tuple[int, int], list[str]] = {}

    def leaf(self, sdir: int, name: str, st: os.stat_result, path: list[str]) -> None:
        ddir = self.dst.fd
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
            first = self.links.get((st.st_dev, st.st_ino))
            if first is not None:
                with DirCursor(self.dst_root, one_mount=False) as cur:
                    for comp in first[:-1]:
                        cur.down(comp)
                    os.link(first[-1], name, src_dir_fd=cur.fd, dst_dir_fd=ddir,
                            follow_symlinks=False)
                return
        fmt = stat.S_IFMT(st.st_mode)
        uid, gid = self.map_ids(st.st_uid, st.st_gid)
        src_path = f"/proc/self/fd/{sdir}/{name}"
        if fmt == stat.S_IFREG:
            sfd = open_regular(sdir, name, st)
            if sfd is None:
                return                  # changed under us: not copied
            try:
                dfd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                              | os.O_CLOEXEC, 0o600, dir_fd=ddir)
                try:
                    _copy_data(sfd, dfd)
                    _meta_fd(dfd, st, self.map_ids, self.attrs(sfd))
                finally:
                    os.close(dfd)
            finally:
                os.close(sfd)
        elif fmt == stat.S_IFLNK:
            os.symlink(os.readlink(name, dir_fd=sdir), name, dir_fd=ddir)
            _set_xattrs(f"/proc/self/fd/{ddir}/{name}", self.attrs(src_path))
            os.chown(name, uid, gid, dir_fd=ddir, follow_symlinks=False)
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=ddir,
                     follow_symlinks=False)
        else:                           # devices (whiteouts too), fifos, sockets
            os.mknod(name, fmt | 0o600, st.st_rdev, dir_fd=ddir)
            pfd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=ddir)
            try:
                _set_xattrs(f"/proc/self/fd/{pfd}", self.attrs(src_path))
                os.chown(name, uid, gid, dir_fd=ddir, follow_symlinks=False)
                os.chmod(f"/proc/self/fd/{pfd}", stat.S_IMODE(st.st_mode))
                os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=ddir,
                         follow_symlinks=False)
            finally:
                os.close(pfd)
        if st.st_nlink > 1:
            self.links[(st.st_dev, st.st_ino)] = [*path, name]


def copy_tree(src: str | Path, dst: str | Path, map_ids: MapIds | None = None) -> None:
    """Copy the directory `src` to `dst` (which must not exist yet), owners
    through `map_ids(uid, gid)`.  Mount points inside `src` are not entered."""
    sfd = os.open(src, DIR_FLAGS)
    try:
        os.mkdir(dst, 0o700)
        _copy_from_fd(sfd, dst, map_ids or _same)
    finally:
        os.close(sfd)


def copy_into(src_fd: int, dst: str | Path, map_ids: MapIds | None = None, *,
              from_layer: bool = False) -> None:
    """Copy what the directory `src_fd` holds into the existing directory
    `dst`, which then takes the source's owner, mode and times (a volume
    filled from an image keeps the image directory's ownership and mode).
    `from_layer`: the source is an image layer read as the image (its only
    layer): overlay whiteouts and overlay's own xattrs are not copied."""
    _copy_from_fd(src_fd, dst, map_ids or _same, from_layer)


def _plain_xattrs(path: str | int) -> list[tuple[str, bytes]]:
    return [(n, v) for n, v in _xattrs(path) if not n.startswith("trusted.overlay.")]


def _copy_from_fd(sfd: int, dst: str | Path, ids: MapIds, from_layer: bool = False) -> None:
    attrs = _plain_xattrs if from_layer else _xattrs
    dfd = os.open(dst, DIR_FLAGS)
    try:
        with DirCursor(dfd, one_mount=False) as cur:
            copier = _Copier(dfd, cur, ids, attrs)
            pending: list[tuple[os.stat_result, list[tuple[str, bytes]]]] = []
            walk = TreeWalk(sfd)
            for e in walk:
                if e.kind == DIR:
                    os.mkdir(e.name, 0o700, dir_fd=cur.fd)
                    cur.down(e.name)
                    pending.append((e.st, attrs(e.fd)))
                elif e.kind == POST:
                    st, dir_attrs = pending.pop()
                    _meta_fd(cur.fd, st, ids, dir_attrs)
                    cur.up()
                elif e.kind == LEAF:
                    if from_layer and stat.S_ISCHR(e.st.st_mode) and e.st.st_rdev == 0:
                        continue            # a whiteout: nothing in the image
                    copier.leaf(e.fd, e.name, e.st, walk.path)
        _meta_fd(dfd, os.fstat(sfd), ids, attrs(sfd))
    finally:
        os.close(dfd)
