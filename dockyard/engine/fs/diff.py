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


def _capability(path: Path) -> bytes:
    try:
        return os.getxattr(path, CAPABILITY_XATTR, follow_symlinks=False)
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


def compute_changes(upper: Path, lowers: list[str], skips: Skips) -> list[dict[str, Any]]:
    """Docker's `[{Path, Kind}]` for the upper dir against the image layers.

    moby's ChangesDirs (what overlay2's naive Changes runs) compares the
    container's tree with the image's: an entry is Added when the image lacks
    it (and so is everything below it), Modified when statDifferent or its
    security.capability differs, Deleted when only the image has it; and every
    directory with a change below it is reported Modified too, before its
    entries.  Entries the upper dir lacks are unchanged, so only the upper dir
    is walked, in lexical order.
    """
    lower = LowerView(lowers)
    changes: list[dict[str, Any]] = []

    def change(path: str, kind: int) -> None:
        changes.append({"Path": path, "Kind": kind})

    def walk(dir_path: Path, cpath: str, hides_lower: bool, compare: bool) -> None:
        """compare: the image has a directory at cpath to compare entries with."""
        names = set(os.listdir(dir_path))
        deleted: set[str] = set()
        if hides_lower and compare:
            deleted = lower.listdir(cpath) - names
        for name in sorted(names | deleted):
            child = posixpath.join(cpath, name)
            if skips(child):
                continue
            if name in deleted:
                change(child, CHANGE_DELETE)
                continue
            full = dir_path / name
            st = os.lstat(full)
            if is_whiteout(st):
                if not hides_lower:
                    change(child, CHANGE_DELETE)
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            found = lower.find(child) if compare else None
            if found is None:
                if is_dir and child in skips.ancestors:
                    # made only to hold mount points: Docker's init layer has it
                    reported = False
                else:
                    change(child, CHANGE_ADD)
                    reported = True
            else:
                low_path, low = found
                reported = (_stat_different(low, st)
                            or _capability(low_path) != _capability(full))
                if reported:
                    change(child, CHANGE_MODIFY)
            if is_dir:
                mark = len(changes)
                opaque = _opaque(full)
                walk(full, child, hides_lower or (opaque and found is not None),
                     found is not None and stat.S_ISDIR(found[1].st_mode))
                if len(changes) > mark and not reported:
                    changes.insert(mark, {"Path": child, "Kind": CHANGE_MODIFY})

    walk(upper, "/", False, True)
    return changes
