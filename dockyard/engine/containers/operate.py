"""`ContainerOperations`: `docker top` and `docker update` of a container.

Both follow dockerd (daemon/top_unix.go, daemon/update.go and
container.UpdateContainer): top runs the *host's* ps and keeps the lines of
the container's processes, so it works for images without ps; update checks
the request like create does, merges it into the stored HostConfig with
Docker's rules, applies it live through the OCI runtime and only then keeps
it, so a failed update changes nothing.
"""

from __future__ import annotations

import asyncio
import copy
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dockyard.cgroups import ContainerCgroup
from dockyard.engine.containers.record import Container
from dockyard.engine.containers.runner import ContainerRunner
from dockyard.engine.containers.stats import StatsService
from dockyard.engine.containers.store import ContainerStore
from dockyard.engine.host.environment import HostEnv
from dockyard.errors import Conflict, DockyardError, InvalidParameter, SystemError_
from dockyard.oci.gojson import go_quote
from dockyard.oci.options import UPDATE_FIELDS, refuse_not_updatable
from dockyard.oci.resources import linux_resources, verify_resources
from dockyard.oci.schema import decode_update_config
from dockyard.oci.validate import validate_restart_policy
from dockyard.runtime import commands as rtcmd
from dockyard.runtime.runtimes import OCIRuntime
from dockyard.util.fstree import directories

# ---------------------------------------------------------------------- top

# dockerd refuses `-o user=PID` style renames of the PID column: it must
# find "PID" in the header to filter the lines.
_PS_ARGS_RENAME = re.compile(r"\s+([^\s]*)=\s*(PID[^\s]*)")
_ASCII_SPACE = re.compile(r"[\t\n\f\r ]+")


def validate_ps_args(ps_args: str) -> None:
    """dockerd's check that the PID column keeps its name, and no NUL (an
    argument the kernel cannot take).  Bad ps_args are the client's: 400."""
    if "\0" in ps_args:
        raise InvalidParameter(f"invalid ps_args {go_quote(ps_args)}: contains a NUL byte")
    for key, value in _PS_ARGS_RENAME.findall(ps_args):
        if key != "pid":
            raise InvalidParameter(f'specifying "{key}={value}" is not allowed')


def _fields(line: str) -> list[str]:
    # ASCII whitespace only, as dockerd (a unicode space inside a command
    # line must not split a column)
    return [f for f in _ASCII_SPACE.split(line) if f]


def parse_ps_output(output: str, pids: set[int]) -> dict[str, Any]:
    """ps output -> Docker's {Titles, Processes} for the lines of `pids`.

    Extra fields beyond the titles (a command with spaces) are joined into
    the last column; thread lines (PID "-", from `ps m`) follow the process
    line they belong to.
    """
    lines = output.split("\n")
    titles = _fields(lines[0]) if lines else []
    if "PID" not in titles:
        raise SystemError_("Couldn't find PID field in ps output")
    pid_index = titles.index("PID")
    procs: list[list[str]] = []
    keep_threads = False

    def add(fields: list[str]) -> None:
        n = len(titles)
        procs.append(fields[:n - 1] + [" ".join(fields[n - 1:])])

    for line in lines[1:]:
        if not line:
            continue
        fields = _fields(line)
        if len(fields) <= pid_index:
            continue
        if fields[pid_index] == "-":
            if keep_threads:
                add(fields)
            continue
        try:
            p = int(fields[pid_index])
        except ValueError:
            raise SystemError_(f"Unexpected pid '{fields[pid_index]}': strconv.Atoi: parsing "
                               f"\"{fields[pid_index]}\": invalid syntax") from None
        keep_threads = p in pids
        if keep_threads:
            add(fields)
    return {"Titles": titles, "Processes": procs}


