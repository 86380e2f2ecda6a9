"""Events and many clients: subscribers and parallel `docker run --rm` loops.

    .venv/bin/python bench/load_bench.py [--seconds 60] [--subscribers 50]
        [--clients 20] [--dockerd | --no-dockerd] [--base DIR]

For each engine (a private dockyard; with `--dockerd`, or by default when
`dockerd` is installed, a private dockerd 20.10 with its default networking)
in one run: starts `--subscribers` real `docker events --format '{{json .}}'`
processes, each writing to its own file, waits until the daemon counts them
all (`NEventsListener`), then runs `--clients` loops of `docker run --rm
--cidfile F busybox true` for `--seconds`, recording each run's latency and
exit status.  Then it checks that no run failed and that every subscriber saw
every run's container events (whatever the engine emits, compared per engine)
exactly once and in the same order, and prints runs, p50/p99 latency, the
daemon's CPU time per run, failures and lost, duplicated or misordered
events per engine, and the ratio of the p99s.  Asserts nothing; exits 1 when
a run failed or an event went missing.  Everything it starts is stopped and
removed, also when something fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from network_bench import bench_dockyard, cli, networked_dockerd
from run import DOCKER, ROOT, api

from tests.integration.containers.eventcheck import Verdict, judge, read_stream

RUN_TIMEOUT = 120     # a run that hangs is a failure, not a hung benchmark


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)     # seconds, successful runs
    failures: list[str] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    cpu_s: float = 0.0
    load_before: float = 0.0      # the machine's 1-minute load average
    load_after: float = 0.0
    verdict: Verdict | None = None

    def pct(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))] * 1000


def cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / tick


def daemon_pids(sock: str) -> list[int]:
    """The daemon serving `sock` (the socket's peer) and its children
    other than container monitors (a dockerd's containerd)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(sock)
        pid = struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                               struct.calcsize("3i")))[0]
    pids = [pid]
    with contextlib.suppress(OSError):
        for kid in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            if Path(f"/proc/{kid}/comm").read_text().strip() == "containerd":
                pids.append(int(kid))
    return pids


