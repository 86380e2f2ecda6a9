"""`docker diff` from an overlay upper dir, and the paths diff/commit leave out.

The upper dir is an exact record of what a container changed: a 0/0
character device is a deletion (whiteout), a directory with
trusted.overlay.opaque=y replaced the image's directory of that name.  The
walk follows moby's `changes()` (pkg/archive/changes.go): lexical order,
a path that exists in the image is Modified (directories only when size,
mode or mtime differ), otherwise Added; the parent of an Added or Deleted
path is reported Modified once.  Unlike moby's per-layer os.Stat, "exists in
the image" is the merged view of the layers (whiteouts and opaque
directories of lower layers honoured), and an opaque directory reports each
image entry it hides as Deleted.

Docker never shows the mount points its init layer creates (/etc/hosts,
/dev, /proc, ...).  Here the runtime creates them in the upper dir, so they
are skipped, and a directory that holds one is compared without its mtime
and size (creating the stub changed those).
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.engine.fsops_tar import OPAQUE_XATTR, is_whiteout

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

    def lstat(self, path: str) -> os.stat_result | None:
        comps = [c for c in path.split("/") if c]
        for layer in self.lowers:
            st, hidden = self._in_layer(layer, comps)
            if st is not None or hidden:
                return st
        return None

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


def _same_dir(a: os.stat_result, b: os.stat_result, strict: bool) -> bool:
    if a.st_mode != b.st_mode:
        return False
    if not strict:
        return a.st_uid == b.st_uid and a.st_gid == b.st_gid
    # moby's sameFsTime: equal seconds and nanoseconds
    return a.st_size == b.st_size and a.st_mtime_ns == b.st_mtime_ns


def compute_changes(upper: Path, lowers: list[str], skips: Skips) -> list[dict[str, Any]]:
    """Docker's `[{Path, Kind}]` for the upper dir against the image layers."""
    lower = LowerView(lowers)
    changes: list[dict[str, Any]] = []
    changed_dirs: set[str] = set()

    def record(path: str, kind: int, is_dir: bool) -> None:
        if is_dir:
            changed_dirs.add(path)
        if kind in (CHANGE_ADD, CHANGE_DELETE):
            parent = posixpath.dirname(path)
            if parent != "/" and parent not in changed_dirs:
                changes.append({"Path": parent, "Kind": CHANGE_MODIFY})
                changed_dirs.add(parent)
        changes.append({"Path": path, "Kind": kind})

    def walk(dir_path: Path, cpath: str, hides_lower: bool) -> None:
        names = set(os.listdir(dir_path))
        deleted: set[str] = set()
        if hides_lower:
            deleted = lower.listdir(cpath) - names
        for name in sorted(names | deleted):
            child = posixpath.join(cpath, name)
            if skips(child):
                continue
            if name in deleted:
                record(child, CHANGE_DELETE, False)
                continue
            full = dir_path / name
            st = os.lstat(full)
            if is_whiteout(st):
                if not hides_lower:
                    record(child, CHANGE_DELETE, False)
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            low = lower.lstat(child)
            opaque = is_dir and _opaque(full)
            if low is None:
                record(child, CHANGE_ADD, is_dir)
            elif (is_dir and stat.S_ISDIR(low.st_mode) and not opaque and not hides_lower
                  and _same_dir(st, low, strict=child not in skips.ancestors)):
                pass                    # only a parent of changes: not changed itself
            else:
                record(child, CHANGE_MODIFY, is_dir)
            if is_dir:
                walk(full, child, hides_lower or (opaque and low is not None))

    walk(upper, "/", False)
    return changes
