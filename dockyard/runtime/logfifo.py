"""A container's log FIFO and the keeper process that holds it open.

conmon writes the container's k8s-file log into a FIFO that the daemon
drains (engine/logs/pump.py says why).  Data in a pipe lives only while
some process has the pipe open: conmon closes it when it exits, and the
daemon may be down at that moment, so a keeper (a sleeping process that
inherited one descriptor of the FIFO) holds it from before conmon starts
until the daemon has drained it after the run.  The keeper also means the
FIFO always has a reader, so conmon blocks on a full FIFO rather than
failing with EPIPE when the daemon is away.

The keeper is started through `sh -c '... &'` so it is not the daemon's
direct child: it outlives the daemon like conmon does, and asyncio keeps
no watcher for it (the daemon, a child subreaper, reaps it when it stops
it).  Its pid is in the bundle; whoever stops it first checks
that the process still holds this FIFO, so a reused pid is never killed.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import stat

# The keeper: catatonit's pause mode (a static binary of 700 KB resident,
# 48 KB of it its own), or sleep for 2**31 - 1 seconds.  It keeps only its
# stdio open, so the FIFO is its stdin; it never reads it.
KEEPERS = (("catatonit", "-P"), ("sleep", "2147483647"))


def make_fifo(path: str) -> int:
    """Create the FIFO (replacing anything else at `path`) and return a
    read-write descriptor of it to hand to the keeper.  It keeps the
    kernel's pipe size (64 KiB): 1 MiB made no difference to a flood's
    speed, and a full pipe's pages are kernel memory."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        os.mkfifo(path, 0o600)
    else:
        if not stat.S_ISFIFO(st.st_mode):
            os.unlink(path)
            os.mkfifo(path, 0o600)
    return os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)


def keeper_argv() -> list[str]:
    """A shell that, given the FIFO as its stdin, starts the keeper in the
    background with it, prints the keeper's pid and exits."""
    for name, arg in KEEPERS:
        path = shutil.which(name)
        if path:
            break
    else:
        path, arg = "sleep", KEEPERS[-1][1]
    # A background command's stdin is /dev/null unless redirected: keep the
    # FIFO as fd 3 (sh redirects only single-digit descriptors) and hand it on.
    script = f"exec 3<&0; {shlex.quote(path)} {arg} <&3 >/dev/null 2>&1 & echo $!"
    return [shutil.which("sh") or "/bin/sh", "-c", script]


def write_keeper_pid(pidfile: str, pid: int) -> None:
    tmp = pidfile + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{pid}\n")
    os.replace(tmp, pidfile)


def keeper_pid(pidfile: str, fifo: str) -> int | None:
    """The keeper's pid if it is alive and still holds `fifo`."""
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip() or 0)
    except (FileNotFoundError, ValueError):
        return None
    return pid if holds(pid, fifo) else None


def holds(pid: int, fifo: str) -> bool:
    """Process `pid` has `fifo` open."""
    if pid <= 0:
        return False
    try:
        want = os.stat(fifo)
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for name in fds:
        with contextlib.suppress(OSError):
            st = os.stat(f"/proc/{pid}/fd/{name}")
            if (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino):
                return True
    return False


def remove_pidfile(pidfile: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(pidfile)
