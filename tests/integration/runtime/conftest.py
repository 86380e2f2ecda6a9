"""Fixtures for real containers under conmon with runc and crun.

Every container a test creates is registered with the harness, which
removes it (runtime state, conmon, cgroups, files) even when the test fails,
then checks nothing is left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from dockyard.runtime import conmon, runtimes
from dockyard.runtime.runtimes import OCIRuntime

RUNTIME_NAMES = ("runc", "crun")


def _skip_reason(name: str) -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if shutil.which(name) is None:
        return f"{name} not installed"
    if shutil.which("conmon") is None:
        return "conmon not installed"
    if runtimes.find_busybox() is None:
        return "busybox-static not installed"
    return None


@dataclass
class Harness:
    runtime: OCIRuntime
    settings: conmon.ConmonSettings
    tmp: Path
    cgroup_parent: str
    created: list[str] = field(default_factory=list)
    conmon_pids: list[int] = field(default_factory=list)

    def new_id(self) -> str:
        return f"dyt-{uuid.uuid4().hex[:12]}"

    def bundle(self, cid: str, args: list[str], *, tty: bool = False,
               resources: dict | None = None) -> conmon.ContainerLayout:
        """A busybox bundle with the test's own minimal config.json."""
        bdir = self.tmp / cid
        runtimes.make_probe_bundle(str(bdir), runtimes.find_busybox() or "",
                                   args, f"{self.cgroup_parent}/{cid}")
        cfg_path = bdir / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["process"]["terminal"] = tty
        if tty:
            cfg["process"]["consoleSize"] = {"height": 24, "width": 80}
        if resources:
            cfg["linux"]["resources"] = resources
        cfg_path.write_text(json.dumps(cfg))
        return conmon.ContainerLayout.in_bundle(str(bdir))

    async def create(self, args: list[str], *, io: conmon.ContainerIO | None = None,
                     resources: dict | None = None) -> conmon.MonitoredContainer:
        io = io or conmon.ContainerIO()
        cid = self.new_id()
        layout = self.bundle(cid, args, tty=io.tty, resources=resources)
        self.created.append(cid)
        c = await conmon.create_container(self.runtime, self.settings, cid, layout, io)
        self.conmon_pids.append(c.conmon_pid)
        return c

    def cleanup(self) -> list[str]:
        """Remove everything; returns a list of leftovers found (should be empty)."""
        problems: list[str] = []
        for cid in self.created:
            subprocess.run(self.runtime.command("delete", "--force", cid),
                           check=False, capture_output=True, timeout=30)
        for pid in self.conmon_pids:
            if conmon.process_alive(pid) and not _is_zombie(pid):
                problems.append(f"conmon {pid} still running")
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        listed = subprocess.run(self.runtime.command("list", "-q"), check=False, capture_output=True,
                                text=True, timeout=30).stdout.split()
        leftovers = [c for c in listed if c in self.created]
        if leftovers:
            problems.append(f"runtime state left: {leftovers}")
        runtimes.remove_empty_cgroup(self.cgroup_parent)
        top = self.cgroup_parent.strip("/").split("/")[0]
        for h in Path("/sys/fs/cgroup").iterdir():
            # Only the shared top dir itself, and only if empty: another
            # test run may be using it.
            with contextlib.suppress(OSError):
                (h / top).rmdir()
        for h in Path("/sys/fs/cgroup").iterdir():
            if (h / self.cgroup_parent.strip("/")).exists():
                problems.append(f"cgroup left in {h}")
        mounts = Path("/proc/self/mountinfo").read_text()
        if str(self.tmp) in mounts:
            problems.append("mounts left under the test dir")
        shutil.rmtree(self.tmp, ignore_errors=True)
        return problems


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@pytest.fixture(params=RUNTIME_NAMES)
def harness(request):
    name = request.param
    reason = _skip_reason(name)
    if reason:
        pytest.skip(reason)
    tmp = Path(tempfile.mkdtemp(prefix="dyt-", dir="/tmp"))
    found = runtimes.detect_runtimes(None, str(tmp / "state"))
    rt = found[name]
    if name == "crun" and runtimes.is_hybrid_cgroup_host():
        rt = replace(rt, create_path=runtimes.write_crun_wrapper(str(tmp / "exec"), rt.path))
    h = Harness(rt, conmon.ConmonSettings.detect(), tmp,
                f"/dockyard-test/{uuid.uuid4().hex[:8]}")
    failed = False
    try:
        yield h
    except BaseException:
        failed = True
        raise
    finally:
        problems = h.cleanup()
        if problems and not failed:
            pytest.fail(f"leftovers: {problems}")

