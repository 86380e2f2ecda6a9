"""Container stats: sampling, sharing and Docker's StatsResponse shape.

dockerd runs one collector that samples every subscribed container once a
second and fans each sample out to all its clients (daemon/stats.go,
daemon/stats/collector.go).  Here each container that has at least one
client gets one `_Sampler` task doing the same: one sample a second,
published to every subscriber's queue, so 50 `docker stats` windows on one
container cost one set of file reads a second, not 50.  The task ends when
its last client goes.  File reads happen in a worker thread.

The pure half (`assemble_stats`, `zero_stats`, `cpu_percent`,
`memory_usage_shown`) is unit tested without a daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Any

from dockyard.backend import StatsOptions
from dockyard.cgroups import (
    CgroupInfo,
    ContainerCgroup,
    build_stats_v1,
    build_stats_v2,
    detect_cgroups,
    empty_cpu_stats,
    locate_container_cgroup,
    read_network_stats,
)
from dockyard.cgroups.stats import BLKIO_LISTS, read_cgroup_files, read_proc_stat
from dockyard.engine.containers.record import Container
from dockyard.engine.containers.store import ContainerStore
from dockyard.engine.host.environment import HostEnv
from dockyard.util.timefmt import rfc3339

log = logging.getLogger("dockyard.stats")

INTERVAL = 1.0          # dockerd's collector interval
_QUEUE_DEPTH = 4        # a client slower than this loses its oldest samples


# ----------------------------------------------------------------- pure shapes

@dataclass(frozen=True)
class Sample:
    """One reading of a container: the cgroup/network part of StatsResponse.

    `parts` is None when the container was not running (or its cgroup was
    gone) at sampling time; then clients get Docker's zeroed object.
    """

    read_ns: int
    parts: dict[str, Any] | None


def zero_cpu_stats() -> dict[str, Any]:
    """Go's zero CPUStats as encoding/json writes it (omitempty drops the rest)."""
    return empty_cpu_stats()


def assemble_stats(container_id: str, name: str, sample: Sample | None,
                   pre: Sample | None) -> dict[str, Any]:
    """A StatsResponse in dockerd's field order.

    `name` is Docker's "/name".  A missing or empty sample gives the object
    dockerd sends for a stopped container: only id, name and os_type are
    set, every other field is its Go zero value (structs are never omitted
    by encoding/json, so they appear as `{}` or zero numbers).
    """
    parts = sample.parts if sample is not None else None
    out: dict[str, Any] = {"id": container_id, "name": name, "os_type": "linux"}
    if parts is None:
        out["read"] = rfc3339(0)
        out["cpu_stats"] = zero_cpu_stats()
        out["memory_stats"] = {}
        out["pids_stats"] = {}
        out["blkio_stats"] = {k: None for k in BLKIO_LISTS}
    else:
        out["read"] = rfc3339(sample.read_ns if sample else 0)
        out["cpu_stats"] = parts["cpu_stats"]
        out["memory_stats"] = parts["memory_stats"]
        if parts.get("networks"):      # map with omitempty: absent when empty
            out["networks"] = parts["networks"]
        out["pids_stats"] = parts["pids_stats"]
        out["blkio_stats"] = parts["blkio_stats"]
    out["num_procs"] = 0
    out["storage_stats"] = {}
    pre_parts = pre.parts if pre is not None else None
    out["preread"] = rfc3339(pre.read_ns if pre is not None and pre_parts is not None else 0)
    out["precpu_stats"] = pre_parts["cpu_stats"] if pre_parts is not None else zero_cpu_stats()
    return out


def zero_stats(container_id: str, name: str) -> dict[str, Any]:
    return assemble_stats(container_id, name, None, None)


def cpu_percent(stats: Mapping[str, Any]) -> float:
    """The docker CLI's CPU % column (cli/command/container/stats_helpers.go).

    (delta container usage / delta host usage) x online CPUs x 100; 0 unless
    both deltas are positive.
    """
    cpu = stats.get("cpu_stats") or {}
    pre = stats.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - \
        (pre.get("cpu_usage") or {}).get("total_usage", 0)
    sys_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    online = cpu.get("online_cpus", 0) or len((cpu.get("cpu_usage") or {}).get("percpu_usage")
                                              or [])
    if cpu_delta > 0 and sys_delta > 0:
        return cpu_delta / sys_delta * online * 100.0
    return 0.0


def memory_usage_shown(mem: Mapping[str, Any]) -> int:
    """The CLI's MEM USAGE: usage minus inactive file cache (v1 or v2 key)."""
    usage = mem.get("usage", 0)
    st = mem.get("stats") or {}
    for key in ("total_inactive_file", "inactive_file"):
        if key in st and st[key] < usage:
            return usage - st[key]
    return usage


# ----------------------------------------------------------------- blocking I/O

def read_sample(cg: ContainerCgroup, pid: int, mem_total: int,
                proc_root: str = "/proc") -> Sample:
    """Read one sample (blocking: run in a thread).

    /proc/stat is read right after the cgroup files, as dockerd does, so the
    two counters the CPU % divides cover the same moment.
    """
    files = read_cgroup_files(cg)
    system_cpu, host_cpus = read_proc_stat(proc_root)
    now = time.time_ns()
    if not files:
        return Sample(now, None)       # cgroup gone: the container just stopped
    build = build_stats_v2 if cg.version == 2 else build_stats_v1
    parts = build(files, mem_total=mem_total, system_cpu_usage=system_cpu,
                  host_online_cpus=host_cpus)
    # dockerd reports the host's CPU count (cpuN lines of /proc/stat), not the
    # container's cpuset: the CLI multiplies the share of *all* host CPU time
    # by it, so a cpuset count would understate a pinned container's usage.
    if host_cpus:
        parts["cpu_stats"]["online_cpus"] = host_cpus
    nets = read_network_stats(pid, proc_root=proc_root) if pid else None
    parts["networks"] = nets or {}
    return Sample(now, parts)