def read_cgroup_pids(cg: ContainerCgroup) -> list[int]:
    """Every process in the container's cgroup (and any child cgroups).

    Blocking.  On v1 any one hierarchy lists them all; pids or memory is
    used, whichever is mounted.
    """
    base = None
    for ctrl in ("pids", "memory", "cpu", "freezer", "cpuacct", "devices"):
        base = cg.dir(ctrl)
        if base and os.path.isdir(base):
            break
    else:
        return []
    out: list[int] = []
    for fd in directories(base):
        try:
            pfd = os.open("cgroup.procs", os.O_RDONLY | os.O_CLOEXEC, dir_fd=fd)
        except OSError:
            continue
        with os.fdopen(pfd, "rb") as f:
            out.extend(int(x) for x in f.read().split() if x.isdigit())
    return out


async def _run_ps(args: list[str]) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        "ps", *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out, err


# ---------------------------------------------------------------------- update

DEVICE_LISTS = ("BlkioWeightDevice", "BlkioDeviceReadBps", "BlkioDeviceWriteBps",
                "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps")
# The kernel refusing a cgroup value (EINVAL, ERANGE) is a value the client
# asked for, not a failure of the host.
_KERNEL_REFUSED = re.compile(r"Invalid argument|Numerical result out of range")
# Copied into the stored HostConfig when non-zero (container.UpdateContainer)
_COPY_IF_SET = ("BlkioWeight", "CpuShares", "NanoCpus", "CpuPeriod", "CpuQuota", "CpusetCpus",
                "CpusetMems", "MemorySwap", "MemoryReservation", "CpuRealtimePeriod",
                "CpuRealtimeRuntime", "KernelMemory")


def parse_update_body(body: Any, api_version: tuple[int, int] = (1, 51)) -> dict[str, Any]:
    """The request's UpdateConfig as Go's decoder reads it (types, int64
    ranges, field names in any case); what an update cannot change is refused.

    Returns a dict with the resource keys that were set and `RestartPolicy`.
    """
    req = decode_update_config(body)
    out: dict[str, Any] = {k: v for k, v in req.items()
                           if k != "RestartPolicy" and v is not None}
    refuse_not_updatable(out)
    out = {k: v for k, v in out.items() if k in UPDATE_FIELDS}
    out["RestartPolicy"] = dict(req.get("RestartPolicy") or {})
    if api_version < (1, 40):
        out.pop("PidsLimit", None)
    # Both 0 and -1 (historically any negative) mean "unlimited" on update.
    if out.get("PidsLimit") is not None and out["PidsLimit"] <= 0:
        out["PidsLimit"] = 0
    return out


def merge_update(stored: Mapping[str, Any], req: Mapping[str, Any], container_id: str,
                 ) -> dict[str, Any]:
    """The HostConfig after the update (dockerd's container.UpdateContainer).

    Zero values mean "leave as is"; conflicts are Docker's 409s.
    """
    hc = copy.deepcopy(dict(stored))

    def conflict(msg: str) -> Conflict:
        return Conflict(f"Cannot update container {container_id}: {msg}")

    # NanoCpus sets period and quota itself, so the two ways cannot mix.
    g = req.get
    def cur(k: str) -> int:
        return hc.get(k) or 0

    if (g("NanoCpus") or 0) > 0 and cur("CpuPeriod") > 0:
        raise conflict("Conflicting options: Nano CPUs cannot be updated as CPU Period has "
                       "already been set")
    if (g("NanoCpus") or 0) > 0 and cur("CpuQuota") > 0:
        raise conflict("Conflicting options: Nano CPUs cannot be updated as CPU Quota has "
                       "already been set")
    if (g("CpuPeriod") or 0) > 0 and cur("NanoCpus") > 0:
        raise conflict("Conflicting options: CPU Period cannot be updated as NanoCPUs has "
                       "already been set")
    if (g("CpuQuota") or 0) > 0 and cur("NanoCpus") > 0:
        raise conflict("Conflicting options: CPU Quota cannot be updated as NanoCPUs has "
                       "already been set")
    for k in DEVICE_LISTS:
        if g(k) is not None:
            hc[k] = copy.deepcopy(g(k))
    for k in _COPY_IF_SET:
        if g(k):
            hc[k] = g(k)
    mem = g("Memory") or 0
    if mem:
        # the stored swap limit must stay >= memory: dockerd refuses rather
        # than guess a new swap limit
        if mem > cur("MemorySwap") and not g("MemorySwap"):
            raise conflict("Memory limit should be smaller than already set memoryswap limit, "
                           "update the memoryswap at the same time")
        hc["Memory"] = mem
        if g("MemorySwap"):
            hc["MemorySwap"] = g("MemorySwap")
    # the kernel refuses a swap limit below the memory limit, or one without
    # a memory limit: say so in Docker's create-time words
    swap = g("MemorySwap") or 0
    if swap > 0:
        if cur("Memory") == 0:
            raise InvalidParameter("You should always set the Memory limit when using "
                                   "Memoryswap limit, see usage")
        if swap < cur("Memory"):
            raise InvalidParameter("Minimum memoryswap limit should be larger than memory "
                                   "limit, see usage")
    if g("PidsLimit") is not None:
        hc["PidsLimit"] = g("PidsLimit")
    rp = g("RestartPolicy") or {}
    if rp.get("Name"):
        if hc.get("AutoRemove") and rp["Name"] != "no":
            raise conflict("Restart policy cannot be updated because AutoRemove is enabled "
                           "for the container")
        hc["RestartPolicy"] = {"Name": rp["Name"],
                               "MaximumRetryCount": rp.get("MaximumRetryCount") or 0}
    return hc


