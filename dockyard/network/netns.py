"""Persistent network namespaces, one per container, under the exec root.

The engine creates the namespace before the container starts and hands its
path to the runtime, so a network driver can wire interfaces into it first.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import fcntl
import os
import socket
import struct
import threading
from pathlib import Path

from dockyard.errors import SystemError_
from dockyard.util.mount import MS_BIND, MS_PRIVATE, is_mountpoint, mount, umount

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.unshare.argtypes = [ctypes.c_int]


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
    """A new network namespace bound at `path`, its loopback up.

    Made in a thread of its own: the thread moves into a new namespace
    (unshare), binds it at `path`, sets `lo` up through a socket that lives
    there, and ends; the bind mount keeps the namespace.  No process is
    spawned for it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(exist_ok=True)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[BaseException | None] = loop.create_future()

    def work() -> None:
        error: BaseException | None = RuntimeError("the namespace thread failed")
        try:
            _enter_new_netns_and_bind(path)
            error = None
        except OSError as e:                 # handed to the awaiting task
            error = e
        finally:
            loop.call_soon_threadsafe(_settle, done, error)

    threading.Thread(target=work, name="netns", daemon=True).start()
    error = await done
    if error is not None:
        await asyncio.to_thread(remove_netns, path)
        raise SystemError_(f"failed to create network namespace: {error}")


def _settle(fut: asyncio.Future[BaseException | None], error: BaseException | None) -> None:
    if not fut.done():
        fut.set_result(error)


def _enter_new_netns_and_bind(path: Path) -> None:
    """Only ever in a thread that ends afterwards: it stays in the namespace."""
    if _libc.unshare(CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"unshare: {os.strerror(e)}")
    mount(f"/proc/self/task/{threading.get_native_id()}/ns/net", str(path), None, MS_BIND)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def remove_netns(path: Path) -> None:
    umount(str(path))
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
