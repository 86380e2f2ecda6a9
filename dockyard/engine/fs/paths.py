"""Paths inside a container root, resolved as a chroot would, and Docker's path stat.

Every lookup starts from a directory fd of the root and walks one component
at a time with O_NOFOLLOW; symlinks are read and their targets re-walked from
the root (absolute) or the current directory (relative), `..` never climbs
above the root.  A container process racing us (swapping a directory for a
symlink) can only make an open fail, never lead it outside the root.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from typing import Any

from dockyard.util.fstree import DirCursor
from dockyard.util.safetar import DIR_FLAGS, open_dir_at
from dockyard.util.timefmt import rfc3339_nano

MAX_SYMLINKS = 40
_PATH_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

# Go's os.FileMode type bits: the stat header and `docker cp` speak these.
GO_MODE_DIR = 1 << 31
GO_MODE_SYMLINK = 1 << 27
GO_MODE_DEVICE = 1 << 26
GO_MODE_NAMED_PIPE = 1 << 25
GO_MODE_SOCKET = 1 << 24
GO_MODE_SETUID = 1 << 23
GO_MODE_SETGID = 1 << 22
GO_MODE_CHAR_DEVICE = 1 << 21
GO_MODE_STICKY = 1 << 20


def components(path: str) -> list[str]:
    return [p for p in path.split("/") if p]


def open_dir(root_fd: int, comps: list[str], flags: int = DIR_FLAGS) -> int:
    """An fd for root/comps, refusing any symlink on the way."""
    return open_dir_at(root_fd, comps, flags)


def lstat_at(root_fd: int, parent: list[str], name: str) -> os.stat_result | None:
    """lstat of root/parent/name; None when it (or a parent directory) is missing."""
    try:
        fd = open_dir(root_fd, parent, _PATH_FLAGS)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            return None
        raise
    try:
        return os.stat(name, dir_fd=fd, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return None
    finally:
        os.close(fd)


def resolve(root_fd: int, path: str, follow_final: bool) -> list[str]:
    """Components of `path` with symlinks evaluated inside the root.

    Missing components are kept as they are (like moby's
    FollowSymlinkInScope), so the result may name a path that does not exist.
    `follow_final` also evaluates the last component when it is a symlink.
    One cursor follows the resolved path while it exists, so the cost grows
    with the path's length, not its square.
    """
    pending = deque(components(path))
    resolved: list[str] = []
    links = 0
    with DirCursor(root_fd, one_mount=False) as cur:
        while pending:
            comp = pending.popleft()
            if comp == ".":
                continue
            if comp == "..":
                if resolved:
                    if cur.depth == len(resolved):
                        cur.up()
                    resolved.pop()
                continue
            # "link/." walks through the link, as the kernel does
            is_last = not pending
            st = None
            if cur.depth == len(resolved):      # the parent exists: look
                try:
                    st = os.stat(comp, dir_fd=cur.fd, follow_symlinks=False)
                except (FileNotFoundError, NotADirectoryError):
                    st = None
            if st is not None and stat.S_ISLNK(st.st_mode) and (follow_final or not is_last):
                links += 1
                if links > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links")
                target = os.readlink(comp, dir_fd=cur.fd)
                if target.startswith("/"):
                    resolved = []
                    while cur.depth:
                        cur.up()
                pending.extendleft(reversed(components(target)))
                continue
            if st is not None and stat.S_ISDIR(st.st_mode):
                try:
                    cur.down(comp)
                except (FileNotFoundError, NotADirectoryError):
                    pass
                except OSError as e:
                    if e.errno != errno.ELOOP:
                        raise
            resolved.append(comp)
    return resolved


def container_abs_path(path: str) -> str:
    """moby's `PreserveTrailingDotOrSeparator(Join("/", path), path)`."""
    cleaned = "/" + "/".join(_clean(components(path)))
    if cleaned != "/":
        if path.endswith("/.") or path == ".":
            cleaned += "/."
        elif path.endswith("/"):
            cleaned += "/"
    return cleaned


def _clean(comps: list[str]) -> list[str]:
    out: list[str] = []
    for c in comps:
        if c == ".":
            continue
        if c == "..":
            if out:
                out.pop()
            continue
        out.append(c)
    return out


def split_dir_entry(abs_path: str) -> tuple[str, str]:
    """moby's SplitPathDirEntry: ("/etc", "passwd"), ("/etc", ".") for "/etc/."."""
    comps = _clean(components(abs_path))
    if abs_path.endswith("/.") or abs_path == ".":
        return "/" + "/".join(comps), "."
    if not comps:
        return "/", "/"
    return "/" + "/".join(comps[:-1]), comps[-1]


def go_base(abs_path: str) -> str:
    """Go's filepath.Base on an absolute path."""
    stripped = abs_path.rstrip("/")
    if not stripped:
        return "/"
    return stripped.rsplit("/", 1)[-1]


def go_file_mode(mode: int) -> int:
    """A stat mode as Go's os.FileMode (type bits high, permissions low)."""
    out = mode & 0o777
    fmt = stat.S_IFMT(mode)
    if fmt == stat.S_IFDIR:
        out |= GO_MODE_DIR
    elif fmt == stat.S_IFLNK:
        out |= GO_MODE_SYMLINK
    elif fmt == stat.S_IFBLK:
        out |= GO_MODE_DEVICE
    elif fmt == stat.S_IFCHR:
        out |= GO_MODE_DEVICE | GO_MODE_CHAR_DEVICE
    elif fmt == stat.S_IFIFO:
        out |= GO_MODE_NAMED_PIPE
    elif fmt == stat.S_IFSOCK:
        out |= GO_MODE_SOCKET
    if mode & stat.S_ISUID:
        out |= GO_MODE_SETUID
    if mode & stat.S_ISGID:
        out |= GO_MODE_SETGID
    if mode & stat.S_ISVTX:
        out |= GO_MODE_STICKY
    return out


def path_stat(root_fd: int, path: str) -> dict[str, Any]:
    """Docker's ContainerPathStat for `path` (lstat: a final symlink is not followed
    unless the path ends in `/` or `/.`); FileNotFoundError when missing."""
    abs_path = container_abs_path(path)
    follow = abs_path.endswith(("/", "/."))
    comps = resolve(root_fd, abs_path, follow)
    if not comps:
        st: os.stat_result | None = os.fstat(root_fd)
    else:
        st = lstat_at(root_fd, comps[:-1], comps[-1])
    if st is None:
        raise FileNotFoundError(errno.ENOENT, "no such file or directory", abs_path)
    if follow and not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", abs_path)
    link_target = ""
    if stat.S_ISLNK(st.st_mode):
        link_target = "/" + "/".join(resolve(root_fd, abs_path, True))
    return {"name": go_base(abs_path), "size": st.st_size, "mode": go_file_mode(st.st_mode),
            "mtime": rfc3339_nano(st.st_mtime_ns), "linkTarget": link_target}
