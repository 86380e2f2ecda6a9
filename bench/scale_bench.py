"""dockyard at scale: many running containers (the speed issue's "flat at
scale" targets), optionally side by side with Docker Engine.

    .venv/bin/python bench/scale_bench.py [--count 500] [--dockerd [--dockerd-count N]]
                                          [--workdir DIR] [--tree CHECKOUT]

Starts a private dockyard (its own data root, socket and exec root), runs
`busybox sleep 3600` containers on the default bridge network, as users run
them, and measures
- at 10 containers: `docker ps` (CLI, median), inspect (GET
  /containers/{id}/json, median), the time to create and start one
  (median of the first few);
- at --count: the same, the start of the last few, the daemon's RSS and its
  monitors' (conmon and the log FIFO's keeper of every container), the
  daemon's CPU while idle (utime+stime from /proc over 15 s),
  `docker stats --no-stream` of all of them;
- then kills the daemon with SIGKILL, starts it again on the same data root,
  and measures the time to the first `_ping` answered and the time until
  every container is running in `GET /containers/json` and a sample of them
  answers exec and stats; a killed sample's exit is then seen (the exit
  monitor watches it again).
Everything is removed at the end, also on failure or Ctrl-C, and what could
be left on the host (bridges, firewall chains, mounts, cgroups, monitor
processes) is checked: the script fails if anything is.  Prints the
figures with the targets beside them; asserts no timing.  Needs root.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from network_bench import cleanup_dockyard, cli, start_reference_dockerd
from run import ROOT, api, start_dockyard, stop

from tests.integration.network.refdocker import forward_policy, remove_docker_networking

CLK_TCK = os.sysconf("SC_CLK_TCK")
CMD = ["sleep", "3600"]
FIRST = 10            # the small figure everything at scale is compared with
FEW = 5               # starts whose median counts as "the first" and "the last"
IDLE_SECONDS = 15
CGROUP_ROOT = Path("/sys/fs/cgroup")


# ------------------------------------------------------------------ /proc readings

def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_kb(pids: list[int]) -> tuple[int, int]:
    """(RSS, PSS) of the processes together, in KiB."""
    rss = pss = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            pass
    return rss, pss


def processes_matching(text: str, also: str = "") -> list[int]:
    """Processes whose command line contains `text` (and `also`)."""
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            with contextlib.suppress(OSError):
                cmdline = (p / "cmdline").read_bytes()
                if text.encode() in cmdline and also.encode() in cmdline:
                    out.append(int(p.name))
    return out


def median_ms(fn: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1000


# ------------------------------------------------------------------ engines

class Engine:
    """What the measurements need of either engine."""

    name = ""
    sock = ""

    def daemon_pids(self) -> list[int]:
        raise NotImplementedError

    def monitor_pids(self) -> list[int]:
        raise NotImplementedError

    def kill_and_restart(self) -> float:
        """SIGKILL the daemon, start it again; returns the start time (perf_counter)."""
        raise NotImplementedError


class Dockyard(Engine):
    name = "dockyard"

    def __init__(self, base: Path, tree: Path) -> None:
        self.base, self.tree = base, tree
        self.exec_root = f"/run/dockyard-scale-{os.getpid()}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.seen_monitors: dict[int, bytes] = {}

    def start(self) -> None:
        self.starts += 1
        self.proc, self.sock = start_dockyard(self.base, self.tree, self.exec_root,
                                              log=f"dockyard.{self.starts}.log")

    def daemon_pids(self) -> list[int]:
        return [self.proc.pid] if self.proc else []

    def monitor_pids(self) -> list[int]:
        """Every container's conmon and log FIFO keeper, from its bundle
        (remembered, to check at the end that none is left)."""
        pids = []
        for bundle in Path(self.exec_root, "bundles").glob("*"):
            for f in ("conmon.pid", "log-keeper.pid"):
                with contextlib.suppress(OSError, ValueError):
                    pid = int((bundle / f).read_text().strip())
                    self.seen_monitors[pid] = Path(f"/proc/{pid}/cmdline").read_bytes()
                    pids.append(pid)
        return pids

    def kill_and_restart(self) -> float:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        t = time.perf_counter()
        self.start()
        return t

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None
        cleanup_dockyard(self.base, self.tree, self.exec_root)

    def leftovers(self, ids: list[str]) -> list[str]:
        from dockyard.engine.networks.store import HostNames

        names = HostNames.for_data_root(self.base / "data")
        left = []
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        left += [f"link {line.split(':')[1].strip()}" for line in links.splitlines()
                 if line.split(":")[1].strip().startswith(names.default_bridge)]
        rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
        left += [f"firewall {line}" for line in rules.splitlines()
                 if names.chain_prefix + "-" in line]
        roots = (str(self.base), self.exec_root)
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            if line.split()[4].startswith(roots):
                left.append(f"mount {line.split()[4]}")
        left += [f"process {pid}" for pid in processes_matching(self.exec_root)]
        for pid, cmdline in self.seen_monitors.items():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/cmdline").read_bytes() == cmdline:
                    left.append(f"monitor process {pid} {cmdline!r}")
        left += [f"cgroup {cg}" for cid in ids
                 for cg in [*CGROUP_ROOT.glob(f"*/dockyard/{cid}"),
                            *CGROUP_ROOT.glob(f"dockyard/{cid}")]]
        for sub in ("bundles", "netns"):
            with contextlib.suppress(OSError):
                left += [f"{sub}/{p.name}" for p in Path(self.exec_root, sub).iterdir()]
        shutil.rmtree(self.exec_root, ignore_errors=True)
        return left


class Dockerd(Engine):
    """Docker Engine 20.10 with its default networking, and live restore so
    that its containers survive a killed daemon as dockyard's do."""

    name = "dockerd"
    EXEC_ROOT = "/run/bench-net-docker"

    def __init__(self, base: Path, busybox_tar: Path) -> None:
        self.base, self.tar = base, busybox_tar
        self.proc: subprocess.Popen[bytes] | None = None
        self.policy = forward_policy()

    def start(self, tar: Path | None) -> None:
        self.proc, self.sock = start_reference_dockerd(self.base, tar, ("--live-restore",))

    def daemon_pids(self) -> list[int]:
        return ([self.proc.pid] if self.proc else []) + [
            p for p in processes_matching(f"{self.EXEC_ROOT}/containerd/containerd.toml")]

    def monitor_pids(self) -> list[int]:
        return processes_matching(f"{self.EXEC_ROOT}/containerd/containerd.sock",
                                  also="containerd-shim")

    def kill_and_restart(self) -> float:
        assert self.proc is not None
        containerd = [p for p in self.daemon_pids() if p != self.proc.pid]
        self.proc.kill()
        self.proc.wait()
        # its containerd dies with it: a new dockerd would wait for that one
        while any(Path(f"/proc/{p}").exists() for p in containerd):
            time.sleep(0.01)
        t = time.perf_counter()
        # dockerd refuses to start beside the pidfile a killed one left
        Path("/run/bench-net-docker.pid").unlink(missing_ok=True)
        self.start(None)
        return t

    def stop(self, ids: list[str]) -> None:
        """Stop it and take out what it leaves: containerd, its shims, and
        (had the daemon died) the containers' processes and cgroups."""
        if self.proc is not None:
            stop(self.proc)
            self.proc = None
        subprocess.run(["pkill", "-f", self.EXEC_ROOT], capture_output=True)
        time.sleep(1)
        for cid in ids:
            for cg in CGROUP_ROOT.glob(f"*/docker/{cid}"):
                with contextlib.suppress(OSError):
                    for pid in (cg / "cgroup.procs").read_text().split():
                        with contextlib.suppress(OSError):
                            os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.5)
        for cid in ids:
            for cg in CGROUP_ROOT.glob(f"*/docker/{cid}"):
                with contextlib.suppress(OSError):
                    cg.rmdir()
        remove_docker_networking(self.policy)
        for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
            if line.split()[4].startswith((self.EXEC_ROOT, "/var/lib/bench-net-docker")):
                subprocess.run(["umount", "-l", line.split()[4]], capture_output=True)
        shutil.rmtree("/var/lib/bench-net-docker", ignore_errors=True)
        shutil.rmtree(self.EXEC_ROOT, ignore_errors=True)
        Path("/run/bench-net-docker.pid").unlink(missing_ok=True)


