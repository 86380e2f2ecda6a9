"""`docker diff` from an overlay upper dir, and the paths diff/commit leave out.

The upper dir is an exact record of what a container changed: a 0/0
character device is a deletion (whiteout), a directory with
trusted.overlay.opaque=y replaced the image's directory of that name.  The
result is that of moby's `ChangesDirs` (the container's tree against the
image's, which overlay2's Changes uses): see compute_changes.  "The image"
is the merged view of the layers (whiteouts and opaque directories of lower
layers honoured), and an opaque directory reports each image entry it hides
as Deleted.

Docker never shows the mount points its init layer creates (/etc/hosts,
/dev, /proc, ...).  Here the runtime creates them in the upper dir, so they
are skipped, and a directory the runtime created only to hold one is not
itself a change.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.engine.fs.tar import OPAQUE_XATTR, is_whiteout
from dockyard.util.fstree import DIR, DIR_FLAGS, POST, DirCursor, TreeWalk

CHANGE_MODIFY, CHANGE_ADD, CHANGE_DELETE = 0, 1, 2

# The runtime's default mounts and the engine's bind-mounted files.
ENGINE_MOUNT_POINTS = ("/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue",
                       "/sys/fs/cgroup", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf",
                       "/sbin/docker-init", "/.dockerenv")


def _clean(p: str) -> str:
    # normpath keeps a leading "//" (POSIX allows it a meaning): not for us
    return "/" + posixpath.normpath("/" + p).lstrip("/") if p else ""


def mount_points(config: dict[str, Any], host_config: dict[str, Any]) -> frozenset[str]:
    """Container paths that are mount points: left out of diff and commit."""
    out = set(ENGINE_MOUNT_POINTS)
    for bind in host_config.get("Binds") or []:
        parts = str(bind).split(":")
        if len(parts) >= 2:
            out.add(_clean(parts[1]))
    for m in host_config.get("Mounts") or []:
        if isinstance(m, dict) and m.get("Target"):
            out.add(_clean(str(m["Target"])))
    for dest in (host_config.get("Tmpfs") or {}):
        out.add(_clean(str(dest)))
    for dest in (config.get("Volumes") or {}):
        out.add(_clean(str(dest)))
    out.discard("")
    out.discard("/")
    return frozenset(out)


@dataclass(frozen=True)
class Skips:
    """Which container paths diff and commit leave out."""

    paths: frozenset[str] = frozenset()
    ancestors: frozenset[str] = field(default=frozenset())

    @classmethod
    def of(cls, paths: Iterable[str]) -> Skips:
        ps = frozenset(paths)
        anc = set()
        for p in ps:
            d = posixpath.dirname(p)
            while d.startswith("/") and d != "/":
                anc.add(d)
                d = posixpath.dirname(d)
            anc.add("/")
        return cls(ps, frozenset(anc))

    def __call__(self, path: str) -> bool:
        return path in self.paths


class LowerView:
    """Lookups in the image's merged layers (lower dirs, top first)."""

    def __init__(self, lowers: list[str]) -> None:
        self.lowers = [Path(x) for x in lowers]

    @staticmethod
    def _in_layer(layer: Path, comps: list[str]) -> tuple[os.stat_result | None, bool]:
        """(lstat of the path in this layer or None, whether deeper layers are hidden)."""
        hidden = False
        cur = layer
        for i, comp in enumerate(comps):
            cur = cur / comp
            try:
                st = os.lstat(cur)
            except (FileNotFoundError, NotADirectoryError):
                return None, hidden
            if is_whiteout(st):
                return None, True
            if i == len(comps) - 1:
                return st, True
            if not stat.S_ISDIR(st.st_mode):
                return None, True       # a file here shadows directories below
            hidden = hidden or _opaque(cur)
        return os.lstat(layer), False

    def find(self, path: str) -> tuple[Path, os.stat_result] | None:
        """The image's entry at `path`: its path in the layer holding it, its lstat."""
        comps = [c for c in path.split("/") if c]
        for layer in self.lowers:
            st, hidden = self._in_layer(layer, comps)
            if st is not None:
                return layer.joinpath(*comps), st
            if hidden:
                return None
        return None

    def lstat(self, path: str) -> os.stat_result | None:
        found = self.find(path)
        return found[1] if found is not None else None

    def listdir(self, path: str) -> set[str]:
        """Names visible in the image's directory `path`."""
        comps = [c for c in path.split("/") if c]
        names: set[str] = set()
        gone: set[str] = set()
        for layer in self.lowers:
            st, hidden = self._in_layer(layer, comps)
            if st is None:
                if hidden:
                    break
                continue
            if not stat.S_ISDIR(st.st_mode):
                break
            cur = layer.joinpath(*comps)
            for e in os.listdir(cur):
                if e in names or e in gone:
                    continue
                try:
                    est = os.lstat(cur / e)
                except FileNotFoundError:
                    continue
                (gone if is_whiteout(est) else names).add(e)
            if _opaque(cur) or any(_opaque(layer.joinpath(*comps[:i]))
                                   for i in range(1, len(comps))):
                break
        return names


