"""`dockyard cleanup` after an engine stopped and its containers' processes
were killed without it: their empty cgroup directories go, in every
hierarchy, under the default parent and a container's own, and so do the
processes that held their log FIFOs; a container still running keeps
both."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dockyard.runtime.runtimes import remove_empty_cgroup
from tests.integration.conftest import start_daemon, stop_daemon

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_dirs(rel: str) -> list[Path]:
    rel = rel.strip("/")
    hierarchies = [CGROUP_ROOT, *(p for p in CGROUP_ROOT.iterdir() if p.is_dir())]
    return [h / rel for h in hierarchies if (h / rel).is_dir()]


def fifo_holders(fifo: Path) -> list[int]:
    """Processes with the container's log FIFO open."""
    want = os.stat(fifo)
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                st = os.stat(f"/proc/{pid}/fd/{fd}")
                if (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino):
                    found.append(int(pid))
                    break
        except OSError:
            continue
    return found


def wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} still there")


def test_cleanup_removes_the_empty_cgroups_of_a_stopped_engines_containers():
    base = Path(tempfile.mkdtemp(prefix="dockyard-it-", dir="/var/tmp"))
    parent = f"/dy-cleanup-{base.name[-8:]}"
    d = start_daemon(base)
    try:
        killed = d.out("run", "-d", "busybox", "sleep", "600").strip()
        own = d.out("run", "-d", "--cgroup-parent", parent, "busybox", "sleep", "600").strip()
        alive = d.out("run", "-d", "busybox", "sleep", "600").strip()
        paths = {cid: f"/dockyard/{cid}" for cid in (killed, alive)}
        paths[own] = f"{parent}/{own}"
        for cid, rel in paths.items():
            assert cgroup_dirs(rel), f"{cid[:12]} has no cgroup at {rel}"
        pids = {cid: int(d.out("inspect", "-f", "{{.State.Pid}}", cid)) for cid in paths}
        d.proc.terminate()                       # containers outlive the engine
        d.proc.wait(15)
        for cid in (killed, own):               # and these end without it
            os.kill(pids[cid], signal.SIGKILL)
            wait_gone(pids[cid])
        for cid in (killed, own):               # their monitors see the exit and go
            monitor = d.exec_root / "bundles" / cid / "conmon.pid"
            wait_gone(int(monitor.read_text()))
        out = subprocess.run(
            [sys.executable, "-m", "dockyard.cli", "cleanup", "--data-root", str(d.data_root),
             "--exec-root", str(d.exec_root)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        fifos = {cid: d.data_root / "containers" / cid / "conmon.fifo" for cid in paths}
        for cid in (killed, own):
            assert cgroup_dirs(paths[cid]) == [], out.stdout
            assert f"cgroup /sys/fs/cgroup/memory{paths[cid]}" in out.stdout
            assert fifo_holders(fifos[cid]) == [], out.stdout
        assert out.stdout.count("removed log keeper") == 2, out.stdout
        assert cgroup_dirs(paths[alive]), "a running container's cgroup was removed"
        assert len(fifo_holders(fifos[alive])) >= 2, "its keeper and monitor hold the FIFO"
        # the engine back on its data root: the running one is still its own
        d = start_daemon(base)
        assert d.out("inspect", "-f", "{{.State.Status}}", alive).strip() == "running"
        assert d.out("inspect", "-f", "{{.State.Status}}", killed).strip() == "exited"
    finally:
        if d.proc.poll() is not None:
            d = start_daemon(base)              # to remove what is left through it
        stop_daemon(d)
        remove_empty_cgroup(parent)