@contextlib.contextmanager
def subscribers(sock: str, env: dict[str, str], out: Path, n: int) -> Iterator[list[Path]]:
    """`n` docker events processes, counted by the daemon before this yields."""
    before = json.loads(api(sock, "GET", "/info")[1])["NEventsListener"]
    files = [out / f"events-{i}.jsonl" for i in range(n)]
    procs = []
    try:
        for f in files:
            with open(f, "wb") as w:
                procs.append(subprocess.Popen(
                    [DOCKER, "events", "--format", "{{json .}}"], env=env, stdout=w,
                    stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.time() + 60
        while json.loads(api(sock, "GET", "/info")[1])["NEventsListener"] < before + n:
            if time.time() > deadline:
                raise RuntimeError("the subscribers never all connected")
            time.sleep(0.1)
        yield files
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def client_loop(env: dict[str, str], scratch: Path, tag: str, until: float,
                out: Outcome, lock: threading.Lock, stopping: threading.Event) -> None:
    n = 0
    while time.time() < until and not stopping.is_set():
        n += 1
        cidfile = scratch / f"{tag}-{n}.cid"
        t = time.perf_counter()
        try:
            res = subprocess.run([DOCKER, "run", "--rm", "--cidfile", str(cidfile),
                                  "busybox", "true"], env=env, capture_output=True, text=True,
                                 timeout=RUN_TIMEOUT)
            failure = "" if res.returncode == 0 else \
                f"exit {res.returncode}: {res.stderr.strip()[:300]}"
        except subprocess.TimeoutExpired:
            failure = f"no answer in {RUN_TIMEOUT} s"
        took = time.perf_counter() - t
        cid = cidfile.read_text().strip() if cidfile.exists() else ""
        with lock:
            if cid:
                out.ids.add(cid)
            if failure:
                out.failures.append(failure)
            else:
                out.latencies.append(took)


def load(sock: str, work: Path, ns: argparse.Namespace) -> Outcome:
    env = dict(os.environ, DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=str(work / "cfg"))
    env.pop("DOCKER_CONTEXT", None)
    work.mkdir()
    out = Outcome(load_before=os.getloadavg()[0])
    lock = threading.Lock()
    subprocess.run([DOCKER, "run", "--rm", "busybox", "true"], env=env, check=True,
                   capture_output=True)                                  # warm-up
    pids = daemon_pids(sock)
    with subscribers(sock, env, work, ns.subscribers) as files:
        cpu0 = cpu_seconds(pids)
        until = time.time() + ns.seconds
        stopping = threading.Event()
        threads = [threading.Thread(target=client_loop,
                                    args=(env, work, f"c{i}", until, out, lock, stopping))
                   for i in range(ns.clients)]
        try:
            for th in threads:
                th.start()
            for th in threads:
                th.join()
        finally:
            # stopped early: no new runs, and the ones under way end first
            stopping.set()
            for th in threads:
                th.join(RUN_TIMEOUT)
        out.cpu_s = cpu_seconds(pids) - cpu0
        out.load_after = os.getloadavg()[0]
        # the last destroy events are on their way: wait until every file has them
        deadline = time.time() + 20
        while time.time() < deadline and not all(
                f.read_text().count('"Action":"destroy"') >= len(out.ids) for f in files):
            time.sleep(0.5)
        time.sleep(1)
    out.verdict = judge([read_stream(f) for f in files], out.ids)
    return out


def report(results: dict[str, Outcome]) -> bool:
    ok = True
    for engine, o in results.items():
        v = o.verdict
        assert v is not None
        runs = len(o.latencies) + len(o.failures)
        print(f"[{engine}]")
        print(f"  runs completed            {len(o.latencies):8d} of {runs}")
        print(f"  p50 / p99 latency (ms)    {o.pct(50):8.0f} / {o.pct(99):.0f}")
        print(f"  daemon CPU per run (ms)   {o.cpu_s / max(1, runs) * 1000:8.1f}")
        print(f"  load average before/after {o.load_before:8.1f} / {o.load_after:.1f}")
        print(f"  failed runs               {len(o.failures):8d}")
        print(f"  subscribers x containers  {v.subscribers:8d} x {v.containers}")
        print(f"  events per container      {' '.join(v.canonical)}")
        print(f"  lost / duplicated / misordered events, disagreeing subscribers  "
              f"{v.lost} / {v.duplicated} / {v.misordered}, {v.disagreeing}")
        for line in [*o.failures[:5], *v.problems]:
            print(f"    {line}")
        ok = ok and not o.failures and v.ok
    if {"dockyard", "dockerd"} <= results.keys():
        print(f"p99 dockyard / dockerd: "
              f"{results['dockyard'].pct(99) / results['dockerd'].pct(99):.2f}")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--subscribers", type=int, default=50)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--dockerd", action=argparse.BooleanOptionalAction,
                    default=shutil.which("dockerd") is not None)
    ap.add_argument("--base", type=Path, default=Path("/var/tmp"),
                    help="where the private data roots and sockets go")
    ap.add_argument("--tree", type=Path, default=ROOT)
    ns = ap.parse_args()
    # stopped from outside, still clean up (the finally clauses below)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ns.base.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="dockyard-loadbench-", dir=ns.base))
    results: dict[str, Outcome] = {}
    tag = base.name.rsplit("-", 1)[-1]
    try:
        with bench_dockyard(base, ns.tree.resolve(), f"/run/dockyard-load-{tag}") as sock:
            results["dockyard"] = load(sock, base / "dockyard", ns)
            tar = base / "busybox.tar"
            cli(sock, "save", "-o", str(tar), "busybox")
        if ns.dockerd:
            with networked_dockerd(base, tar, tag=f"dockerd-load-{tag}") as rsock:
                results["dockerd"] = load(rsock, base / "dockerd", ns)
        return 0 if report(results) else 1
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
