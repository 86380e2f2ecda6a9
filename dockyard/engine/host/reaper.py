"""Reap orphaned monitor and runtime processes.

The daemon is a child subreaper (cli.py), so conmons and runtime helpers
that daemonize reparent to it rather than to PID 1.  Most are reaped by the
code that waits for them; this sweeps up the rest (a conmon whose create
failed, a runtime process left by an exec) so no zombie outlives a second.
Children that asyncio is waiting for are never touched.  Sweeps follow
SIGCHLD instead of a clock, so an idle daemon does not look at its
children at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import warnings

from dockyard.util.kernelfile import read_small

log = logging.getLogger("dockyard.reaper")

_ORPHAN_NAMES = {"conmon", "crun", "runc", "runsc", "catatonit", "unshare", "aardvark-dns"}


def _asyncio_children() -> set[int] | None:
    """Pids asyncio's child watcher waits on, or None if we cannot tell."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            watcher = asyncio.get_child_watcher()
    except (NotImplementedError, RuntimeError, AttributeError):
        return None
    threads = getattr(watcher, "_threads", None)
    if threads is None:
        return None
    return set(threads)


def zombie_children() -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    me = os.getpid()
    for task in os.listdir(f"/proc/{me}/task"):
        kids = read_small(f"/proc/{me}/task/{task}/children")
        for k in kids.split() if kids else ():
            stat = read_small(f"/proc/{int(k)}/stat")
            if stat is None:
                continue
            end = stat.rindex(b")")
            if stat[end + 2:end + 3] == b"Z":
                comm = stat[stat.index(b"(") + 1:end].decode(errors="replace")
                out.append((int(k), comm))
    return out


def reap_once() -> int:
    known = _asyncio_children()
    if known is None:
        return 0
    n = 0
    for pid, comm in zombie_children():
        if pid in known or comm not in _ORPHAN_NAMES:
            continue
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
            n += 1
    return n


async def reaper_loop(interval: float = 1.0) -> None:
    """Sweep when a child has exited (SIGCHLD), at most once per `interval`
    while they keep exiting.  A sweep reads every child's state, and the
    children are the conmons and log keepers of all running containers, so
    a daemon with none exiting does no work at all rather than a sweep a
    second."""
    loop = asyncio.get_running_loop()
    exited = asyncio.Event()
    try:
        loop.add_signal_handler(signal.SIGCHLD, exited.set)
    except (ValueError, RuntimeError, NotImplementedError):  # not the main thread
        await _sweep_every(interval)
        return
    try:
        exited.set()            # what exited before we listened
        while True:
            await exited.wait()
            # a burst of exits is one sweep, once their own waiters (asyncio's
            # child watcher, the exit monitor) have had the time to reap them
            await asyncio.sleep(interval)
            exited.clear()
            if any_zombie():
                _sweep()
    finally:
        loop.remove_signal_handler(signal.SIGCHLD)


def any_zombie() -> bool:
    """Some child has exited and is not reaped yet (it is left as it is):
    one system call, where a sweep reads the state of every child."""
    try:
        return os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:    # no children at all
        return False


async def _sweep_every(interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        _sweep()


def _sweep() -> None:
    try:
        reap_once()
    except OSError as e:
        log.debug("reaper: %s", e)