# ------------------------------------------------------------------ the measurements

def run_one(sock: str, daemon: list[int]) -> tuple[str, float, float, float]:
    """Create and start one container: (id, create+start ms, start ms, the
    daemon's CPU ms for both).  The CPU time says what the wall time cannot
    on a shared machine: whether the daemon's own work grows with the count."""
    cpu = sum(map(cpu_seconds, daemon))
    t = time.perf_counter()
    st, body = api(sock, "POST", "/containers/create", {"Image": "busybox", "Cmd": CMD})
    if st != 201:
        raise RuntimeError(f"create: {st} {body!r}")
    cid = json.loads(body)["Id"]
    t1 = time.perf_counter()
    st, body = api(sock, "POST", f"/containers/{cid}/start")
    if st != 204:
        raise RuntimeError(f"start: {st} {body!r}")
    t2 = time.perf_counter()
    return cid, (t2 - t) * 1000, (t2 - t1) * 1000, (sum(map(cpu_seconds, daemon)) - cpu) * 1000


def listing_figures(sock: str, ids: list[str], runs: int) -> dict[str, float]:
    def ps() -> None:
        assert len(cli(sock, "ps", "-q").split()) == len(ids)

    step = max(1, len(ids) // 50)
    sample = ids[::step][:50]

    def inspect(cid: str) -> float:
        t = time.perf_counter()
        st, body = api(sock, "GET", f"/containers/{cid}/json")
        assert st == 200, body
        return (time.perf_counter() - t) * 1000

    for cid in sample[:3]:
        inspect(cid)                                  # warm-up
    return {
        "docker ps, median (ms)": (ps(), median_ms(ps, runs))[1],
        "GET /containers/json, median (ms)": median_ms(
            lambda: api(sock, "GET", "/containers/json"), runs),
        "inspect: GET /containers/{id}/json, median (ms)": statistics.median(
            inspect(c) for c in sample),
    }


def idle_cpu(pids: list[int], seconds: float) -> float:
    """% of one core the processes used together over `seconds`."""
    time.sleep(2)
    c0, t0 = sum(map(cpu_seconds, pids)), time.monotonic()
    time.sleep(seconds)
    return (sum(map(cpu_seconds, pids)) - c0) / (time.monotonic() - t0) * 100


def stats_wall(sock: str, ids: list[str] | None = None, runs: int = 3) -> float:
    """`docker stats --no-stream` of all running containers (or of `ids`).
    The CLI prints at its first 500 ms tick after every container's first
    answer, and a stream=false answer carries two samples 1 s apart (the
    CPU % needs both): 1.5 s is the least it can take of any daemon."""
    def once() -> None:
        out = cli(sock, "stats", "--no-stream", "--format", "{{.ID}} {{.CPUPerc}}", *(ids or []))
        assert out.strip(), "no stats"
    return median_ms(once, runs) / 1000


def stats_over_api(sock: str, ids: list[str], query: str) -> float:
    """Seconds until every container's stats answered, all asked at once
    (as the CLI does, one connection each)."""
    def one(cid: str) -> None:
        st, body = api(sock, "GET", f"/containers/{cid}/stats?{query}")
        assert st == 200 and json.loads(body).get("memory_stats"), body
    t = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(ids)) as pool:
        list(pool.map(one, ids))
    return time.perf_counter() - t


