"""What inspect and the create response report: Docker's stored HostConfig
(defaults included) and its warnings; daemon-wide default-ulimits."""

from __future__ import annotations

import json
import resource
import shutil
import tempfile
from pathlib import Path

import pytest
from hc_util import run_out

from tests.integration.conftest import start_daemon, stop_daemon

MB = 1 << 20


def _hc(daemon, name: str) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(daemon.out("inspect", "-f", "{{json .HostConfig}}", name))


def test_defaults_as_docker_stores_them(daemon, name):
    daemon.out("create", "--name", name, "busybox", "true")
    try:
        hc = _hc(daemon, name)
    finally:
        daemon.docker("rm", "-f", name)
    cgroup_v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    expected = {
        "NetworkMode": "bridge", "IpcMode": "private", "PidMode": "", "UTSMode": "",
        "UsernsMode": "", "CgroupnsMode": "private" if cgroup_v2 else "host",
        "ShmSize": 64 * MB, "Privileged": False, "ReadonlyRootfs": False, "OomScoreAdj": 0,
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, "AutoRemove": False,
        "LogConfig": {"Type": "json-file", "Config": {}}, "PortBindings": {},
        "ConsoleSize": [0, 0], "Memory": 0, "MemorySwap": 0, "MemoryReservation": 0,
        "MemorySwappiness": None, "NanoCpus": 0, "CpuShares": 0, "CpuPeriod": 0,
        "CpuQuota": 0, "CpusetCpus": "", "CpusetMems": "", "BlkioWeight": 0,
        "PidsLimit": None, "OomKillDisable": False, "Isolation": "", "CgroupParent": "",
        "ReadonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                          "/proc/sysrq-trigger"],
    }
    for key, value in expected.items():
        assert hc.get(key) == value, key
    assert hc["MaskedPaths"][:4] == ["/proc/acpi", "/proc/asound", "/proc/interrupts",
                                     "/proc/kcore"]
    assert "/sys/firmware" in hc["MaskedPaths"]
    assert hc["Runtime"] in ("crun", "runc")


def test_options_round_trip(daemon, name):
    daemon.out("create", "--name", name, "-m", "64m", "--memory-reservation", "32m",
               "--cpus", "0.5", "--pids-limit", "20", "--cpuset-cpus", "0", "--cpu-shares",
               "512", "--ulimit", "nofile=1024:2048", "--oom-score-adj", "500", "--read-only",
               "--tmpfs", "/run:size=1m", "--security-opt", "no-new-privileges",
               "--cap-drop", "ALL", "--cap-add", "chown", "--ipc", "shareable", "--pid", "host",
               "--uts", "host", "--cgroupns", "private", "--shm-size", "128m", "--sysctl",
               "net.ipv4.ip_forward=1", "--dns", "1.2.3.4", "--dns-search", "example.com",
               "--add-host", "foo:10.1.2.3", "--device", "/dev/null:/dev/mynull",
               "--init", "--privileged=false", "busybox", "true")
    try:
        hc = _hc(daemon, name)
    finally:
        daemon.docker("rm", "-f", name)
    assert (hc["Memory"], hc["MemoryReservation"], hc["MemorySwap"]) == (64 * MB, 32 * MB,
                                                                        128 * MB)
    assert (hc["NanoCpus"], hc["PidsLimit"], hc["CpusetCpus"], hc["CpuShares"]) == (
        500_000_000, 20, "0", 512)
    assert hc["Ulimits"] == [{"Name": "nofile", "Hard": 2048, "Soft": 1024}]
    assert hc["OomScoreAdj"] == 500 and hc["ReadonlyRootfs"] is True
    assert hc["Tmpfs"] == {"/run": "size=1m"}
    # dockerd adds label=disable for host PID (generateSecurityOpt)
    assert hc["SecurityOpt"] == ["no-new-privileges", "label=disable"]
    # the CLI normalises capability names before sending them
    assert hc["CapDrop"] == ["ALL"] and hc["CapAdd"] == ["CAP_CHOWN"]
    assert (hc["IpcMode"], hc["PidMode"], hc["UTSMode"], hc["CgroupnsMode"]) == (
        "shareable", "host", "host", "private")
    assert hc["ShmSize"] == 128 * MB and hc["Sysctls"] == {"net.ipv4.ip_forward": "1"}
    assert (hc["Dns"], hc["DnsSearch"], hc["ExtraHosts"]) == (
        ["1.2.3.4"], ["example.com"], ["foo:10.1.2.3"])
    assert hc["Devices"] == [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull",
                              "CgroupPermissions": "rwm"}]
    assert hc["Init"] is True


def test_privileged_inspect(daemon, name):
    daemon.out("create", "--name", name, "--privileged", "busybox", "true")
    try:
        hc = _hc(daemon, name)
    finally:
        daemon.docker("rm", "-f", name)
    assert hc["Privileged"] is True
    # no default masked/read-only paths for privileged containers
    assert not hc.get("MaskedPaths") and not hc.get("ReadonlyPaths")
    if not Path("/sys/fs/cgroup/cgroup.controllers").exists():
        assert hc["CgroupnsMode"] == "host"


def test_create_warnings(client):
    res = client.api.create_container(
        "busybox", "true", host_config={"KernelMemory": 8 * MB, "OomKillDisable": True})
    client.api.remove_container(res["Id"])
    assert ("OOM killer is disabled for the container, but no memory limit is set, this can "
            "result in the system running out of resources.") in res["Warnings"]
    assert any("kernel memory limit" in w for w in res["Warnings"])
    # with a limit, no oom warning
    res = client.api.create_container(
        "busybox", "true", host_config={"Memory": 64 * MB, "OomKillDisable": True})
    client.api.remove_container(res["Id"])
    assert not [w for w in res["Warnings"] or [] if "OOM killer" in w]


def test_cli_prints_create_warning(daemon, name):
    res = daemon.docker("create", "--name", name, "--oom-kill-disable", "busybox", "true")
    daemon.docker("rm", "-f", name)
    assert res.returncode == 0
    assert b"WARNING: OOM killer is disabled for the container" in res.stderr


def test_oom_kill_disable_applied(daemon):
    out = run_out(daemon, "-m", "32m", "--oom-kill-disable", "busybox", "cat",
                  "/sys/fs/cgroup/memory/memory.oom_control")
    assert "oom_kill_disable 1" in out


def test_default_ulimits_clamped_to_host_ceiling():
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no nofile ceiling on this host")
    base = Path(tempfile.mkdtemp(prefix="dockyard-hc-", dir="/var/tmp"))
    cfg = base / "daemon.json"
    cfg.write_text(json.dumps({"default-ulimits": {
        "nofile": {"Name": "nofile", "Soft": 1024, "Hard": hard * 100},
        "core": {"Name": "core", "Soft": 0, "Hard": 0}}}))
    d = start_daemon(base, ["--config-file", str(cfg)])
    try:
        out = d.out("run", "--rm", "busybox", "sh", "-c", "ulimit -Sn; ulimit -Hn; ulimit -Hc")
        assert out.split() == ["1024", str(hard), "0"]
        assert "default-ulimits nofile" in d.log() and "clamped" in d.log()
        # a container's own --ulimit replaces the daemon default of that name
        out = d.out("run", "--rm", "--ulimit", "nofile=512:1024", "busybox", "sh", "-c",
                    "ulimit -Hn")
        assert out.strip() == "1024"
    finally:
        stop_daemon(d)
        shutil.rmtree(d.exec_root, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)
