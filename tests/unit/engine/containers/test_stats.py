"""Stats JSON assembly, the CLI's CPU % / memory math, sampling from real
cgroup file captures, and the shared sampler's fan-out (no daemon, no root)."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dockyard.backend import StatsOptions
from dockyard.cgroups import ContainerCgroup
from dockyard.cgroups.stats import V1_FILES
from dockyard.engine.containers import stats as st
from dockyard.engine.containers.record import Container, State
from dockyard.engine.containers.stats import (
    Sample,
    StatsService,
    assemble_stats,
    cpu_percent,
    memory_usage_shown,
    read_sample,
    zero_stats,
)
from dockyard.engine.containers.store import ContainerStore
from dockyard.engine.events import EventBus

FIXTURES = Path(__file__).parents[2] / "cgroups" / "fixtures"
ZERO_CPU = {
    "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
    "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
}
CID = "a" * 64


def _parts(total: int, system: int, online: int = 2) -> dict[str, Any]:
    return {
        "cpu_stats": {"cpu_usage": {"total_usage": total, "usage_in_kernelmode": 0,
                                    "usage_in_usermode": total},
                      "system_cpu_usage": system, "online_cpus": online,
                      "throttling_data": {"periods": 0, "throttled_periods": 0,
                                          "throttled_time": 0}},
        "memory_stats": {"usage": 1000, "stats": {"total_inactive_file": 100}, "limit": 4000},
        "pids_stats": {"current": 3},
        "blkio_stats": {k: None for k in st.BLKIO_LISTS},
        "networks": {},
    }


# ------------------------------------------------------------------ assembly

def test_zero_stats_is_dockerds_stopped_container_object():
    z = zero_stats(CID, "/web")
    assert list(z) == ["id", "name", "os_type", "read", "cpu_stats", "memory_stats",
                       "pids_stats", "blkio_stats", "num_procs", "storage_stats", "preread",
                       "precpu_stats"]
    assert z["id"] == CID and z["name"] == "/web" and z["os_type"] == "linux"
    assert z["read"] == z["preread"] == "0001-01-01T00:00:00Z"
    assert z["cpu_stats"] == z["precpu_stats"] == ZERO_CPU
    assert z["memory_stats"] == z["pids_stats"] == z["storage_stats"] == {}
    assert z["blkio_stats"] == {k: None for k in st.BLKIO_LISTS}
    assert z["num_procs"] == 0
    assert "networks" not in z
    json.dumps(z)


def test_assemble_fills_pre_from_previous_sample():
    pre = Sample(1_700_000_000_000_000_000, _parts(1_000, 10_000))
    cur = Sample(1_700_000_001_500_000_000, _parts(2_000, 12_000))
    s = assemble_stats(CID, "/x", cur, pre)
    assert s["read"] == "2023-11-14T22:13:21.5Z"
    assert s["preread"] == "2023-11-14T22:13:20Z"
    assert s["precpu_stats"] == pre.parts["cpu_stats"]      # type: ignore[index]
    assert s["cpu_stats"]["cpu_usage"]["total_usage"] == 2_000
    assert "networks" not in s           # empty map is omitted, as Go's omitempty does


def test_assemble_first_stream_sample_has_zero_pre():
    s = assemble_stats(CID, "/x", Sample(1, _parts(5, 10)), None)
    assert s["precpu_stats"] == ZERO_CPU and s["preread"] == "0001-01-01T00:00:00Z"


def test_assemble_keeps_networks_when_present():
    parts = _parts(1, 1)
    parts["networks"] = {"eth0": {"rx_bytes": 5}}
    s = assemble_stats(CID, "/x", Sample(1, parts), None)
    assert list(s).index("networks") == list(s).index("memory_stats") + 1


def test_assemble_pre_from_a_stopped_sample_is_zero():
    s = assemble_stats(CID, "/x", Sample(2, _parts(1, 1)), Sample(1, None))
    assert s["precpu_stats"] == ZERO_CPU and s["preread"] == "0001-01-01T00:00:00Z"


# ------------------------------------------------------------------ CLI math

def test_cpu_percent_half_a_cpu_on_two():
    # 0.5 s of CPU in 1 s of wall time on 2 CPUs: the host counted 2 s.
    s = assemble_stats(CID, "/x", Sample(2, _parts(1_500_000_000, 4_000_000_000)),
                       Sample(1, _parts(1_000_000_000, 2_000_000_000)))
    assert cpu_percent(s) == pytest.approx(50.0)


def test_cpu_percent_zero_unless_both_deltas_positive():
    same = assemble_stats(CID, "/x", Sample(2, _parts(10, 100)), Sample(1, _parts(10, 50)))
    assert cpu_percent(same) == 0.0
    no_sys = assemble_stats(CID, "/x", Sample(2, _parts(20, 50)), Sample(1, _parts(10, 50)))
    assert cpu_percent(no_sys) == 0.0
    assert cpu_percent(zero_stats(CID, "/x")) == 0.0


def test_cpu_percent_falls_back_to_percpu_length():
    cur = _parts(200, 400, online=0)
    cur["cpu_stats"]["cpu_usage"]["percpu_usage"] = [1, 2, 3, 4]
    s = assemble_stats(CID, "/x", Sample(2, cur), Sample(1, _parts(100, 200)))
    assert cpu_percent(s) == pytest.approx(200.0)


def test_memory_usage_shown_subtracts_inactive_file():
    assert memory_usage_shown({"usage": 1000, "stats": {"total_inactive_file": 100}}) == 900
    assert memory_usage_shown({"usage": 1000, "stats": {"inactive_file": 300}}) == 700
    assert memory_usage_shown({"usage": 100, "stats": {"total_inactive_file": 300}}) == 100
    assert memory_usage_shown({}) == 0


# ------------------------------------------------------------------ sampling files

def _proc_root(tmp_path: Path, pid: int, net_dev: str | None) -> Path:
    root = tmp_path / "proc"
    root.mkdir()
    shutil.copy(FIXTURES / "proc" / "stat", root / "stat")
    if net_dev:
        (root / str(pid) / "net").mkdir(parents=True)
        shutil.copy(FIXTURES / "proc" / net_dev, root / str(pid) / "net" / "dev")
    return root


def test_read_sample_v1_capture(tmp_path):
    d = str(FIXTURES / "v1")
    cg = ContainerCgroup(1, {ctrl: d for ctrl in V1_FILES})
    proc = _proc_root(tmp_path, 42, "net_dev_container")
    s = read_sample(cg, 42, mem_total=8 << 30, proc_root=str(proc))
    assert s.parts is not None
    stat_cpus = sum(1 for ln in (FIXTURES / "proc" / "stat").read_text().splitlines()
                    if ln.startswith("cpu") and ln[3:4].isdigit())
    cpu = s.parts["cpu_stats"]
    assert cpu["online_cpus"] == stat_cpus          # host CPUs, like dockerd
    assert cpu["system_cpu_usage"] > 0
    assert cpu["cpu_usage"]["total_usage"] == int((FIXTURES / "v1" / "cpuacct.usage")
                                                  .read_text())
    assert s.parts["memory_stats"]["limit"] == 256 << 20
    assert s.parts["pids_stats"]["limit"] == 64
    assert set(s.parts["networks"]) == {"eth0", "eth1"}      # loopback left out
    full = assemble_stats(CID, "/x", s, None)
    assert full["memory_stats"]["stats"]["total_inactive_file"] >= 0
    json.dumps(full)


def test_read_sample_v2_unlimited_memory_is_host_ram(tmp_path):
    cg = ContainerCgroup(2, {"": str(FIXTURES / "v2" / "unlimited")})
    proc = _proc_root(tmp_path, 7, None)
    s = read_sample(cg, 7, mem_total=3 << 30, proc_root=str(proc))
    assert s.parts is not None
    assert s.parts["memory_stats"]["limit"] == 3 << 30
    assert s.parts["networks"] == {}
    assert "inactive_file" in s.parts["memory_stats"]["stats"]


def test_read_sample_of_vanished_cgroup_is_empty(tmp_path):
    cg = ContainerCgroup(1, {"memory": str(tmp_path / "gone"), "cpu": str(tmp_path / "gone")})
    proc = _proc_root(tmp_path, 1, None)
    assert read_sample(cg, 1, mem_total=1, proc_root=str(proc)).parts is None


# ------------------------------------------------------------------ sharing

def _service(monkeypatch: pytest.MonkeyPatch, running: bool = True
             ) -> tuple[StatsService, Container, list[int]]:
    c = Container(id=CID, name="web", created=0, image_ref="busybox", image_id="sha256:x",
                  config={}, host_config={}, state=State(status="running" if running
                                                          else "exited", pid=99))
    store = ContainerStore(Path("/nonexistent"), Path("/nonexistent"), EventBus())
    store.add(c)
    host = SimpleNamespace(facts=SimpleNamespace(mem_total=1 << 30),
                           cgroups_path=lambda cid: f"/dockyard/{cid}")
    svc = StatsService(store, host)  # type: ignore[arg-type]
    reads: list[int] = []

    def fake_read(cg: Any, pid: int, mem_total: int) -> Sample:
        reads.append(pid)
        n = len(reads)
        return Sample(time.time_ns(), _parts(n * 1000, n * 10_000))

    async def fake_cgroup(_c: Container) -> ContainerCgroup:
        return ContainerCgroup(1, {})

    monkeypatch.setattr(st, "read_sample", fake_read)
    monkeypatch.setattr(st, "INTERVAL", 0.05)
    monkeypatch.setattr(svc, "container_cgroup", fake_cgroup)
    return svc, c, reads


def test_stream_precpu_chain_and_one_sampler_for_many_clients(monkeypatch):
    svc, c, reads = _service(monkeypatch)

    async def take(n: int) -> list[dict[str, Any]]:
        gen = await svc.stats(c.id, StatsOptions(stream=True, one_shot=False))
        out = []
        async for obj in gen:
            out.append(obj)
            if len(out) == n:
                break
        await gen.aclose()
        return out

    async def main() -> tuple[list[list[dict[str, Any]]], int]:
        results = await asyncio.gather(*(take(3) for _ in range(5)))
        await asyncio.sleep(0.1)
        return list(results), svc.active_samplers()

    results, active = asyncio.run(main())
    for objs in results:
        assert objs[0]["precpu_stats"] == ZERO_CPU
        assert objs[1]["precpu_stats"] == objs[0]["cpu_stats"]
        assert objs[2]["precpu_stats"] == objs[1]["cpu_stats"]
    # 5 clients x 3 samples, but one sampler: about 3 reads, not 15
    assert len(reads) <= 5
    assert active == 0          # the sampler stopped with its last client


def test_non_stream_waits_for_two_samples_unless_one_shot(monkeypatch):
    svc, c, _reads = _service(monkeypatch)

    async def one(one_shot: bool) -> dict[str, Any]:
        gen = await svc.stats(c.id, StatsOptions(stream=False, one_shot=one_shot))
        objs = [o async for o in gen]
        assert len(objs) == 1
        return objs[0]

    two = asyncio.run(one(False))
    assert two["precpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert two["preread"] != "0001-01-01T00:00:00Z"
    single = asyncio.run(one(True))
    assert single["precpu_stats"] == ZERO_CPU


def test_non_stream_stopped_container_gets_zero_object_without_reading(monkeypatch):
    svc, c, reads = _service(monkeypatch, running=False)

    async def main() -> list[dict[str, Any]]:
        gen = await svc.stats(c.id, StatsOptions(stream=False, one_shot=False))
        return [o async for o in gen]

    objs = asyncio.run(main())
    assert objs == [zero_stats(CID, "/web")]
    assert reads == []