def all_running(sock: str, ids: set[str]) -> bool:
    try:
        st, body = api(sock, "GET", "/containers/json")
    except OSError:
        return False
    if st != 200:
        return False
    running = {c["Id"] for c in json.loads(body) if c.get("State") == "running"}
    return ids <= running


def sample_answers(sock: str, cid: str) -> bool:
    """exec and one-shot stats work on the container."""
    st, body = api(sock, "POST", f"/containers/{cid}/exec",
                   {"Cmd": ["true"], "AttachStdout": False, "AttachStderr": False})
    if st != 201:
        return False
    eid = json.loads(body)["Id"]
    if api(sock, "POST", f"/exec/{eid}/start", {"Detach": True})[0] != 200:
        return False
    for _ in range(200):
        st, body = api(sock, "GET", f"/exec/{eid}/json")
        info = json.loads(body)
        if not info.get("Running") and info.get("ExitCode") == 0:
            break
        time.sleep(0.01)
    else:
        return False
    st, body = api(sock, "GET", f"/containers/{cid}/stats?stream=false&one-shot=true")
    return st == 200 and bool(json.loads(body).get("memory_stats"))


def restart_figures(eng: Engine, ids: list[str]) -> dict[str, float]:
    t0 = eng.kill_and_restart()           # returns once _ping answers
    ping = time.perf_counter() - t0
    want = set(ids)
    samples = [ids[0], ids[len(ids) // 2], ids[-1]]
    deadline = time.perf_counter() + 120
    while not (all_running(eng.sock, want) and all(sample_answers(eng.sock, c) for c in samples)):
        if time.perf_counter() > deadline:
            st, body = api(eng.sock, "GET", "/containers/json")
            running = sum(c.get("State") == "running" for c in json.loads(body))
            raise RuntimeError(f"the containers were not all back after 120 s: {running} "
                               f"running, samples {[sample_answers(eng.sock, c) for c in samples]}")
        time.sleep(0.05)
    back = time.perf_counter() - t0
    # the exit monitor watches them again: a killed container's exit is seen
    victim = ids[len(ids) // 2]
    t = time.perf_counter()
    api(eng.sock, "POST", f"/containers/{victim}/kill")
    st, body = api(eng.sock, "POST", f"/containers/{victim}/wait")
    assert st == 200 and json.loads(body)["StatusCode"] == 137, body
    seen = time.perf_counter() - t
    return {"kill -9, restart: first _ping answered (s)": ping,
            "kill -9, restart: all running, sample answers exec+stats (s)": back,
            "after the restart: a killed container's exit seen (s)": seen}


def measure(eng: Engine, count: int, runs: int, ids: list[str],
            report: Callable[[str, float], None]) -> None:
    """Fill `ids` as containers are made (the caller removes them)."""
    starts: list[float] = []
    start_only: list[float] = []
    cpu: list[float] = []
    daemon = eng.daemon_pids()
    report("load average (1 min) at the start", os.getloadavg()[0])

    def run_until(n: int) -> None:
        while len(ids) < n:
            cid, took, start, used = run_one(eng.sock, daemon)
            ids.append(cid)
            starts.append(took)
            start_only.append(start)
            cpu.append(used)
            if len(ids) % 50 == 0:
                print(f"  [{eng.name}] {len(ids)} running", file=sys.stderr, flush=True)

    run_until(min(FIRST, count))
    # the very first start pays for warming up (image, network, caches)
    report(f"create+start, median of containers 2-{FEW + 1} (ms)",
           statistics.median(starts[1:FEW + 1]))
    report(f"start alone, median of containers 2-{FEW + 1} (ms)",
           statistics.median(start_only[1:FEW + 1]))
    report(f"daemon CPU per create+start, mean of containers 2-{FIRST} (ms)",
           statistics.mean(cpu[1:FIRST]))
    for k, v in listing_figures(eng.sock, ids, runs).items():
        report(f"{k}, {len(ids)} running", v)
    run_until(count)
    report(f"create+start, median of the last {FEW} (ms)", statistics.median(starts[-FEW:]))
    report(f"start alone, median of the last {FEW} (ms)", statistics.median(start_only[-FEW:]))
    report(f"daemon CPU per create+start, mean of the last {FIRST - 1} (ms)",
           statistics.mean(cpu[-(FIRST - 1):]))
    for k, v in listing_figures(eng.sock, ids, runs).items():
        report(f"{k}, {count} running", v)
    time.sleep(2)
    drss, dpss = memory_kb(eng.daemon_pids())
    mons = eng.monitor_pids()
    mrss, mpss = memory_kb(mons)
    report("daemon RSS (MB)", drss / 1024)
    report(f"monitors' RSS, {len(mons)} processes (MB)", mrss / 1024)
    report("daemon + monitors RSS (MB)", (drss + mrss) / 1024)
    report("daemon + monitors PSS (MB)", (dpss + mpss) / 1024)
    report(f"daemon idle CPU over {IDLE_SECONDS} s (% of a core)",
           idle_cpu(eng.daemon_pids(), IDLE_SECONDS))
    report(f"docker stats --no-stream of {count}, median of 3 (s)", stats_wall(eng.sock))
    report("docker stats --no-stream of 1 (s)", stats_wall(eng.sock, ids[:1]))
    report(f"stats of {count} at once over the API, stream=false (s)",
           stats_over_api(eng.sock, ids, "stream=false"))
    report(f"stats of {count} at once over the API, one-shot (s)",
           stats_over_api(eng.sock, ids, "stream=false&one-shot=true"))
    for k, v in restart_figures(eng, ids).items():
        report(k, v)
    drss, _ = memory_kb(eng.daemon_pids())
    report("daemon RSS after the restart (MB)", drss / 1024)


def remove_all(sock: str, ids: list[str]) -> None:
    def rm(cid: str) -> None:
        st, body = api(sock, "DELETE", f"/containers/{cid}?force=1")
        if st not in (204, 404):
            print(f"removing {cid[:12]}: {st} {body!r}", file=sys.stderr)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(rm, ids))


def targets(count: int, first: dict[str, float]) -> dict[str, str]:
    """The issue's targets for the figures they apply to."""
    def at(k: str) -> float:
        return first.get(k, float("nan"))
    return {
        "daemon + monitors RSS (MB)": f"<= {60 + 2 * count}",
        f"docker ps, median (ms), {count} running":
            f"<= {1.5 * at(f'docker ps, median (ms), {FIRST} running'):.1f}",
        f"inspect: GET /containers/{{id}}/json, median (ms), {count} running":
            f"<= {1.5 * at(f'inspect: GET /containers/{{id}}/json, median (ms), {FIRST} running'):.1f}",
        f"create+start, median of the last {FEW} (ms)":
            f"<= {1.2 * at(f'create+start, median of containers 2-{FEW + 1} (ms)'):.1f}",
        f"daemon idle CPU over {IDLE_SECONDS} s (% of a core)": "< 1",
        f"docker stats --no-stream of {count}, median of 3 (s)": "< 1 (the CLI: >= 1.5)",
        "kill -9, restart: first _ping answered (s)": "<= 1",
        "kill -9, restart: all running, sample answers exec+stats (s)": "<= 5",
    }


def interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--runs", type=int, default=9, help="samples per latency median")
    ap.add_argument("--dockerd", action="store_true", help="measure Docker Engine too")
    ap.add_argument("--no-dockyard", action="store_true", help="only Docker Engine")
    ap.add_argument("--dockerd-count", type=int, default=None,
                    help="containers for Docker Engine (default: --count)")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="where the private data root goes (default: a new dir in /var/tmp)")
    ap.add_argument("--tree", type=Path, default=ROOT)
    ns = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2
    if ns.count < FIRST:
        ap.error(f"--count must be at least {FIRST}")
    if ns.workdir is not None:
        ns.workdir.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="dockyard-scale-", dir=ns.workdir or "/var/tmp"))
    signal.signal(signal.SIGTERM, interrupted)     # cleans up as Ctrl-C does
    # the daemons run with their bytecode cached, as an installed one does
    # (compiling every module again would add 0.4 s to each start here)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    left: list[str] = []
    dy = Dockyard(base, ns.tree.resolve())
    tar = base / "busybox.tar"
    ids: list[str] = []
    try:
        dy.start()
        res: dict[str, float] = {}
        try:
            if not ns.no_dockyard:
                measure(dy, ns.count, ns.runs, ids, lambda k, v: res.__setitem__(k, v))
            cli(dy.sock, "save", "-o", str(tar), "busybox")
        finally:
            if dy.proc is None or dy.proc.poll() is not None:
                dy.start()                    # it must remove what it made
            remove_all(dy.sock, ids)
            dy.stop()
            left += dy.leftovers(ids)
        if res:
            show("dockyard", ns.count, res)
            print("  " + ("left behind: " + ", ".join(left) if left else "nothing left behind"),
                  flush=True)
        if ns.dockerd and shutil.which("dockerd"):
            if subprocess.run(["ip", "link", "show", "docker0"],
                              capture_output=True).returncode == 0 or \
                    processes_matching(Dockerd.EXEC_ROOT):
                raise RuntimeError("docker0 exists or another benchmark's Docker Engine "
                                   "runs: not starting one beside it")
            ref = Dockerd(base, tar)
            ids = []
            try:
                ref.start(tar)
                res = {}
                measure(ref, ns.dockerd_count or ns.count, ns.runs, ids,
                        lambda k, v: res.__setitem__(k, v))
            finally:
                if ref.proc is not None and ref.proc.poll() is None:
                    remove_all(ref.sock, ids)
                ref.stop(ids)
            show("dockerd", ns.dockerd_count or ns.count, res)
    except KeyboardInterrupt:
        print("interrupted; everything was removed", file=sys.stderr)
        return 130
    except Exception:
        for log in sorted(base.glob("*.log")):      # why a daemon failed
            print(f"--- {log.name}, last lines:\n" + "\n".join(
                log.read_text(errors="replace").splitlines()[-15:]), file=sys.stderr)
        raise
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if left else 0


def show(engine: str, count: int, values: dict[str, float]) -> None:
    """One engine's figures with the targets beside them, as soon as measured."""
    load = os.getloadavg()
    print(f"[{engine}] {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
          f"now {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} CPUs", flush=True)
    want = targets(count, values)
    for k, v in values.items():
        print(f"  {k:72} {v:9.2f}  {want.get(k, '')}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