# ----------------------------------------------------------------- sharing

@dataclass
class _Sampler:
    """The one sampling loop of a container, shared by all its clients."""

    container_id: str
    subscribers: set[asyncio.Queue[Sample]] = field(default_factory=set)
    last: Sample | None = None
    task: asyncio.Task[None] | None = None

    def publish(self, s: Sample) -> None:
        self.last = s
        for q in self.subscribers:
            if q.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
            q.put_nowait(s)


class StatsService:
    """Per-engine stats: cgroup location, samplers, the stats endpoints' logic."""

    def __init__(self, store: ContainerStore, host: HostEnv) -> None:
        self.store = store
        self.host = host
        self._samplers: dict[str, _Sampler] = {}
        self._cg_info: CgroupInfo | None = None
        self._cg_lock = asyncio.Lock()

    async def cgroup_info(self) -> CgroupInfo:
        if self._cg_info is None:
            async with self._cg_lock:
                if self._cg_info is None:
                    self._cg_info = await asyncio.to_thread(detect_cgroups)
        return self._cg_info

    async def container_cgroup(self, c: Container) -> ContainerCgroup:
        return locate_container_cgroup(await self.cgroup_info(), self.host.cgroups_path(c.id, c.host_config))

    @staticmethod
    def _live(c: Container) -> bool:
        # dockerd: stopped or restarting containers get the zeroed object
        return c.state.running and c.state.status != "restarting" and bool(c.state.pid)

    async def sample(self, c: Container) -> Sample:
        """One sample now (one-shot, and each tick of a sampler)."""
        if not self._live(c):
            return Sample(time.time_ns(), None)
        cg = await self.container_cgroup(c)
        s = await asyncio.to_thread(read_sample, cg, c.state.pid, self.host.facts.mem_total)
        if not self._live(c):       # it stopped while we read
            return Sample(s.read_ns, None)
        return s

    # --- subscription
    def _subscribe(self, c: Container) -> tuple[_Sampler, asyncio.Queue[Sample]]:
        sp = self._samplers.get(c.id)
        if sp is None:
            sp = self._samplers[c.id] = _Sampler(c.id)
        q: asyncio.Queue[Sample] = asyncio.Queue(_QUEUE_DEPTH)
        sp.subscribers.add(q)
        if sp.task is None or sp.task.done():
            sp.task = asyncio.create_task(self._run(sp), name=f"stats-{c.id[:12]}")
        return sp, q

    def _unsubscribe(self, sp: _Sampler, q: asyncio.Queue[Sample]) -> None:
        sp.subscribers.discard(q)
        if not sp.subscribers:
            if sp.task is not None:
                sp.task.cancel()
            if self._samplers.get(sp.container_id) is sp:
                del self._samplers[sp.container_id]

    async def _run(self, sp: _Sampler) -> None:
        loop = asyncio.get_running_loop()
        while sp.subscribers:
            c = self._container(sp.container_id)
            if c is None:
                return
            t0 = loop.time()
            try:
                s = await self.sample(c)
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad read must not end every client's stream
                log.exception("stats sample of %s failed", sp.container_id[:12])
                s = Sample(time.time_ns(), None)
            sp.publish(s)
            await asyncio.sleep(max(0.0, INTERVAL - (loop.time() - t0)))

    def _container(self, cid: str) -> Container | None:
        return self.store.find(cid)

    def active_samplers(self) -> int:
        return len(self._samplers)

    # --- the endpoint
    async def stats(self, ref: str, opts: StatsOptions) -> AsyncGenerator[dict[str, Any], None]:
        """StatsResponse objects for `GET /containers/{id}/stats`.

        Raises NotFound before the first object (so the API can answer 404);
        the generator then yields one object (stream=false) or one a second
        until the client goes or the container is removed.
        """
        c = self.store.get(ref)
        return self._stats_gen(c, opts.stream, opts.one_shot)

    async def _stats_gen(self, c: Container, stream: bool, one_shot: bool
                         ) -> AsyncGenerator[dict[str, Any], None]:
        if not stream:
            if not self._live(c):
                yield zero_stats(c.id, "/" + c.name)
                return
            if one_shot:
                yield assemble_stats(c.id, "/" + c.name, await self.sample(c), None)
                return
        sp, q = self._subscribe(c)
        try:
            pre: Sample | None = None
            if not stream:
                # Two samples ~1 s apart fill precpu.  A sampler that is
                # already running for other clients has a recent one.
                fresh = sp.last
                if fresh is not None and fresh.parts is not None and \
                        time.time_ns() - fresh.read_ns < INTERVAL * 1.5e9:
                    pre = fresh
                    while not q.empty():       # only samples after `fresh`
                        q.get_nowait()
                else:
                    pre = await self._next(q, c)
                    if pre is None:
                        return
            while True:
                s = await self._next(q, c)
                if s is None:
                    return
                yield assemble_stats(c.id, "/" + c.name, s, pre)
                if not stream:
                    return
                pre = s
        finally:
            self._unsubscribe(sp, q)

    async def _next(self, q: asyncio.Queue[Sample], c: Container) -> Sample | None:
        """The next sample, or None once the container has been removed."""
        while True:
            try:
                return await asyncio.wait_for(q.get(), INTERVAL * 3)
            except TimeoutError:
                if self._container(c.id) is None:
                    return None


__all__ = [
    "INTERVAL", "Sample", "StatsService", "assemble_stats", "cpu_percent",
    "memory_usage_shown", "read_sample", "zero_stats",
]