def runtime_resources(req: Mapping[str, Any], blkio_devices: Mapping[str, tuple[int, int]],
                      ) -> dict[str, Any]:
    """The OCI `linux.resources` to send for this update.

    Like dockerd (toContainerdResources) only what the request sets is sent;
    the runtime leaves everything else as it is.
    """
    res = linux_resources(req, blkio_devices, update=True)
    if not res.get("blockIO"):
        res.pop("blockIO", None)
    return res


def _stat_block_devices(req: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for key in DEVICE_LISTS:
        for d in req.get(key) or []:
            p = d.get("Path", "")
            if p in out:
                continue
            try:
                st = os.stat(p)
            except OSError as e:
                raise InvalidParameter(f"stat {p}: {(e.strerror or str(e)).lower()}") from None
            if not stat.S_ISBLK(st.st_mode):
                raise InvalidParameter(f"{p} is not a block device")
            out[p] = (os.major(st.st_rdev), os.minor(st.st_rdev))
    return out


def _is_crun(rt: OCIRuntime) -> bool:
    return os.path.basename(rt.path or "").startswith("crun") or rt.name == "crun"


def split_crun_unlimited(res: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Take out what crun 1.8 cannot lift by itself.

    `crun update` refuses a CPU quota of -1 and (on cgroup v1) a pids limit
    of -1, which is how "no limit" is said; runc writes both.  Returns the
    resources to send and {"quota_period": period|None, "pids": True} for
    the engine to write to the cgroup files itself.
    """
    res = copy.deepcopy(res)
    direct: dict[str, Any] = {}
    cpu = res.get("cpu") or {}
    if cpu.get("quota", 0) < 0:
        cpu.pop("quota")
        direct["quota_period"] = cpu.pop("period", None)
        if not cpu:
            res.pop("cpu", None)
    if (res.get("pids") or {}).get("limit", 0) < 0:
        res.pop("pids")
        direct["pids"] = True
    return res, direct


def write_unlimited(cg: ContainerCgroup, direct: Mapping[str, Any]) -> None:
    """Lift a CFS quota / pids limit through the cgroup files (blocking)."""
    if cg.version == 2:
        d = cg.dir("")
        if not d:
            return
        if "quota_period" in direct:
            period = direct["quota_period"]
            Path(d, "cpu.max").write_text(f"max {period}" if period else "max")
        if direct.get("pids"):
            Path(d, "pids.max").write_text("max")
        return
    if "quota_period" in direct and cg.dir("cpu"):
        if direct["quota_period"]:
            Path(cg.dir("cpu") or "", "cpu.cfs_period_us").write_text(str(direct["quota_period"]))
        Path(cg.dir("cpu") or "", "cpu.cfs_quota_us").write_text("-1")
    if direct.get("pids") and cg.dir("pids"):
        Path(cg.dir("pids") or "", "pids.max").write_text("max")


class ContainerOperations:
    def __init__(self, store: ContainerStore, runner: ContainerRunner, stats: StatsService,
                 host: HostEnv) -> None:
        self.store = store
        self.runner = runner
        self.stats = stats
        self.host = host

    async def top(self, ref: str, ps_args: str | None) -> dict[str, Any]:
        ps_args = ps_args or "-ef"
        validate_ps_args(ps_args)
        c = self.store.get(ref)
        if not c.state.running:
            raise Conflict(f"container {c.id} is not running")
        if c.state.status == "restarting":
            raise Conflict(f"Container {c.id} is restarting, wait until the container is running")
        pids = await self.container_pids(c)
        # dockerd splits on single spaces (not shell words) and asks ps for just
        # the container's pids with -q; options that cannot go with -q (f) make
        # ps fail, then it lists everything and filters.
        args = ps_args.split(" ")
        code, out, err = (1, b"", b"")
        if pids:
            code, out, err = await _run_ps([*args, "-q" + ",".join(map(str, pids))])
        if code != 0:
            code, out, err = await _run_ps(args)
            if code != 0:
                # ps ran and refused the options the client gave it
                first = err.decode(errors="replace").split("\n", 1)[0]
                raise InvalidParameter(f"ps: {first or f'exit status {code}'}")
        result = parse_ps_output(out.decode(errors="replace"), set(pids))
        self.store.emit(c, "top")
        return result

    async def container_pids(self, c: Container) -> list[int]:
        """The container's host pids: from its cgroup, else from the runtime."""
        cg = await self.stats.container_cgroup(c)
        pids = await asyncio.to_thread(read_cgroup_pids, cg)
        if not pids:
            try:
                pids = await rtcmd.ps(self.runner.runtime_for(c), c.id)
            except DockyardError:
                pids = []
        if not pids and c.state.pid:
            pids = [c.state.pid]
        return pids

    async def update(self, ref: str, body: Any,
                     api_version: tuple[int, int] = (1, 51)) -> list[str]:
        """`POST /containers/{id}/update`: returns the warnings."""
        req = parse_update_body(body, api_version)
        validate_restart_policy(req["RestartPolicy"] or None)
        resources = {k: v for k, v in req.items() if k != "RestartPolicy"}
        warnings, adjusted = verify_resources(resources, self.host.facts, update=True)
        adjusted["RestartPolicy"] = req["RestartPolicy"]
        c = self.store.get(ref)
        async with self.store.lock(c):
            if c.state.removal or c.state.status in ("removing", "dead"):
                raise SystemError_(f"Cannot update container {c.id}: container is marked for "
                                   'removal and cannot be "update"')
            new_hc = merge_update(c.host_config, adjusted, c.id)
            # A stopped (or restarting) container just keeps the new values: the
            # next start builds its spec from them.  A running or paused one gets
            # them now, and keeps them only if the runtime took them.
            if c.state.running and c.state.status != "restarting":
                await self._apply_live(c, adjusted)
            c.host_config = new_hc
            self.store.save(c)
        self.store.emit(c, "update")
        return warnings

    async def _apply_live(self, c: Container, req: Mapping[str, Any]) -> None:
        devmap = await asyncio.to_thread(_stat_block_devices, req)
        res = runtime_resources(req, devmap)
        rt = self.runner.runtime_for(c)
        direct: dict[str, Any] = {}
        if _is_crun(rt):
            res, direct = split_crun_unlimited(res)
        try:
            if res:
                await rtcmd.update(rt, c.id, res)
            if direct:
                cg = await self.stats.container_cgroup(c)
                await asyncio.to_thread(write_unlimited, cg, direct)
        except (DockyardError, OSError) as e:
            msg = e.message if isinstance(e, DockyardError) else str(e)
            error = InvalidParameter if _KERNEL_REFUSED.search(msg) else SystemError_
            raise error(f"Cannot update container {c.id}: {msg}") from None
