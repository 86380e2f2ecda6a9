"""Where a mount lands in a container's root, decided before the runtime sees it.

A mount destination is a path in the image, and the image may hold
symlinks on it.  The runtime resolves them inside the root; here the
engine resolves them first and refuses a destination that would replace
the root itself (`/data -> /`) or that climbs out of the root through a
symlink (`/data -> ../../etc`: inside a chroot that is `/etc`, which is
not where the user asked for it).  The resolved path is created (a
directory, or an empty file for a file bind) one component at a time
without following symlinks, and given to the runtime instead of the
original, so nothing resolves it again.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque

from dockyard.errors import InvalidParameter

MAX_SYMLINKS = 40
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _comps(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]


def resolve_target(root_fd: int, dest: str) -> list[str]:
    """The components of `dest` with the image's symlinks followed inside
    the root; InvalidParameter when they lead to the root or out of it."""
    pending = deque(_comps(dest))
    resolved: list[str] = []
    links = 0
    fds = [os.dup(root_fd)]
    try:
        while pending:
            comp = pending.popleft()
            if comp == "..":
                if not resolved:
                    raise InvalidParameter(
                        f"mount destination {dest} leaves the container's root through a "
                        "symlink in the image")
                resolved.pop()
                if len(fds) > len(resolved) + 1:
                    os.close(fds.pop())
                continue
            st = None
            if len(fds) == len(resolved) + 1:
                try:
                    st = os.stat(comp, dir_fd=fds[-1], follow_symlinks=False)
                except (FileNotFoundError, NotADirectoryError):
                    st = None
            if st is not None and stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_SYMLINKS:
                    raise InvalidParameter(f"mount destination {dest}: too many levels of "
                                           "symbolic links in the image")
                target = os.readlink(comp, dir_fd=fds[-1])
                if target.startswith("/"):
                    resolved.clear()
                    while len(fds) > 1:
                        os.close(fds.pop())
                pending.extendleft(reversed(_comps(target)))
                continue
            resolved.append(comp)
            if st is not None and stat.S_ISDIR(st.st_mode):
                try:
                    fds.append(os.open(comp, _DIR, dir_fd=fds[-1]))
                except OSError as e:
                    if e.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                        raise
        if not resolved:
            raise InvalidParameter(f"mount destination {dest} resolves to the container's "
                                   "root through a symlink in the image")
        return resolved
    finally:
        for fd in fds:
            os.close(fd)


def make_target(root_fd: int, comps: list[str], directory: bool) -> None:
    """Create root/comps (parents as directories, the last one a directory
    or an empty file) where missing, following no symlink; what exists is
    left as it is."""
    fd = os.dup(root_fd)
    try:
        for i, comp in enumerate(comps):
            last = i == len(comps) - 1
            if last and not directory:
                try:
                    nfd = os.open(comp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                                  | os.O_CLOEXEC, 0o755, dir_fd=fd)
                    os.close(nfd)
                except FileExistsError:
                    pass
                return
            try:
                os.mkdir(comp, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            nfd = os.open(comp, _DIR, dir_fd=fd)
            os.close(fd)
            fd = nfd
    finally:
        os.close(fd)
