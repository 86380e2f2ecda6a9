"""Pure parsers for cgroup and /proc file text.

Each takes the file's text and returns plain values; nothing here does I/O,
so the v1 and v2 formats are tested against captured file contents.  Bad or
truncated lines are skipped rather than raised: a file read while the
container exits can be cut short, and stats must still come back.
"""

from __future__ import annotations

from dataclasses import dataclass

# Clock ticks per second for /proc/stat and cpuacct.stat.  USER_HZ is 100 on
# every Linux ABI that matters, and dockerd/containerd hard-code it too, so
# using sysconf would only add a way to disagree with them.
USER_HZ = 100
NS_PER_TICK = 1_000_000_000 // USER_HZ

UINT64_MAX = (1 << 64) - 1

# v1 reports "no limit" as PAGE_COUNTER_MAX pages, e.g. 9223372036854771712
# with 4 KiB pages; the exact number depends on the page size, so anything
# this close to 2^63 means unlimited.
V1_UNLIMITED_AT = (1 << 63) - (1 << 16)


# The key for the unified (v2) hierarchy, as in /proc/<pid>/cgroup's "0::" line.
UNIFIED = ""


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/<pid>/cgroup text -> {controller: path}.

    `4:cpu,cpuacct:/x` yields both "cpu" and "cpuacct"; a named hierarchy
    keeps its `name=systemd` key; the v2 line `0::/x` is keyed "".
    """
    result: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        _, ctrls, path = parts
        if not ctrls:
            result[UNIFIED] = path
            continue
        for c in ctrls.split(","):
            result[c] = path
    return result


def parse_int(text: str | None) -> int | None:
    """A single-value file: an integer, or None for "max", empty or garbage."""
    if text is None:
        return None
    s = text.strip()
    if not s or s == "max":
        return None
    try:
        return int(s)
    except ValueError:
        return None


def parse_uint_or_max(text: str | None, max_value: int = UINT64_MAX) -> int:
    """containerd's reading of a single-value file: "max" -> `max_value`,
    negative -> 0, missing/garbage -> 0."""
    if text is not None and text.strip() == "max":
        return max_value
    v = parse_int(text)
    return max(v, 0) if v is not None else 0


def parse_flat_keyed(text: str | None) -> dict[str, int]:
    """`key value` lines (memory.stat, cpu.stat, cpuacct.stat, memory.events,
    memory.oom_control) -> {key: value}."""
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) != 2:
            continue
        try:
            out[parts[0]] = int(parts[1])
        except ValueError:
            continue
    return out


def parse_nested_keyed(text: str | None) -> dict[str, dict[str, int]]:
    """`name k=v k=v` lines (io.stat) -> {name: {k: v}}."""
    out: dict[str, dict[str, int]] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if not parts:
            continue
        values: dict[str, int] = {}
        for kv in parts[1:]:
            k, sep, v = kv.partition("=")
            if not sep:
                continue
            try:
                values[k] = int(v)
            except ValueError:
                continue
        out[parts[0]] = values
    return out


def parse_percpu(text: str | None) -> list[int]:
    """cpuacct.usage_percpu: space-separated ns per CPU."""
    out: list[int] = []
    for tok in (text or "").split():
        try:
            out.append(int(tok))
        except ValueError:
            break
    return out


def parse_blkio_v1(text: str | None) -> list[dict[str, int | str]]:
    """blkio.* `MAJ:MIN Op value` lines -> Docker blkio entries.

    The trailing bare `Total N` line (all devices) is dropped, as
    containerd does; per-device lines keep the kernel's op spelling
    (`Read`, `Write`, `Sync`, `Async`, `Discard`, `Total`).  Files without
    an op column (blkio.sectors_recursive, blkio.time_recursive) give op "".
    """
    out: list[dict[str, int | str]] = []
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) not in (2, 3) or ":" not in parts[0]:
            continue
        major_s, _, minor_s = parts[0].partition(":")
        op = parts[1] if len(parts) == 3 else ""
        try:
            major, minor, value = int(major_s), int(minor_s), int(parts[-1])
        except ValueError:
            continue
        out.append({"major": major, "minor": minor, "op": op, "value": value})
    return out


def parse_io_stat(text: str | None) -> list[dict[str, int | str]]:
    """v2 io.stat -> Docker io_service_bytes_recursive entries.

    Two entries per device, op "read" (rbytes) and "write" (wbytes), as
    dockerd builds them; the other counters have no Docker field.
    """
    out: list[dict[str, int | str]] = []
    for dev, values in parse_nested_keyed(text).items():
        major_s, _, minor_s = dev.partition(":")
        try:
            major, minor = int(major_s), int(minor_s)
        except ValueError:
            continue
        out.append({"major": major, "minor": minor, "op": "read",
                    "value": values.get("rbytes", 0)})
        out.append({"major": major, "minor": minor, "op": "write",
                    "value": values.get("wbytes", 0)})
    return out


def parse_cpu_max(text: str | None) -> tuple[int | None, int | None]:
    """v2 cpu.max `"$MAX $PERIOD"` -> (quota_us or None for "max", period_us)."""
    parts = (text or "").split()
    if not parts:
        return None, None
    quota = parse_int(parts[0])
    period = parse_int(parts[1]) if len(parts) > 1 else None
    return quota, period


def parse_cpuset_list(text: str | None) -> list[int]:
    """A cpuset list ("0-3,6,8-9") -> sorted CPU/node numbers."""
    out: set[int] = set()
    for piece in (text or "").strip().split(","):
        piece = piece.strip()
        if not piece:
            continue
        lo, sep, hi = piece.partition("-")
        try:
            if sep:
                out.update(range(int(lo), int(hi) + 1))
            else:
                out.add(int(lo))
        except ValueError:
            continue
    return sorted(out)


@dataclass(frozen=True)
class ProcStat:
    system_cpu_usage: int   # ns: first 7 fields of the `cpu` line, ticks -> ns
    online_cpus: int        # number of cpuN lines


def parse_proc_stat(text: str) -> ProcStat:
    """/proc/stat -> the host-wide numbers dockerd puts in cpu_stats."""
    total = 0
    ncpu = 0
    for line in text.splitlines():
        if line.startswith("cpu "):
            fields = line.split()[1:8]   # user nice system idle iowait irq softirq
            total = sum(int(f) for f in fields if f.isdigit())
        elif line.startswith("cpu") and line[3:4].isdigit():
            ncpu += 1
    return ProcStat(system_cpu_usage=total * NS_PER_TICK, online_cpus=ncpu)


_NET_DEV_FIELDS = (
    # receive: bytes packets errs drop fifo frame compressed multicast
    ("rx_bytes", 0), ("rx_packets", 1), ("rx_errors", 2), ("rx_dropped", 3),
    # transmit: bytes packets errs drop fifo colls carrier compressed
    ("tx_bytes", 8), ("tx_packets", 9), ("tx_errors", 10), ("tx_dropped", 11),
)


def parse_net_dev(text: str, *, include_loopback: bool = False) -> dict[str, dict[str, int]]:
    """/proc/<pid>/net/dev -> Docker `networks` {ifname: {rx_bytes, ...}}.

    `lo` is left out by default: dockerd reports the interfaces libnetwork
    put into the sandbox (eth0, eth1, ...), never the namespace's loopback.
    """
    out: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        if not sep or "|" in line:
            continue
        name = name.strip()
        if name == "lo" and not include_loopback:
            continue
        nums = rest.split()
        if len(nums) < 16:
            continue
        try:
            out[name] = {key: int(nums[i]) for key, i in _NET_DEV_FIELDS}
        except ValueError:
            continue
    return out
