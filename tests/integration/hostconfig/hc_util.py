"""Helpers for the HostConfig integration tests: run a container and read what
it sees, and find what a container left on the host."""

from __future__ import annotations

import glob
import os
from pathlib import Path

CGROUP_PARENT = "dockyard"   # the daemon's default --cgroup-parent (/dockyard)


def run_out(daemon, *args: str, timeout: float = 60) -> str:  # type: ignore[no-untyped-def]
    """`docker run --rm ARGS` and its stdout; fails the test on a non-zero exit."""
    res = daemon.docker("run", "--rm", *args, timeout=timeout)
    assert res.returncode == 0, (f"docker run {' '.join(args)} failed ({res.returncode}): "
                                 f"{res.stderr.decode()}")
    return res.stdout.decode()


def status_line(text: str, key: str) -> str:
    """The value of `Key:` in a /proc/<pid>/status dump."""
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{key} not in {text!r}")


def traces_of(daemon, cid: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Everything a container may leave on the host, named by its ID."""
    found: list[str] = []
    if cid in daemon.out("ps", "-aq", "--no-trunc").split():
        found.append("container record")
    with open("/proc/self/mountinfo") as f:
        found += [f"mount {line.split()[4]}" for line in f if cid in line]
    if (daemon.exec_root / "netns" / cid).exists():
        found.append("netns")
    found += [f"cgroup {p}" for p in glob.glob(f"/sys/fs/cgroup/*/{CGROUP_PARENT}/{cid}")]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"conmon" in cmd.split(b"\0")[0] and cid.encode() in cmd:
            found.append(f"conmon {pid}")
    if (daemon.data_root / "containers" / cid).exists():
        found.append("container dir")
    return found