def _opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


CAPABILITY_XATTR = "security.capability"


def _capability(path: Path | str) -> bytes:
    try:
        return os.getxattr(path, CAPABILITY_XATTR, follow_symlinks=False)
    except OSError:
        return b""


def _capability_fd(fd: int) -> bytes:
    try:
        return os.getxattr(fd, CAPABILITY_XATTR)
    except OSError:
        return b""


def _same_fs_time(a_ns: int, b_ns: int) -> bool:
    """moby's sameFsTime: equal, or equal seconds with one side lacking nanoseconds."""
    if a_ns == b_ns:
        return True
    return a_ns // 10**9 == b_ns // 10**9 and (a_ns % 10**9 == 0 or b_ns % 10**9 == 0)


def _stat_different(old: os.stat_result, new: os.stat_result) -> bool:
    """moby's statDifferent: mode, owner and rdev; size and mtime for non-directories
    only (a directory's mtime and size are not a measure of change)."""
    if (old.st_mode, old.st_uid, old.st_gid, old.st_rdev) != (
            new.st_mode, new.st_uid, new.st_gid, new.st_rdev):
        return True
    return not stat.S_ISDIR(old.st_mode) and (
        old.st_size != new.st_size or not _same_fs_time(old.st_mtime_ns, new.st_mtime_ns))


