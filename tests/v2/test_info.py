"""What the daemon says about a v2 host: `docker info` and `dockyard doctor`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_info_cgroup_v2(info):
    assert info["CgroupVersion"] == "2"
    # no systemd in the VM: cgroupfs is the driver (as dockerd would pick)
    assert info["CgroupDriver"] == "cgroupfs"
    for flag in ("MemoryLimit", "SwapLimit", "CpuCfsPeriod", "CpuCfsQuota", "CPUShares",
                 "CPUSet", "PidsLimit"):
        assert info[flag] is True, flag
    assert info["KernelMemory"] is False      # no kmem limits on v2
    assert info["OomKillDisable"] is False    # no memory.oom_control on v2
    assert "name=cgroupns" in info["SecurityOptions"]
    assert "WARNING: No swap limit support" not in info["Warnings"]
    assert info["KernelVersion"] == os.uname().release
    assert info["NCPU"] == os.cpu_count()


def test_cli_info_text(docker):
    out = docker.out("info")
    assert " Cgroup Driver: cgroupfs" in out
    assert " Cgroup Version: 2" in out
    assert "cgroupns" in out


def test_doctor_reports_v2(tmp_path):
    exec_root = Path("/run/dockyard-v2-doctor")
    res = subprocess.run([sys.executable, "-m", "dockyard.cli", "doctor", "--json",
                          "--exec-root", str(exec_root)],
                         check=False, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    cg = report["cgroups"]
    assert (cg["mode"], cg["version"]) == ("v2", 2)
    assert {"cpu", "cpuset", "io", "memory", "pids"} <= set(cg["controllers"])
    assert cg["unified_controllers"] == [] or cg["mode"] == "v2"
    for k in ("memory_limit", "swap_limit", "cpu_cfs_quota", "cpu_shares", "cpuset",
              "pids_limit", "blkio_throttle"):
        assert cg[k] is True, k
    assert report["default_runtime"]
    for name, rt in report["runtimes"].items():
        assert rt["can_create"], (name, rt)
        # the hybrid-host detour is not taken on v2
        assert "hybrid" not in rt.get("note", ""), (name, rt)
