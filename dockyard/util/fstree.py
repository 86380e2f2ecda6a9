"""Walking, measuring and removing directory trees of any depth.

The trees the engine walks hold its clients' data: an image layer or a
container's upper dir can hold a path thousands of directories deep, deeper
than PATH_MAX and than Python's recursion limit, and a running container
may rename or swap what is being walked.  So every walk here:

* is iterative: a list of pending names per level, never recursion;
* holds one open directory however deep it goes (`DirCursor`): it moves
  down by name (openat with O_NOFOLLOW | O_DIRECTORY, so a symlink is never
  entered) and back up through "..", which must be the directory that was
  there on the way down (same st_dev and st_ino); a directory moved
  meanwhile is reopened from the root by name and checked again, and when
  even that fails the walk stops with `TreeChanged`, never following the
  move out of the tree;
* stays on one mount: a directory whose mount differs from its parent's is
  reported as a `MOUNT` entry and not entered.

`remove_tree` is `rm -rf` on that walk (with an option to detach mounts it
finds, for trees the engine owns), `tree_size` is moby's directory.Size.
Everything is synchronous; callers run it in a thread.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from dockyard.util.mount import MNT_DETACH, umount

log = logging.getLogger(__name__)

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

MAX_LOOKS = 8        # times an entry swapped under a walk is looked at again

# Entry kinds
DIR = "dir"          # a directory just entered: `fd` is the directory itself
LEAF = "leaf"        # anything but a directory: `fd` holds it
POST = "post"        # a directory left (after its entries): `fd` holds it
MOUNT = "mount"      # a directory that is another mount: not entered; `fd` holds it


class TreeChanged(OSError):
    """A directory being walked was moved away by someone else."""

    def __init__(self, what: str) -> None:
        super().__init__(errno.ESTALE, f"directory tree changed while walking it: {what}")


class MountPoint(OSError):
    def __init__(self, name: str) -> None:
        super().__init__(errno.EXDEV, "is a mount point", name)


def mount_id(fd: int) -> int:
    """The id of the mount `fd` is on (-1 when /proc cannot say)."""
    try:
        info = os.open(f"/proc/self/fdinfo/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return -1
    try:
        data = os.read(info, 4096)
    finally:
        os.close(info)
    for line in data.splitlines():
        if line.startswith(b"mnt_id:"):
            return int(line.split()[1])
    return -1


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


class DirCursor:
    """One open directory below a root, moved by name; see the module docstring.

    `fd` is the current directory, `names` the path to it from the root."""

    def __init__(self, root_fd: int, one_mount: bool = True) -> None:
        self._root = os.dup(root_fd)
        self.fd = os.dup(root_fd)
        self.one_mount = one_mount
        st = os.fstat(self.fd)
        self.names: list[str] = []
        self._ids = [_identity(st)]
        self._mounts = [mount_id(self.fd) if one_mount else -1]

    def close(self) -> None:
        for fd in (self.fd, self._root):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fd = self._root = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def depth(self) -> int:
        return len(self.names)

    def _check_mount(self, fd: int, st: os.stat_result, name: str) -> int:
        if not self.one_mount:
            return -1
        if st.st_dev != self._ids[-1][0]:
            raise MountPoint(name)
        mid = mount_id(fd)
        if mid != self._mounts[-1]:
            raise MountPoint(name)
        return mid

    def down(self, name: str) -> os.stat_result:
        """Enter the subdirectory `name`; its fstat.  OSError (ELOOP, ENOTDIR,
        ENOENT) when it is no directory (any more), MountPoint for a mount."""
        nfd = os.open(name, DIR_FLAGS, dir_fd=self.fd)
        try:
            st = os.fstat(nfd)
            mid = self._check_mount(nfd, st, name)
        except BaseException:
            os.close(nfd)
            raise
        os.close(self.fd)
        self.fd = nfd
        self.names.append(name)
        self._ids.append(_identity(st))
        self._mounts.append(mid)
        return st

    def up(self) -> None:
        """Back to the parent directory, the one seen on the way down."""
        if not self.names:
            raise ValueError("already at the root")
        want = self._ids[-2]
        try:
            nfd = os.open("..", DIR_FLAGS, dir_fd=self.fd)
        except OSError:
            nfd = -1
        if nfd >= 0 and _identity(os.fstat(nfd)) != want:
            os.close(nfd)
            nfd = -1
        if nfd < 0:
            nfd = self._reopen(len(self.names) - 1)
        os.close(self.fd)
        self.fd = nfd
        self.names.pop()
        self._ids.pop()
        self._mounts.pop()

    def _reopen(self, depth: int) -> int:
        """The directory at `depth` reached again from the root by name,
        each step checked against what was seen before."""
        fd = os.dup(self._root)
        try:
            for i, name in enumerate(self.names[:depth], start=1):
                nfd = os.open(name, DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nfd
                if _identity(os.fstat(fd)) != self._ids[i]:
                    raise TreeChanged("/".join(self.names[:i]))
            return fd
        except TreeChanged:
            os.close(fd)
            raise
        except OSError as e:
            os.close(fd)
            raise TreeChanged("/".join(self.names[:depth])) from e


@dataclass(slots=True)
class Entry:
    kind: str
    name: str
    st: os.stat_result
    fd: int
    depth: int            # 1 for what the root holds


class TreeWalk:
    """Every entry below `root_fd`, depth first, never following a symlink.

    Iterating yields `Entry`s: `DIR` once a directory is entered (`prune()`
    then skips what it holds), its entries, then `POST` when it is left;
    `LEAF` for anything else; `MOUNT` for a directory on another mount.
    `path` is the names from the root to the directory being walked.

    `names` restricts the root level to those names; `sort` lists each
    directory in byte order; `writable` (for removal by a non-root caller,
    tests) makes each directory accessible before reading it."""

    def __init__(self, root_fd: int, *, names: list[str] | None = None, sort: bool = False,
                 one_mount: bool = True, writable: bool = False) -> None:
        self.root_fd = root_fd
        self._names = names
        self.sort = sort
        self.one_mount = one_mount
        self.writable = writable and os.geteuid() != 0
        self._cursor: DirCursor | None = None
        self._prune = False
        self._retry: str | None = None

    @property
    def path(self) -> list[str]:
        return list(self._cursor.names) if self._cursor is not None else []

    def path_of(self, name: str) -> str:
        """"a/b/name" for `name` in the directory being walked."""
        names = self._cursor.names if self._cursor is not None else []
        return "/".join([*names, name])

    def prune(self) -> None:
        self._prune = True

    def retry(self, name: str) -> None:
        """Look at `name` again (after a MOUNT entry's mount was detached)."""
        self._retry = name

    def _list(self, fd: int) -> list[str]:
        names = os.listdir(fd)
        if self.sort:
            names.sort(reverse=True)    # popped from the end: walked in order
        return names

    def _enter(self, cur: DirCursor, name: str) -> os.stat_result:
        try:
            return cur.down(name)
        except PermissionError:
            if not self.writable:
                raise
            os.chmod(name, 0o700, dir_fd=cur.fd)
            return cur.down(name)

    def __iter__(self) -> Iterator[Entry]:
        cur = DirCursor(self.root_fd, self.one_mount)
        self._cursor = cur
        try:
            root_names = (list(reversed(self._names)) if self._names is not None
                          else self._list(cur.fd))
            pending: list[list[str]] = [root_names]
            left: list[os.stat_result] = []
            again, looks = "", 0
            while pending:
                if self._retry is not None:
                    pending[-1].append(self._retry)
                    self._retry = None
                if not pending[-1]:
                    pending.pop()
                    if not pending:
                        break
                    name = cur.names[-1]
                    cur.up()
                    yield Entry(POST, name, left.pop(), cur.fd, cur.depth + 1)
                    continue
                name = pending[-1].pop()
                depth = cur.depth + 1
                try:
                    st = os.stat(name, dir_fd=cur.fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue            # gone while we walked
                if not stat.S_ISDIR(st.st_mode):
                    yield Entry(LEAF, name, st, cur.fd, depth)
                    continue
                try:
                    dst = self._enter(cur, name)
                except MountPoint:
                    yield Entry(MOUNT, name, st, cur.fd, depth)
                    continue
                except OSError as e:
                    if e.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                        raise
                    # replaced by something else since the stat: look again,
                    # a few times (a process could keep swapping it)
                    looks = looks + 1 if name == again else 1
                    again = name
                    if looks <= MAX_LOOKS:
                        pending[-1].append(name)
                    continue
                if self.writable:
                    os.fchmod(cur.fd, 0o700)
                self._prune = False
                yield Entry(DIR, name, dst, cur.fd, depth)
                if self._prune:
                    self._prune = False
                    cur.up()
                    yield Entry(POST, name, dst, cur.fd, depth)
                    continue
                left.append(dst)
                pending.append(self._list(cur.fd))
        finally:
            self._cursor = None
            cur.close()


def directories(path: str | Path) -> Iterator[int]:
    """An fd of `path` and of every directory below it, each valid until the
    next is asked for; `path` missing or unreadable yields nothing, and what
    vanishes meanwhile is skipped."""
    try:
        fd = os.open(path, DIR_FLAGS)
    except OSError:
        return
    try:
        yield fd
        for e in TreeWalk(fd):
            if e.kind == DIR:
                yield e.fd
    except OSError as e:
        log.debug("walking %s: %s", path, e)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- removal

MAX_DETACH = 16         # mounts stacked on one directory that removal detaches


def remove_at(dir_fd: int, name: str, *, unmount: bool = False) -> None:
    """Remove `name` in `dir_fd` and, for a directory, everything below it.

    Symlinks are removed, never followed.  A mount point found inside is
    left alone (its directory then stays, and the error says so) unless
    `unmount`, for trees only the engine uses (staging, a removed
    container's directory): then it is detached first.  Every entry that
    can go goes; the first failure is raised at the end."""
    first: OSError | None = None

    def failed(e: OSError) -> None:
        nonlocal first
        if first is None:
            first = e

    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return
    walk = TreeWalk(dir_fd, names=[name], writable=True)
    detached: dict[str, int] = {}
    for e in walk:
        try:
            if e.kind == LEAF:
                os.unlink(e.name, dir_fd=e.fd)
            elif e.kind == POST:
                os.rmdir(e.name, dir_fd=e.fd)
            elif e.kind == MOUNT:
                where = walk.path_of(e.name)
                if not unmount or detached.get(where, 0) >= MAX_DETACH:
                    raise OSError(errno.EBUSY, "is a mount point", where)
                detached[where] = detached.get(where, 0) + 1
                umount(f"/proc/self/fd/{e.fd}/{e.name}", MNT_DETACH)
                walk.retry(e.name)
        except FileNotFoundError:
            pass
        except OSError as err:
            failed(err)
    if first is not None:
        raise first


def remove_tree(path: str | Path, *, unmount: bool = False) -> None:
    """`remove_at` for a path (a missing one is no error)."""
    p = os.fspath(path)
    parent, name = os.path.split(p.rstrip("/") or "/")
    if not name or name in (".", ".."):
        raise ValueError(f"refusing to remove {p!r}")
    try:
        pfd = os.open(parent or ".", DIR_FLAGS)
    except FileNotFoundError:
        return
    try:
        remove_at(pfd, name, unmount=unmount)
    finally:
        os.close(pfd)


def remove_quietly(path: str | Path, what: str = "", *, unmount: bool = False) -> bool:
    """`remove_tree`, logging instead of raising; whether all of it went."""
    try:
        remove_tree(path, unmount=unmount)
        return True
    except (OSError, ValueError) as e:
        log.warning("cannot remove %s%s: %s", what + " " if what else "", path, e)
        return False


def clear_dir(path: str | Path, *, unmount: bool = False) -> list[str]:
    """Remove everything inside the directory `path` (kept); the names that
    could not be removed, each logged."""
    try:
        fd = os.open(path, DIR_FLAGS)
    except FileNotFoundError:
        return []
    left = []
    try:
        for name in os.listdir(fd):
            try:
                remove_at(fd, name, unmount=unmount)
            except OSError as e:
                log.warning("cannot remove %s/%s: %s", path, name, e)
                left.append(name)
    finally:
        os.close(fd)
    return left


# ---------------------------------------------------------------- sizes

def tree_size(path: str | Path) -> int:
    """moby's directory.Size: bytes of every non-directory entry (symlinks by
    their own size), each inode once so hardlinks count once.  What cannot
    be read, or vanishes meanwhile, is not counted."""
    try:
        fd = os.open(path, DIR_FLAGS)
    except OSError:
        return 0
    total = 0
    seen: set[tuple[int, int]] = set()
    try:
        for e in TreeWalk(fd, one_mount=False):
            if e.kind != LEAF or e.st.st_size == 0:
                continue
            key = (e.st.st_dev, e.st.st_ino)
            if key not in seen:
                seen.add(key)
                total += e.st.st_size
    except OSError as e:
        log.debug("size of %s: %s", path, e)
    finally:
        os.close(fd)
    return total


# ---------------------------------------------------------------- files

def open_regular(dir_fd: int, name: str, expect: os.stat_result | None = None) -> int | None:
    """An fd to read the regular file `name` in `dir_fd`, or None when it is
    not one (any more).  The file is first opened with O_PATH, which has no
    effect on what it names, so a device node or fifo swapped in by a
    container process is never opened for real; with `expect`, it must also
    still be that file (same st_dev and st_ino)."""
    try:
        pfd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
            return None
        raise
    try:
        st = os.fstat(pfd)
        if not stat.S_ISREG(st.st_mode):
            return None
        if expect is not None and _identity(st) != _identity(expect):
            return None
        return os.open(f"/proc/self/fd/{pfd}", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(pfd)
