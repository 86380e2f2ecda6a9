"""Persistent network namespaces, one per container, under the exec root.

The engine creates the namespace before the container starts and hands its
path to the runtime, so a network driver can wire interfaces into it first.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from dockyard.errors import SystemError_
from dockyard.util.mount import MS_BIND, MS_PRIVATE, is_mountpoint, mount, umount


def prepare_netns_dir(directory: Path) -> None:
    """Namespace bind mounts must live on a private mount, or they would
    propagate into every container's mount namespace and pin it."""
    directory.mkdir(parents=True, exist_ok=True)
    if not is_mountpoint(str(directory)):
        mount(str(directory), str(directory), None, MS_BIND)
    mount(None, str(directory), None, MS_PRIVATE)


def release_netns_dir(directory: Path) -> list[str]:
    """Undo prepare_netns_dir for an engine that is gone: every namespace
    file left in the directory, then the directory's own bind mount.
    Returns what was removed."""
    removed = []
    if directory.is_dir():
        for entry in directory.iterdir():
            remove_netns(entry)
            removed.append(f"network namespace {entry.name[:12]}")
    if is_mountpoint(str(directory)):
        umount(str(directory))
        removed.append(f"mount {directory}")
    return removed


async def create_netns(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        "unshare", f"--net={path}", "ip", "link", "set", "lo", "up",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode != 0:
        await asyncio.to_thread(remove_netns, path)
        raise SystemError_(f"failed to create network namespace: {err.decode().strip()}")


def remove_netns(path: Path) -> None:
    umount(str(path))
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
