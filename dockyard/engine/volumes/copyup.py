"""Filling a new volume from the image: dockerd's copy-up (populateVolume).

When a container is created with a volume on a path the image holds a
directory at, and the volume is empty, the directory's content is copied
into it: every entry type, owners (shifted into the remapped range under
userns-remap), modes with set-id bits, xattrs, hardlinks, times, and the
directory's own owner and mode.  `nocopy` (`-v name:/path:nocopy`,
`volume-nocopy`) turns it off.  An anonymous volume (`-v /path`, VOLUME)
over a file of the image is Docker's error `cannot mount volume over
existing file`.

The image is read through a read-only overlay of its layers mounted for
the copy (nothing of the container is written; an image of one layer is
read from that layer's directory directly), and the path is resolved
inside it with `targets.resolve_target`, so a symlink in the image cannot
make the copy read from the host.  Synchronous; callers use a thread.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from dockyard.engine.volumes.targets import resolve_target
from dockyard.errors import InvalidParameter
from dockyard.util.safetar import DIR_FLAGS, open_dir_at
from dockyard.util.treecopy import copy_into

MapIds = Callable[[int, int], tuple[int, int]]


def is_empty(path: Path) -> bool:
    try:
        with os.scandir(path) as it:
            return next(it, None) is None
    except FileNotFoundError:
        return True


def copy_up(view_root: Path, dest: str, volume_path: Path, map_ids: MapIds | None,
            anonymous: bool, layer: bool = False) -> None:
    """`layer`: `view_root` is the image's only layer, read as the image."""
    root_fd = os.open(view_root, DIR_FLAGS)
    try:
        comps = resolve_target(root_fd, dest)
        try:
            parent = open_dir_at(root_fd, comps[:-1], DIR_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            return
        try:
            try:
                st = os.stat(comps[-1], dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                return
            if not stat.S_ISDIR(st.st_mode):
                if anonymous:
                    raise InvalidParameter(f"cannot mount volume over existing file, file "
                                           f"exists {dest}")
                return
            if not is_empty(volume_path):
                return
            src = os.open(comps[-1], DIR_FLAGS, dir_fd=parent)
            try:
                copy_into(src, volume_path, map_ids, from_layer=layer)
            finally:
                os.close(src)
        finally:
            os.close(parent)
    finally:
        os.close(root_fd)
