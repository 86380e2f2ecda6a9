"""`docker stats` from cgroup v2 files: memory.current/memory.stat/memory.max,
cpu.stat usage_usec, pids.current/pids.max, io.stat."""

from __future__ import annotations

import json

import pytest
from v2util import MB, api, host_cgroup_dir, read_host, run_detached

pytestmark = pytest.mark.needs("stats")

BUSY = ("sh", "-c", "while :; do :; done")


def _one_shot(name: str) -> dict:
    status, body = api("GET", f"/containers/{name}/stats?stream=false")
    assert status == 200, body
    return body


def _cli_stats(docker, name: str) -> dict:
    return json.loads(docker.out("stats", "--no-stream", "--format", "{{json .}}", name))


def test_api_shapes_from_v2_files(docker, name):
    run_detached(docker, name, "--memory", "64m", "--pids-limit", "20",
                 cmd=("sh", "-c", "sleep 600 & sleep 600 & wait"))
    d = host_cgroup_dir(docker, name)
    s = _one_shot(name)
    mem = s["memory_stats"]
    assert mem["limit"] == 64 * MB
    assert 0 < mem["usage"] < 64 * MB
    # v2 memory.stat keys (the CLI tells v1 from v2 by them), no v1 totals
    assert {"anon", "file", "inactive_file", "active_file"} <= set(mem["stats"])
    assert "total_inactive_file" not in mem["stats"]
    assert "max_usage" not in mem        # v2 has no max_usage_in_bytes
    assert s["pids_stats"] == {"current": 3, "limit": 20}
    cpu = s["cpu_stats"]
    usage_usec = dict(ln.split() for ln in read_host(d, "cpu.stat").splitlines())["usage_usec"]
    # cpu.stat is in µs, Docker in ns; the sample is older than our read.
    assert 0 < cpu["cpu_usage"]["total_usage"] <= int(usage_usec) * 1000
    assert cpu["cpu_usage"]["total_usage"] % 1000 == 0
    assert cpu["online_cpus"] >= 1 and cpu["system_cpu_usage"] > 0
    assert "percpu_usage" not in cpu["cpu_usage"]   # v2 has no per-CPU usage
    # one-shot (stream=false) fills precpu from a previous sample
    assert s["precpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert s["precpu_stats"]["system_cpu_usage"] < cpu["system_cpu_usage"]


def test_blkio_from_io_stat(docker, name, data_dev):
    dev, majmin = data_dev
    maj, mnr = (int(x) for x in majmin.split(":"))
    run_detached(docker, name, "--device", dev, cmd=(
        "sh", "-c", f"dd if={dev} of=/dev/null bs=64k count=32 iflag=direct; sleep 600"))
    s = _one_shot(name)
    entries = s["blkio_stats"]["io_service_bytes_recursive"] or []
    reads = [e for e in entries if (e["major"], e["minor"], e["op"]) == (maj, mnr, "read")]
    assert reads and reads[0]["value"] >= 2 * MB, entries


@pytest.mark.parametrize("cpus,lo,hi", [("0.5", 30, 70), (None, 70, 130)])
def test_cli_cpu_percent(docker, name, cpus, lo, hi):
    """A busy loop shows ~50% under --cpus 0.5 and ~100% unlimited: one
    sample with precpu from dockerd's previous read, scaled by online CPUs."""
    run_detached(docker, name, *(["--cpus", cpus] if cpus else []), cmd=BUSY)
    row = _cli_stats(docker, name)
    pct = float(row["CPUPerc"].rstrip("%"))
    assert lo <= pct <= hi, row


def test_cli_memory_and_pids(docker, name):
    run_detached(docker, name, "--memory", "64m", "--pids-limit", "20")
    row = _cli_stats(docker, name)
    usage, limit = (x.strip() for x in row["MemUsage"].split("/"))
    assert limit == "64MiB", row
    assert usage.endswith(("KiB", "MiB")), row
    assert row["PIDs"] == "1", row


def test_docker_py_stats_unlimited(client, name, docker, info):
    run_detached(docker, name)
    s = client.containers.get(name).stats(stream=False)
    # memory.max "max": dockerd reports the host's RAM as the limit
    assert s["memory_stats"]["limit"] == info["MemTotal"]
    # pids.max "max": containerd's v2 reader (so dockerd) says uint64 max
    assert s["pids_stats"] == {"current": 1, "limit": 2**64 - 1}
