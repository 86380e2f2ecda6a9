"""Resource limits (HostConfig.Resources): the value reaches the container's
cgroup, the kernel enforces it, and inspect reports it.

On a v1 (or hybrid) host the container's cgroupns is the host's, and the
runtime binds the container's own cgroup directories at
/sys/fs/cgroup/<controller>, so a container reads its limits where Docker
users expect them.
"""

from __future__ import annotations

import glob
import subprocess
import time
from pathlib import Path

import pytest
from hc_util import run_out

CG = "/sys/fs/cgroup"


@pytest.mark.parametrize("runtime", ["crun", "runc"])
def test_memory_cpus_pids_visible_in_cgroup(daemon, runtime):
    out = run_out(daemon, "--runtime", runtime, "-m", "64m", "--cpus", "0.5",
                  "--pids-limit", "20", "busybox", "cat",
                  f"{CG}/memory/memory.limit_in_bytes", f"{CG}/cpu/cpu.cfs_quota_us",
                  f"{CG}/pids/pids.max")
    assert out.split() == ["67108864", "50000", "20"]


def test_memory_hog_is_oom_killed(daemon, name):
    res = daemon.docker("run", "--name", name, "-m", "16m", "busybox", "sh", "-c",
                        "x=a; while true; do x=$x$x; done", timeout=60)
    assert res.returncode == 137, res.stderr.decode()
    state = daemon.out("inspect", "-f", "{{.State.OOMKilled}} {{.State.ExitCode}}", name)
    assert state.split() == ["true", "137"]
    daemon.docker("rm", "-f", name)


def test_fork_loop_cannot_pass_pids_limit(daemon, name):
    # An inner shell forks 30 sleeps against a limit of 10 and gives up at
    # the first failed fork; the outer one (exec'ing its last command) keeps
    # the container alive while the host reads the cgroup.
    cid = daemon.out("run", "-d", "--name", name, "--pids-limit", "10", "busybox", "sh", "-c",
                     "sh -c 'for i in $(seq 30); do sleep 5 & done'; exec sleep 5").strip()
    try:
        pids = Path(f"{CG}/pids/dockyard/{cid}")
        deadline = time.time() + 5
        while time.time() < deadline and "max 0" in (pids / "pids.events").read_text():
            time.sleep(0.05)
        assert (pids / "pids.max").read_text().strip() == "10"
        assert int((pids / "pids.current").read_text()) <= 10
        assert int((pids / "pids.events").read_text().split()[1]) > 0  # forks refused
    finally:
        daemon.docker("rm", "-f", name)


def test_cpuset_and_shares(daemon):
    out = run_out(daemon, "--cpuset-cpus", "0", "--cpu-shares", "512", "busybox", "sh", "-c",
                  f"cat {CG}/cpuset/cpuset.cpus {CG}/cpu/cpu.shares; nproc")
    assert out.split() == ["0", "512", "1"]


def test_cpu_period_quota(daemon):
    out = run_out(daemon, "--cpu-period", "50000", "--cpu-quota", "25000", "busybox", "cat",
                  f"{CG}/cpu/cpu.cfs_period_us", f"{CG}/cpu/cpu.cfs_quota_us")
    assert out.split() == ["50000", "25000"]


def test_memory_reservation_and_swap(daemon):
    out = run_out(daemon, "-m", "64m", "--memory-reservation", "32m", "--memory-swap", "128m",
                  "busybox", "cat", f"{CG}/memory/memory.soft_limit_in_bytes",
                  f"{CG}/memory/memory.memsw.limit_in_bytes")
    assert out.split() == [str(32 << 20), str(128 << 20)]


def test_memory_swap_defaults_to_twice_memory(daemon, name):
    daemon.out("create", "--name", name, "-m", "32m", "busybox", "true")
    try:
        hc = daemon.out("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}",
                        name)
        assert hc.split() == [str(32 << 20), str(64 << 20)]
    finally:
        daemon.docker("rm", "-f", name)


def test_memory_swappiness(daemon):
    out = run_out(daemon, "--memory-swappiness", "10", "busybox", "cat",
                  f"{CG}/memory/memory.swappiness")
    assert out.strip() == "10"


def _host_disk() -> tuple[str, str]:
    """(/dev/NAME, MAJ:MIN) of the first real disk, as lsblk lists it."""
    out = subprocess.run(["lsblk", "-dno", "NAME,MAJ:MIN,TYPE"], capture_output=True,
                         text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == "disk" and not parts[0].startswith(("zram", "loop")):
            return f"/dev/{parts[0]}", parts[1]
    pytest.skip("no block disk on this host")


def test_device_read_bps_and_iops(daemon):
    dev, majmin = _host_disk()
    out = run_out(daemon, "--device-read-bps", f"{dev}:1mb", "--device-write-iops",
                  f"{dev}:100", "busybox", "cat", f"{CG}/blkio/blkio.throttle.read_bps_device",
                  f"{CG}/blkio/blkio.throttle.write_iops_device")
    assert out.split() == [majmin, "1048576", majmin, "100"]


def test_shm_size(daemon):
    out = run_out(daemon, "--shm-size", "128m", "busybox", "df", "-k", "/dev/shm")
    assert out.splitlines()[1].split()[1] == "131072"
    default = run_out(daemon, "busybox", "df", "-k", "/dev/shm")
    assert default.splitlines()[1].split()[1] == "65536"


def test_ulimit(daemon):
    out = run_out(daemon, "--ulimit", "nofile=1024:2048", "busybox", "sh", "-c",
                  "ulimit -Sn; ulimit -Hn")
    assert out.split() == ["1024", "2048"]


def test_oom_score_adj(daemon):
    assert run_out(daemon, "--oom-score-adj", "500", "busybox", "cat",
                   "/proc/self/oom_score_adj").strip() == "500"


def test_cgroup_dirs_removed_after_exit(daemon, name):
    cid = daemon.out("run", "-d", "--name", name, "-m", "32m", "busybox", "true").strip()
    daemon.out("wait", name)
    daemon.out("rm", name)
    assert glob.glob(f"{CG}/*/dockyard/{cid}") == []
