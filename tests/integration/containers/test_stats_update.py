"""Issue 5 items 1-4: stats, top, update and pause through the real CLI and docker-py.

Cgroup limits are read from the host's cgroup files of the container
(/sys/fs/cgroup/<controller>/dockyard/<id>/ on this v1/hybrid host, or the
one unified directory on a v2 host).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import docker
import pytest

BUSY = ["sh", "-c", "while :; do :; done"]
SLEEP = ["sleep", "300"]


def _cgroup_file(cid: str, controller: str, v1_name: str, v2_name: str) -> str:
    """Read one limit file of the container's cgroup on either cgroup version."""
    v1 = Path("/sys/fs/cgroup") / controller / "dockyard" / cid / v1_name
    if v1.exists():
        return v1.read_text().strip()
    return (Path("/sys/fs/cgroup/dockyard") / cid / v2_name).read_text().strip()


def _is_v1() -> bool:
    return Path("/sys/fs/cgroup/memory").is_dir()


def _mem_total() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal")


@pytest.fixture
def running(daemon, name):
    """Start a container from args; removed afterwards."""
    started: list[str] = []

    def start(*args: str, cmd: list[str] = SLEEP) -> str:
        cid = daemon.out("run", "-d", "--name", name, *args, "busybox", *cmd).strip()
        started.append(cid)
        return cid

    yield start
    for cid in started:
        daemon.docker("rm", "-f", cid)


# ------------------------------------------------------------------ stats

def test_stats_no_stream_busy_loop_half_cpu(daemon, running, name):
    running("--cpus", "0.5", "-m", "64m", cmd=BUSY)
    time.sleep(1.5)             # let the quota settle in
    out = daemon.out("stats", "--no-stream", "--format", "{{json .}}", name, timeout=30)
    row = json.loads(out)
    cpu = float(row["CPUPerc"].rstrip("%"))
    assert 35 <= cpu <= 65, row
    used, limit = (s.strip() for s in row["MemUsage"].split("/"))
    assert limit == "64MiB", row
    assert used.endswith(("B", "KiB", "MiB")), row
    assert row["PIDs"] == "1", row
    rx, tx = (s.strip() for s in row["NetIO"].split("/"))   # eth0 on the default bridge
    assert rx.endswith("B") and tx.endswith("B"), row
    assert "/" in row["BlockIO"]
    # the plain table too, as a user sees it
    table = daemon.out("stats", "--no-stream", name, timeout=30)
    assert "64MiB" in table and name in table


def test_stats_shape_and_host_memory_limit(client, running):
    cid = running()
    t0 = time.monotonic()
    s = client.api.stats(cid, stream=False)
    assert 0.5 < time.monotonic() - t0 < 3.5       # two samples ~1 s apart
    assert s["id"] == cid and s["name"].startswith("/") and s["os_type"] == "linux"
    for key in ("read", "preread", "pids_stats", "blkio_stats", "num_procs", "storage_stats",
                "cpu_stats", "precpu_stats", "memory_stats"):
        assert key in s, key
    assert s["num_procs"] == 0
    assert s["preread"] != "0001-01-01T00:00:00Z"
    assert s["precpu_stats"]["system_cpu_usage"] < s["cpu_stats"]["system_cpu_usage"]
    assert s["cpu_stats"]["online_cpus"] == os.cpu_count()
    assert s["memory_stats"]["limit"] == _mem_total()      # no limit: host RAM
    assert s["memory_stats"]["usage"] > 0
    assert ("total_inactive_file" if _is_v1() else "inactive_file") in s["memory_stats"]["stats"]
    assert s["pids_stats"]["current"] == 1
    assert set(s["blkio_stats"]) >= {"io_service_bytes_recursive", "io_serviced_recursive"}


