"""Mounted views of a container's root filesystem, and streams that own one.

- running or paused: the overlay the engine mounted at `<container>/merged`;
- stopped, read-only work (export, stat, GET archive): a private read-only
  overlay with the upper dir as the top lower layer; it needs no workdir,
  so it never conflicts with a start or another reader;
- stopped, writes (PUT archive): the real overlay (upper + work), mounted
  under the container's lock by the caller.

Temporary views are `fsview-*` directories inside the container's
directory; `unmount_stale_views` removes what a crash left mounted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from dataclasses import dataclass
from pathlib import Path

from dockyard.util.mount import MS_BIND, MS_RDONLY, mount, mount_overlay, umount
from dockyard.util.threadgen import batched_in_thread

VIEW_PREFIX = "fsview-"


@dataclass
class View:
    """A mounted view of a container's root; a temporary one is unmounted after use."""

    root: Path
    temporary: bool
    mounts: bool = False     # the container's volumes and binds are bound in

    def open_root(self) -> int:
        return os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def mount_view(target: Path, lowers: list[str], upper: Path, work: Path | None) -> None:
    target.mkdir(mode=0o700)
    try:
        if work is None:
            mount_overlay([str(upper), *lowers], None, None, str(target), MS_RDONLY)
        else:
            mount_overlay(lowers, str(upper), str(work), str(target))
    except BaseException:
        target.rmdir()
        raise


def bind_view(source: Path, target: Path) -> None:
    """A temporary view of a running container's root (its mounted overlay),
    to bind the container's volumes into without touching the original."""
    target.mkdir(mode=0o700)
    try:
        mount(str(source), str(target), None, MS_BIND)
    except BaseException:
        target.rmdir()
        raise


def unmount_view(target: Path) -> None:
    try:
        umount(str(target))
    finally:
        with contextlib.suppress(OSError):
            target.rmdir()


class ViewStream:
    """An async byte stream over a blocking tar generator that owns a view.

    A plain async generator's `finally` never runs if it is closed before
    its first step (a client gone before the first chunk), which would leave
    a temporary mount behind; `aclose` here always releases the view."""

    def __init__(self, gen: Generator[bytes, None, None], view: View,
                 close_view: Callable[[View], Awaitable[None]]) -> None:
        self._gen = gen
        self._view = view
        self._close_view = close_view
        self._it: AsyncGenerator[bytes, None] | None = None
        self._closed = False

    def __aiter__(self) -> ViewStream:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        if self._it is None:
            self._it = batched_in_thread(self._gen)
        try:
            return await self._it.__anext__()
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._it is not None:
                await self._it.aclose()
            else:
                await asyncio.to_thread(self._gen.close)
        finally:
            await self._close_view(self._view)


def unmount_stale_views(container_dir: Path) -> None:
    """Temporary views still mounted (a crash, a client gone at the wrong
    moment): unmount them before anything deletes the directory, or the
    delete would reach through the mount into the container's layers."""
    for view in container_dir.glob(VIEW_PREFIX + "*"):
        umount(str(view))
        with contextlib.suppress(OSError):
            view.rmdir()
