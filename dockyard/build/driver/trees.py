"""Image file systems as context trees (for `COPY --from`), and the build
cache index.

`image_tree` mounts an image's layers read-only under the build's own
directory (one layer needs no mount) and records every entry, never
following a symlink, so COPY --from resolves and hashes its sources with
the same rules as the context.  `CacheIndex` maps step keys to the images
they made, in one JSON file written atomically.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dockyard.build import context as ctx
from dockyard.util.atomic import atomic_write_json
from dockyard.util.fstree import DIR, LEAF, TreeWalk
from dockyard.util.mount import MS_RDONLY, mount_overlay, umount


@contextlib.contextmanager
def image_root(lowers: list[str], where: Path) -> Iterator[Path | None]:
    """The image's merged tree (None for no layers), mounted for the block."""
    if not lowers:
        yield None
        return
    if len(lowers) == 1:
        yield Path(lowers[0])
        return
    where.mkdir(mode=0o700)
    try:
        mount_overlay(lowers, None, None, str(where), MS_RDONLY)
        try:
            yield where
        finally:
            umount(str(where))
    finally:
        with contextlib.suppress(OSError):
            where.rmdir()


def image_tree(root: Path | None) -> ctx.ContextTree:
    """Every entry of an image's tree, data referenced by host path."""
    tree = ctx.ContextTree()
    if root is None:
        return tree
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        walk = TreeWalk(fd, sort=True)
        for e in walk:
            if e.kind not in (DIR, LEAF):
                continue
            path = walk.path_of(e.name) if e.kind == LEAF else "/".join(walk.path)
            st = e.st
            common: dict[str, Any] = {"mode": st.st_mode & 0o7777, "uid": st.st_uid,
                                      "gid": st.st_gid, "mtime": int(st.st_mtime)}
            if e.kind == DIR:
                tree.add(ctx.Entry(path, ctx.DIR, **common))
            elif stat.S_ISREG(st.st_mode):
                tree.add(ctx.Entry(path, ctx.FILE, size=st.st_size, ref=f"{root}/{path}",
                                   **common))
            elif stat.S_ISLNK(st.st_mode):
                link = os.readlink(e.name, dir_fd=e.fd)
                tree.add(ctx.Entry(path, ctx.SYMLINK, linkname=link, **common))
            elif stat.S_ISFIFO(st.st_mode):
                tree.add(ctx.Entry(path, ctx.FIFO, **common))
    finally:
        os.close(fd)
    return tree


class CacheIndex:
    """step key -> image id, with when each entry was made and last used."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        try:
            data = json.loads(path.read_text())
            if isinstance(data, dict) and isinstance(data.get("entries"), dict):
                self.entries = data["entries"]
        except (OSError, ValueError):
            pass
        self._dirty = False

    def get(self, key: str) -> str | None:
        e = self.entries.get(key)
        if e is None:
            return None
        e["used"] = int(time.time())
        self._dirty = True
        return str(e.get("image", ""))

    def put(self, key: str, image_id: str) -> None:
        now = int(time.time())
        self.entries[key] = {"image": image_id, "created": now, "used": now}
        self._dirty = True

    def forget(self, image_ids: set[str]) -> None:
        before = len(self.entries)
        self.entries = {k: v for k, v in self.entries.items() if v.get("image") not in image_ids}
        self._dirty = self._dirty or len(self.entries) != before

    def images(self) -> dict[str, dict[str, Any]]:
        """image id -> its newest entry."""
        out: dict[str, dict[str, Any]] = {}
        for e in self.entries.values():
            img = str(e.get("image", ""))
            if img not in out or e.get("used", 0) > out[img].get("used", 0):
                out[img] = e
        return out

    def save(self) -> None:
        if self._dirty:
            atomic_write_json(self.path, {"entries": self.entries}, 0o600)
            self._dirty = False