def test_stats_one_shot_is_immediate(client, running):
    cid = running("--pids-limit", "50")
    t0 = time.monotonic()
    s = client.api.stats(cid, stream=False, one_shot=True)
    assert time.monotonic() - t0 < 0.5
    assert s["preread"] == "0001-01-01T00:00:00Z"
    assert s["precpu_stats"]["cpu_usage"]["total_usage"] == 0
    assert s["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert s["pids_stats"] == {"current": 1, "limit": 50}


def test_stats_stream_precpu_is_previous_sample(client, running):
    cid = running()
    gen = client.api.stats(cid, stream=True, decode=True)
    first, second, third = next(gen), next(gen), next(gen)
    gen.close()
    assert first["precpu_stats"]["cpu_usage"]["total_usage"] == 0
    assert first["preread"] == "0001-01-01T00:00:00Z"
    assert second["precpu_stats"] == first["cpu_stats"]
    assert second["preread"] == first["read"]
    assert third["precpu_stats"] == second["cpu_stats"]


def test_stats_two_streaming_clients_share(client, running):
    cid = running()
    a = client.api.stats(cid, stream=True, decode=True)
    b = client.api.stats(cid, stream=True, decode=True)
    next(a), next(b)
    sa, sb = next(a), next(b)
    a.close()
    b.close()
    # one sampler for both clients: the same reading reaches both
    assert abs(sa["cpu_stats"]["system_cpu_usage"] - sb["cpu_stats"]["system_cpu_usage"]) \
        <= 2 * 10**9 * os.cpu_count()


def test_stats_of_stopped_container_is_zeroed(daemon, client, name):
    cid = daemon.out("create", "--name", name, "busybox", "true").strip()
    try:
        s = client.api.stats(cid, stream=False)
        assert s["id"] == cid and s["name"] == "/" + name and s["os_type"] == "linux"
        assert s["read"] == "0001-01-01T00:00:00Z"
        assert s["memory_stats"] == {} and s["pids_stats"] == {}
        assert s["cpu_stats"]["cpu_usage"]["total_usage"] == 0
        out = daemon.out("stats", "--no-stream", "--format", "{{json .}}", name, timeout=30)
        row = json.loads(out)
        assert row["CPUPerc"] == "0.00%" and row["PIDs"] == "0"
    finally:
        daemon.docker("rm", "-f", cid)


def test_stats_unknown_container_404(client):
    with pytest.raises(docker.errors.NotFound):
        client.api.stats("no-such-container", stream=False)


# ------------------------------------------------------------------ top

def test_top_default_and_ps_args(daemon, client, running):
    cid = running()
    top = client.api.top(cid)
    assert top["Titles"][:3] == ["UID", "PID", "PPID"]
    assert len(top["Processes"]) == 1
    assert top["Processes"][0][-1] == "sleep 300"
    out = daemon.out("top", cid, "-o", "pid,comm")
    lines = out.splitlines()
    assert lines[0].split() == ["PID", "COMMAND"]
    assert [ln.split()[1] for ln in lines[1:]] == ["sleep"]
    aux = client.api.top(cid, ps_args="aux")
    assert "%CPU" in aux["Titles"] and len(aux["Processes"]) == 1


def test_top_errors(daemon, client, name):
    cid = daemon.out("create", "--name", name, "busybox", "true").strip()
    try:
        with pytest.raises(docker.errors.APIError) as e:
            client.api.top(cid)
        assert e.value.status_code == 409
        assert f"container {cid} is not running" in str(e.value)
    finally:
        daemon.docker("rm", "-f", cid)


def test_top_rejects_renamed_pid_column(client, running):
    cid = running()
    with pytest.raises(docker.errors.APIError) as e:
        client.api.top(cid, ps_args="-o user=PID")
    assert 'specifying "user=PID" is not allowed' in str(e.value)


# ------------------------------------------------------------------ update

def test_update_live_limits_visible_at_once(daemon, running, name):
    cid = running()
    pid_before = daemon.out("inspect", "-f", "{{.State.Pid}}", name).strip()
    daemon.out("update", "--memory", "128m", "--memory-swap", "256m", "--cpus", "1",
               "--pids-limit", "40", name)
    assert _cgroup_file(cid, "memory", "memory.limit_in_bytes", "memory.max") == str(128 << 20)
    if _is_v1():
        assert _cgroup_file(cid, "memory", "memory.memsw.limit_in_bytes", "") == str(256 << 20)
        assert _cgroup_file(cid, "cpu", "cpu.cfs_quota_us", "") == "100000"
        assert _cgroup_file(cid, "cpu", "cpu.cfs_period_us", "") == "100000"
    else:
        assert _cgroup_file(cid, "", "", "cpu.max") == "100000 100000"
    assert _cgroup_file(cid, "pids", "pids.max", "pids.max") == "40"
    hc = json.loads(daemon.out("inspect", name))[0]
    assert hc["HostConfig"]["Memory"] == 128 << 20
    assert hc["HostConfig"]["MemorySwap"] == 256 << 20
    assert hc["HostConfig"]["NanoCpus"] == 10**9
    assert hc["HostConfig"]["PidsLimit"] == 40
    assert hc["State"]["Status"] == "running" and str(hc["State"]["Pid"]) == pid_before
    # stats sees the new limit
    row = json.loads(daemon.out("stats", "--no-stream", "--format", "{{json .}}", name))
    assert row["MemUsage"].split("/")[1].strip() == "128MiB"


def test_update_lifts_limits_and_survives_restart(daemon, running, name):
    cid = running("--cpu-quota", "50000", "--pids-limit", "30")
    daemon.out("update", "--cpu-quota", "-1", "--pids-limit", "-1", name)
    if _is_v1():
        assert _cgroup_file(cid, "cpu", "cpu.cfs_quota_us", "") == "-1"
    assert _cgroup_file(cid, "pids", "pids.max", "pids.max") == "max"
    daemon.out("update", "--memory", "100m", "--memory-swap", "200m", name)
    daemon.out("restart", "-t", "0", name)
    assert _cgroup_file(cid, "memory", "memory.limit_in_bytes", "memory.max") == str(100 << 20)
    assert _cgroup_file(cid, "pids", "pids.max", "pids.max") == "max"


def test_update_stopped_container_applies_at_start(daemon, name):
    cid = daemon.out("create", "--name", name, "busybox", *SLEEP).strip()
    try:
        assert daemon.out("update", "--memory", "96m", "--memory-swap", "-1",
                          "--pids-limit", "25", name).strip() == name
        assert daemon.out("inspect", "-f", "{{.State.Status}}", name).strip() == "created"
        daemon.out("start", name)
        assert _cgroup_file(cid, "memory", "memory.limit_in_bytes", "memory.max") \
            == str(96 << 20)
        assert _cgroup_file(cid, "pids", "pids.max", "pids.max") == "25"
    finally:
        daemon.docker("rm", "-f", cid)


@pytest.mark.parametrize(("args", "status", "text"), [
    (["--memory", "2m"], 400, "Minimum memory limit allowed is 6MB"),
    (["--memory", "512m"], 409, ("Memory limit should be smaller than already set "
                                 "memoryswap limit, update the memoryswap at the same time")),
    (["--memory", "512m", "--memory-swap", "256m"], 400,
     "Minimum memoryswap limit should be larger than memory limit, see usage"),
    (["--cpus", "500"], 400, "range of CPUs is from 0.01 to"),
    (["--cpu-period", "500"], 400,
     "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"),
    (["--cpu-quota", "500"], 400, "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
    (["--cpuset-cpus", "999"], 400, "Requested CPUs are not available - requested 999"),
    (["--cpu-period", "50000"], 409,
     "Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set"),
    (["--restart", "on-fail"], 400, "invalid restart policy"),
])
def test_update_invalid_values(daemon, client, running, name, args, status, text):
    cid = running("-m", "64m", "--cpus", "0.5")
    res = daemon.docker("update", *args, name)
    assert res.returncode != 0
    assert text in res.stderr.decode(), res.stderr
    # and the status code, through docker-py's raw API
    body = {"--memory": "Memory", "--memory-swap": "MemorySwap", "--cpus": "NanoCpus",
            "--cpu-period": "CpuPeriod", "--cpu-quota": "CpuQuota",
            "--cpuset-cpus": "CpusetCpus", "--restart": "RestartPolicy"}
    payload: dict[str, object] = {}
    it = iter(args)
    for flag, value in zip(it, it, strict=True):
        key = body[flag]
        if key == "NanoCpus":
            payload[key] = int(float(value) * 1e9)
        elif key in ("Memory", "MemorySwap"):
            payload[key] = int(value[:-1]) << 20
        elif key in ("CpuPeriod", "CpuQuota"):
            payload[key] = int(value)
        elif key == "RestartPolicy":
            payload[key] = {"Name": value}
        else:
            payload[key] = value
    resp = client.api._post_json(client.api._url("/containers/{0}/update", cid), data=payload)
    assert resp.status_code == status, resp.text
    # nothing changed, the container still runs
    hc = client.api.inspect_container(cid)
    assert hc["HostConfig"]["Memory"] == 64 << 20 and hc["State"]["Running"]


def test_update_unknown_container_404(client):
    with pytest.raises(docker.errors.NotFound):
        client.api.update_container("no-such-container", mem_limit="64m")


def test_update_warnings_restart_policy_and_event(daemon, client, running, name):
    cid = running()
    since = str(int(time.time()) - 1)
    resp = client.api.update_container(cid, kernel_memory="10m",
                                       restart_policy={"Name": "on-failure",
                                                       "MaximumRetryCount": 3})
    assert any("kernel memory" in w for w in resp["Warnings"])
    hc = client.api.inspect_container(cid)["HostConfig"]
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    ev = daemon.out("events", "--since", since, "--until", str(int(time.time()) + 1),
                    "--filter", f"container={cid}", "--filter", "event=update",
                    "--format", "{{.Action}} {{.Actor.Attributes.name}}")
    assert ev.strip().splitlines()[-1] == f"update {name}"


# ------------------------------------------------------------------ pause

def test_pause_keeps_stats_top_and_inspect_working(daemon, client, running, name):
    cid = running()
    daemon.out("pause", name)
    try:
        st = client.api.inspect_container(cid)["State"]
        assert st["Status"] == "paused" and st["Paused"] and st["Running"]
        assert "(Paused)" in daemon.out("ps", "--filter", f"name={name}",
                                        "--format", "{{.Status}}")
        s = client.api.stats(cid, stream=False, one_shot=True)
        assert s["pids_stats"]["current"] == 1 and s["memory_stats"]["usage"] > 0
        row = json.loads(daemon.out("stats", "--no-stream", "--format", "{{json .}}", name))
        assert row["CPUPerc"] == "0.00%" and row["PIDs"] == "1"
        assert len(client.api.top(cid)["Processes"]) == 1
        # limits can change while paused
        daemon.out("update", "--pids-limit", "33", name)
        assert _cgroup_file(cid, "pids", "pids.max", "pids.max") == "33"
    finally:
        daemon.out("unpause", name)
    st = client.api.inspect_container(cid)["State"]
    assert st["Status"] == "running" and not st["Paused"]