class _LowerDirs:
    """The image's directory at the walk's current path: one cursor per layer,
    and per level the layers that show that directory (top first), as
    overlayfs finds them: a layer drops out below a whiteout or a
    non-directory, and the layers under an opaque directory drop out."""

    def __init__(self, lowers: list[str]) -> None:
        self.cursors: list[DirCursor] = []
        try:
            for p in lowers:
                fd = os.open(p, DIR_FLAGS)
                try:
                    self.cursors.append(DirCursor(fd, one_mount=False))
                finally:
                    os.close(fd)
        except BaseException:
            self.close()
            raise
        root: list[int] = []
        for i, cur in enumerate(self.cursors):
            root.append(i)
            if _is_opaque_fd(cur.fd):
                break
        self.levels = [root]

    def close(self) -> None:
        for cur in self.cursors:
            cur.close()

    def _lstat(self, i: int, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=self.cursors[i].fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def lookup(self, name: str) -> tuple[int, os.stat_result] | None:
        """The image's entry `name` here: (its layer, its lstat), or None."""
        for i in self.levels[-1]:
            st = self._lstat(i, name)
            if st is None:
                continue
            return None if is_whiteout(st) else (i, st)
        return None

    def capability(self, i: int, name: str) -> bytes:
        return _capability(f"/proc/self/fd/{self.cursors[i].fd}/{name}")

    def descend(self, name: str) -> None:
        level: list[int] = []
        for i in self.levels[-1]:
            st = self._lstat(i, name)
            if st is None:
                continue
            if not stat.S_ISDIR(st.st_mode):
                break                   # a whiteout or a file hides what is below
            self.cursors[i].down(name)
            level.append(i)
            if _is_opaque_fd(self.cursors[i].fd):
                break
        self.levels.append(level)

    def ascend(self) -> None:
        for i in self.levels.pop():
            self.cursors[i].up()

    def names(self) -> set[str]:
        """Names visible in the image's directory here."""
        names: set[str] = set()
        gone: set[str] = set()
        for i in self.levels[-1]:
            for e in os.listdir(self.cursors[i].fd):
                if e in names or e in gone:
                    continue
                st = self._lstat(i, e)
                if st is not None:
                    (gone if is_whiteout(st) else names).add(e)
        return names


def _is_opaque_fd(fd: int) -> bool:
    try:
        return os.getxattr(fd, OPAQUE_XATTR) == b"y"
    except OSError:
        return False


@dataclass
class _Frame:
    """A directory of the upper dir being walked."""

    path: str                    # its container path
    hides_lower: bool = False    # opaque here or above: image entries under it are gone
    compare: bool = True         # the image has a directory here to compare with
    mark: int = 0                # len(changes) when it was entered
    reported: bool = True        # itself already in the changes
    skipped: bool = False


def _path_key(change: tuple[str, int]) -> str:
    # component order without splitting (a deep path has thousands of
    # components): NUL, which no name holds, sorts before every other byte
    return change[0].replace("/", "\0")


def compute_changes(upper: Path, lowers: list[str], skips: Skips) -> list[dict[str, Any]]:
    """Docker's `[{Path, Kind}]` for the upper dir against the image layers.

    moby's ChangesDirs (what overlay2's naive Changes runs) compares the
    container's tree with the image's: an entry is Added when the image lacks
    it (and so is everything below it), Modified when statDifferent or its
    security.capability differs, Deleted when only the image has it; and every
    directory with a change below it is reported Modified too, before its
    entries.  Entries the upper dir lacks are unchanged, so only the upper dir
    is walked (`TreeWalk`, with the image followed along by `_LowerDirs`),
    and the result is in path order.
    """
    changes: list[tuple[str, int]] = []
    ufd = os.open(upper, DIR_FLAGS)
    try:
        lower = _LowerDirs(lowers)
    except BaseException:
        os.close(ufd)
        raise
    try:
        walk = TreeWalk(ufd, sort=True)
        frames = [_Frame("/")]
        for e in walk:
            top = frames[-1]
            if e.kind == POST:
                if not top.skipped:
                    if top.compare:
                        lower.ascend()
                    if len(changes) > top.mark and not top.reported:
                        changes.append((top.path, CHANGE_MODIFY))
                frames.pop()
                continue
            child = posixpath.join(top.path, e.name)
            if skips(child):
                if e.kind == DIR:
                    walk.prune()
                    frames.append(_Frame(child, skipped=True))
                continue
            st = e.st
            if e.kind != DIR and is_whiteout(st):
                if not top.hides_lower:
                    changes.append((child, CHANGE_DELETE))
                continue
            is_dir = e.kind == DIR
            found = lower.lookup(e.name) if top.compare else None
            if found is None:
                # a directory made only to hold mount points: Docker's init layer has it
                reported = not (is_dir and child in skips.ancestors)
                if reported:
                    changes.append((child, CHANGE_ADD))
            else:
                upper_cap = (_capability_fd(e.fd) if is_dir
                             else _capability(f"/proc/self/fd/{e.fd}/{e.name}"))
                reported = (_stat_different(found[1], st)
                            or lower.capability(found[0], e.name) != upper_cap)
                if reported:
                    changes.append((child, CHANGE_MODIFY))
            if not is_dir:
                continue
            compare = found is not None and stat.S_ISDIR(found[1].st_mode)
            frame = _Frame(child, top.hides_lower or (found is not None and _is_opaque_fd(e.fd)),
                           compare, len(changes), reported)
            frames.append(frame)
            if compare:
                lower.descend(e.name)
                if frame.hides_lower:
                    for name in sorted(lower.names() - set(os.listdir(e.fd))):
                        gone = posixpath.join(child, name)
                        if not skips(gone):
                            changes.append((gone, CHANGE_DELETE))
    finally:
        lower.close()
        os.close(ufd)
    changes.sort(key=_path_key)
    return [{"Path": p, "Kind": k} for p, k in changes]
