"""Extracting a tar under a directory without ever writing outside it.

The one extraction core behind image layers (`images/layers.py`: AUFS
whiteouts, opaque directories) and `docker cp` uploads
(`engine/fsops_tar.py`: noOverwriteDirNonDir, copyUIDGID, symlinks evaluated
inside the container root).  A subclass turns each member name into
components below the root fd and calls `place`; everything that touches the
filesystem goes through here:

* parents are opened one component at a time from the root fd with
  O_NOFOLLOW (`open_dir_at`), so neither a symlink planted earlier in the tar
  nor one swapped in by a racing process leads outside the root;
* an entry already there is removed first (a directory is kept for a
  directory entry), and the new one is created with O_EXCL / mkdir / symlink,
  never through what was there;
* metadata goes through an fd of the entry created where the type allows;
  directories get theirs at the end, children before parents, since adding
  children changes a directory's mtime and a 0555 directory would refuse
  them;
* the tree may be deeper than PATH_MAX: the last parent opened is kept, so
  a tar in the usual order (parents before children) costs a few opens per
  member however deep it goes, the metadata pass walks with one cursor,
  and removal is `fstree.remove_at` (iterative, never following symlinks).

Runs synchronously; callers put it in a thread.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import tarfile
from collections.abc import Callable, Iterable
from typing import Self

from dockyard.util.cancel import CancelToken, check
from dockyard.util.fstree import DirCursor, TreeChanged, remove_at
from dockyard.util.tarfeed import TarFeed

CHUNK = 1 << 20
XATTR_PAX_PREFIX = "SCHILY.xattr."
OVERLAY_XATTR_PREFIX = "trusted.overlay."
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def open_dir_at(dir_fd: int, comps: Iterable[str], flags: int = DIR_FLAGS,
                mkdir: Callable[[int, str], None] | None = None) -> int:
    """A new fd for dir_fd/comps, opened a component at a time with `flags`
    (which carry O_NOFOLLOW: a symlink on the way fails with ELOOP or
    ENOTDIR).  A missing component is made by `mkdir(parent_fd, name)` when
    given, else FileNotFoundError."""
    fd = os.dup(dir_fd)
    try:
        for comp in comps:
            try:
                nfd = os.open(comp, flags, dir_fd=fd)
            except FileNotFoundError:
                if mkdir is None:
                    raise
                mkdir(fd, comp)
                nfd = os.open(comp, flags, dir_fd=fd)
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


class SafeExtractor:
    """Places tar members below `root_fd`; see the module docstring.

    Options: `cancel` stops a long extraction between chunks (it raises
    `Cancelled`); `owner` replaces every member's uid/gid (copyUIDGID);
    `overlay_xattrs` lets members carry overlayfs' own trusted.overlay.*
    xattrs (a layer may, a `docker cp` upload may not); `new_parent_owner`
    is given to the parent directories made for members whose parents the
    tar does not list (only when running as root, as every chown here).

    Hooks a subclass overrides: `parent_components` (where the parent of an
    entry really is), `parent_not_dir` (its error when that is not a
    directory), `check_replace` and `check_symlink` (refusals), and
    `hardlink` (which targets a link may name).
    """

    log = logging.getLogger(__name__)
    label = "extract"               # log prefix: "layer", "cp"

    def __init__(self, root_fd: int, *, owner: tuple[int, int] | None = None,
                 overlay_xattrs: bool = False,
                 new_parent_owner: tuple[int, int] | None = None,
                 cancel: CancelToken | None = None) -> None:
        self.root_fd = root_fd
        self.cancel = cancel
        self.owner = owner
        self.overlay_xattrs = overlay_xattrs
        self.new_parent_owner = new_parent_owner
        self.is_root = os.geteuid() == 0
        self.dir_meta: list[tuple[list[str], tarfile.TarInfo]] = []
        # the last parent opened: (its components, an fd of it)
        self._last_parent: tuple[list[str], int] | None = None

    # -- hooks -------------------------------------------------------------------

    def parent_components(self, comps: list[str]) -> list[str]:
        """The components of the directory that holds comps[-1]."""
        return comps[:-1]

    def parent_not_dir(self, comps: list[str], comp: str) -> Exception:
        """The error for an entry whose parent `comp` is not a directory."""
        return NotADirectoryError(errno.ENOTDIR, f"parent {comp!r} of "
                                  f"{'/'.join(comps)!r} is not a directory")

    def check_replace(self, comps: list[str], ti: tarfile.TarInfo, existing_is_dir: bool
                      ) -> None:
        """Raise to refuse replacing what is at comps with `ti`."""

    def check_symlink(self, ti: tarfile.TarInfo, comps: list[str]) -> None:
        """Raise to refuse the symlink `ti` at comps."""

    def hardlink(self, ti: tarfile.TarInfo, dfd: int, name: str, comps: list[str]) -> None:
        """Link `name` in `dfd` to the member `ti` names, if it may."""
        raise NotImplementedError

    # -- mechanics ---------------------------------------------------------------

    def _mkdir_parent(self, dfd: int, name: str) -> None:
        os.mkdir(name, 0o755, dir_fd=dfd)
        if self.new_parent_owner is not None and self.is_root:
            os.chown(name, *self.new_parent_owner, dir_fd=dfd, follow_symlinks=False)

    def open_parent(self, comps: list[str], create: bool = True) -> int:
        """An fd for the directory holding comps[-1], never reached via a symlink;
        missing directories are made when `create`, else FileNotFoundError."""
        parent = self.parent_components(comps)
        start, rest = self.root_fd, parent
        last = self._last_parent
        if last is not None and parent[:len(last[0])] == last[0]:
            start, rest = last[1], parent[len(last[0]):]
        try:
            fd = open_dir_at(start, rest, mkdir=self._mkdir_parent if create else None)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise self.parent_not_dir(comps, str(e.filename)) from e
            raise
        self._forget_parent()
        self._last_parent = (parent, os.dup(fd))
        return fd

    def _forget_parent(self) -> None:
        if self._last_parent is not None:
            os.close(self._last_parent[1])
            self._last_parent = None

    def close(self) -> None:
        """Release the fd kept between members."""
        self._forget_parent()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def remove(self, dfd: int, name: str, missing_ok: bool = False) -> None:
        """Remove `name` in `dfd`, a directory with all below it."""
        # the kept parent may be what goes (or lie below it)
        self._forget_parent()
        if not missing_ok:
            os.stat(name, dir_fd=dfd, follow_symlinks=False)
        remove_at(dfd, name)

    def place(self, tf: tarfile.TarFile, ti: tarfile.TarInfo, comps: list[str]) -> None:
        """Create the member `ti` (read from `tf`) at root/comps, replacing what is there."""
        name = comps[-1]
        dfd = self.open_parent(comps)
        try:
            kept_dir = False
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                pass
            else:
                kept_dir = stat.S_ISDIR(st.st_mode)
                self.check_replace(comps, ti, kept_dir)
                if not (kept_dir and ti.isdir()):
                    self.remove(dfd, name)
                    kept_dir = False
            self._create(tf, ti, dfd, name, comps, kept_dir)
        finally:
            os.close(dfd)

    def _create(self, tf: tarfile.TarFile, ti: tarfile.TarInfo, dfd: int, name: str,
                comps: list[str], kept_dir: bool) -> None:
        if ti.isdir():
            if not kept_dir:
                os.mkdir(name, 0o700, dir_fd=dfd)
            self.dir_meta.append((comps, ti))
            return
        if ti.isreg():
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600, dir_fd=dfd)
            with os.fdopen(fd, "wb") as out:
                # straight from the stream when it is a TarFeed (see tarfeed);
                # `tf` may also be an object with just tarfile's extractfile
                feed = getattr(tf, "fileobj", None)
                if isinstance(feed, TarFeed) and not ti.issparse():
                    feed.seek(ti.offset_data)
                    feed.copy_to(fd, ti.size, lambda: check(self.cancel))
                elif (src := tf.extractfile(ti)) is not None:
                    while chunk := src.read(CHUNK):
                        check(self.cancel)
                        out.write(chunk)
                out.flush()
                self._meta_fd(fd, ti)   # through the fd it was written by
            return
        if ti.issym():
            # the target is stored verbatim: nothing here ever follows it
            self.check_symlink(ti, comps)
            os.symlink(ti.linkname, name, dir_fd=dfd)
        elif ti.islnk():
            self.hardlink(ti, dfd, name, comps)
            return                      # shares its target's metadata
        elif ti.isfifo():
            os.mkfifo(name, 0o600, dir_fd=dfd)
        elif ti.ischr() or ti.isblk():
            kind = stat.S_IFCHR if ti.ischr() else stat.S_IFBLK
            os.mknod(name, kind | 0o600, os.makedev(ti.devmajor, ti.devminor), dir_fd=dfd)
        else:
            self.log.info("%s: skipping unsupported entry type %r for %s",
                          self.label, ti.type, ti.name)
            return
        self.set_meta(dfd, name, ti)

    def set_meta(self, dfd: int, name: str, ti: tarfile.TarInfo) -> None:
        """Owner, mode, mtime (and xattrs) of the entry `name` just made for `ti`."""
        uid, gid = self.owner if self.owner is not None else (ti.uid, ti.gid)
        mtime_ns = int(ti.mtime * 1e9)
        if ti.issym():
            if self.is_root:
                os.chown(name, uid, gid, dir_fd=dfd, follow_symlinks=False)
            os.utime(name, ns=(mtime_ns, mtime_ns), dir_fd=dfd, follow_symlinks=False)
            return
        # through an fd of the entry: a path could be swapped for a symlink
        # (by a container process) between create and chmod
        if ti.isreg() or ti.isdir():
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                         dir_fd=dfd)
            try:
                self._meta_fd(fd, ti)
            finally:
                os.close(fd)
            return
        # a fifo or device is not opened for real: an O_PATH fd to chmod through
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
        try:
            if self.is_root:
                os.chown(name, uid, gid, dir_fd=dfd, follow_symlinks=False)
            # chmod after chown: chown clears setuid/setgid
            os.chmod(f"/proc/self/fd/{fd}", ti.mode & 0o7777)
            os.utime(name, ns=(mtime_ns, mtime_ns), dir_fd=dfd, follow_symlinks=False)
        finally:
            os.close(fd)

    def _meta_fd(self, fd: int, ti: tarfile.TarInfo) -> None:
        for key, value in ti.pax_headers.items():
            if not key.startswith(XATTR_PAX_PREFIX):
                continue
            attr = key[len(XATTR_PAX_PREFIX):]
            if attr.startswith(OVERLAY_XATTR_PREFIX) and not self.overlay_xattrs:
                continue
            try:
                os.setxattr(fd, attr, value.encode("utf-8", "surrogateescape"))
            except OSError as e:
                self.log.info("%s: cannot set xattr %s on %s: %s", self.label, attr, ti.name, e)
        if self.is_root:
            os.fchown(fd, *(self.owner if self.owner is not None else (ti.uid, ti.gid)))
        os.fchmod(fd, ti.mode & 0o7777)     # after chown: chown clears setuid/setgid
        mtime_ns = int(ti.mtime * 1e9)
        os.utime(fd, ns=(mtime_ns, mtime_ns))

    def finish_dirs(self) -> None:
        """Directory metadata, children before parents: a parent's mtime is set
        after its children changed it.  A directory replaced later in the tar
        is skipped; for one listed twice, the later entry wins.

        In reverse lexical order of their paths every directory comes before
        its parent, and one cursor walks from each to the next."""
        self._forget_parent()
        todo: list[tuple[list[str], tarfile.TarInfo]] = []
        for comps, ti in self.dir_meta:
            if not comps:
                todo.append(([], ti))
                continue
            try:
                todo.append(([*self.parent_components(comps), comps[-1]], ti))
            except OSError:
                continue
        todo.sort(key=lambda x: x[0], reverse=True)
        with DirCursor(self.root_fd, one_mount=False) as cur:
            for path, ti in todo:
                if not path:            # the root itself
                    fd = os.dup(self.root_fd)
                    try:
                        self._meta_fd(fd, ti)
                    finally:
                        os.close(fd)
                    continue
                try:
                    _move_to(cur, path[:-1])
                    st = os.stat(path[-1], dir_fd=cur.fd, follow_symlinks=False)
                except TreeChanged:
                    self.log.info("%s: tree changed while setting directory metadata",
                                  self.label)
                    return
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    try:
                        self.set_meta(cur.fd, path[-1], ti)
                    except FileNotFoundError:
                        pass


def _move_to(cur: DirCursor, path: list[str]) -> None:
    """Move the cursor to root/path: up to the common part, then down."""
    if cur.names[:len(path)] == path:
        common = len(path)              # an ancestor (the usual next step)
    else:
        common = 0
        for a, b in zip(cur.names, path, strict=False):
            if a != b:
                break
            common += 1
    while cur.depth > common:
        cur.up()
    for name in path[common:]:
        cur.down(name)
