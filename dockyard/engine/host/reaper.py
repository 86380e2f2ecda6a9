"""Reap orphaned monitor and runtime processes.

The daemon is a child subreaper (cli.py), so conmons and runtime helpers
that daemonize reparent to it rather than to PID 1.  Most are reaped by the
code that waits for them; this sweeps up the rest (a conmon whose create
failed, a runtime process left by an exec) so no zombie outlives a second.
Children that asyncio is waiting for are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import warnings
from pathlib import Path

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
    for task in Path(f"/proc/{me}/task").iterdir():
        try:
            kids = (task / "children").read_text().split()
        except OSError:
            continue
        for k in kids:
            try:
                stat = Path(f"/proc/{k}/stat").read_text()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            state = stat[stat.rindex(")") + 2:].split()[0]
            if state == "Z":
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
    while True:
        await asyncio.sleep(interval)
        try:
            reap_once()
        except OSError as e:
            log.debug("reaper: %s", e)
