"""dockyard benchmarks (issue 3 targets), side by side with dockerd when present.

    .venv/bin/python bench/run.py [--no-dockerd] [--runs N] [--tree CHECKOUT]

Starts a private dockyard daemon (and, if `dockerd` is installed, a private
dockerd with its own containerd) on sockets under /run, measures, prints a
table, and stops everything it started.  Medians on this machine; no timing
is asserted anywhere in the test suite.  `--tree` measures the daemon of
another checkout (an older commit, say) with these same measurements.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
ROOT = Path(__file__).resolve().parent.parent


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=60)
        self.path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.path)
        self.sock = s


def api(sock: str, method: str, path: str, body: object | None = None) -> tuple[int, bytes]:
    c = UnixHTTP(sock)
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data else {}
    c.request(method, path, body=data, headers=headers)
    r = c.getresponse()
    out = r.read()
    c.close()
    return r.status, out


def wait_socket(path: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path):
            try:
                if api(path, "GET", "/_ping")[0] == 200:
                    return
            except OSError:
                pass
        if proc.poll() is not None:
            raise RuntimeError("daemon exited early")
        time.sleep(0.05)
    raise RuntimeError(f"{path} never answered")


def rss_kb(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def pids_of(name: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"^(/usr/s?bin/)?{name}"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def time_cli(sock: str, args: list[str], runs: int) -> float:
    env = dict(os.environ, DOCKER_HOST=f"unix://{sock}")
    subprocess.run([DOCKER, *args], env=env, capture_output=True)  # warm-up
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([DOCKER, *args], env=env, capture_output=True, check=True)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1000


def bench_engine(sock: str, runs: int, daemon_pids: list[int], monitor: str | None
                 ) -> dict[str, float]:
    res: dict[str, float] = {}
    res["run --rm busybox true (ms)"] = time_cli(sock, ["run", "--rm", "busybox", "true"], runs)
    ids = []
    samples = []
    for _ in range(50):
        t = time.perf_counter()
        st, body = api(sock, "POST", "/containers/create", {"Image": "busybox", "Cmd": ["true"]})
        samples.append(time.perf_counter() - t)
        assert st == 201, body
        ids.append(json.loads(body)["Id"])
    res["create via API, median of 50 (ms)"] = statistics.median(samples) * 1000
    for _ in range(50):
        st, body = api(sock, "POST", "/containers/create", {"Image": "busybox", "Cmd": ["true"]})
        ids.append(json.loads(body)["Id"])
    samples = []
    for _ in range(20):
        t = time.perf_counter()
        st, body = api(sock, "GET", "/containers/json?all=1")
        samples.append(time.perf_counter() - t)
    assert len(json.loads(body)) >= 100
    res["GET /containers/json?all=1 with 100 (ms)"] = statistics.median(samples) * 1000
    samples = []
    for cid in ids[:50]:
        t = time.perf_counter()
        st, body = api(sock, "GET", f"/containers/{cid}/json")
        samples.append(time.perf_counter() - t)
        assert st == 200, body
    res["GET /containers/{id}/json (ms)"] = statistics.median(samples) * 1000
    for cid in ids:
        api(sock, "DELETE", f"/containers/{cid}?force=1")
    time.sleep(0.5)
    idle = rss_kb(daemon_pids)
    res["daemon RSS idle (MB)"] = idle / 1024
    running = []
    before_mon = rss_kb(pids_of(monitor)) if monitor else 0
    for _ in range(10):
        st, body = api(sock, "POST", "/containers/create",
                       {"Image": "busybox", "Cmd": ["sleep", "600"]})
        cid = json.loads(body)["Id"]
        api(sock, "POST", f"/containers/{cid}/start")
        running.append(cid)
    time.sleep(1)
    busy = rss_kb(daemon_pids) + (rss_kb(pids_of(monitor)) if monitor else 0) - before_mon
    res["RSS per running container, monitor included (MB)"] = (busy - idle) / 1024 / 10
    samples = []
    for _ in range(50):
        t = time.perf_counter()
        st, body = api(sock, "GET", f"/containers/{running[0]}/stats?stream=false&one-shot=true")
        samples.append(time.perf_counter() - t)
        assert st == 200, body
    res["one-shot stats through the API (ms)"] = statistics.median(samples) * 1000
    for cid in running:
        api(sock, "DELETE", f"/containers/{cid}?force=1")
    return res


def start_dockyard(base: Path, tree: Path, exec_root: str = "/run/dockyard-bench"
                   ) -> tuple[subprocess.Popen[bytes], str]:
    sock = str(base / "dockyard.sock")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dockyard.cli", "daemon", "-H", f"unix://{sock}",
         "--data-root", str(base / "data"), "--exec-root", exec_root],
        stdout=subprocess.DEVNULL, stderr=open(base / "dockyard.log", "wb"),
        start_new_session=True, cwd=tree)
    try:
        wait_socket(sock, proc)
    except BaseException:
        stop(proc)
        raise
    return proc, sock


def start_dockerd(base: Path, busybox_tar: Path) -> tuple[subprocess.Popen[bytes], str] | None:
    if not shutil.which("dockerd"):
        return None
    sock = "/run/bench-ref-docker.sock"
    proc = subprocess.Popen(
        ["dockerd", "-H", f"unix://{sock}", "--data-root", "/var/lib/bench-ref-docker",
         "--exec-root", "/run/bench-ref-docker", "--pidfile", "/run/bench-ref-docker.pid",
         "--bridge", "none", "--iptables=false"],
        stdout=subprocess.DEVNULL, stderr=open(base / "dockerd.log", "wb"),
        start_new_session=True)
    wait_socket(sock, proc, 60)
    env = dict(os.environ, DOCKER_HOST=f"unix://{sock}")
    subprocess.run([DOCKER, "load", "-i", str(busybox_tar)], env=env, check=True,
                   capture_output=True)
    return proc, sock


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--no-dockerd", action="store_true")
    ap.add_argument("--tree", type=Path, default=ROOT,
                    help="a dockyard checkout whose daemon to measure (default: this one)")
    ns = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="dockyard-bench-", dir="/var/tmp"))
    results: dict[str, dict[str, float]] = {}
    dy, sock = start_dockyard(base, ns.tree.resolve())
    try:
        # a container's monitor is its conmon and the keeper of its log FIFO
        results["dockyard"] = bench_engine(sock, ns.runs, [dy.pid],
                                           "(conmon|catatonit -P|sleep 2147483647)")
        tar = base / "busybox.tar"
        env = dict(os.environ, DOCKER_HOST=f"unix://{sock}")
        subprocess.run([DOCKER, "save", "-o", str(tar), "busybox"], env=env, check=True)
    finally:
        stop(dy)
    if not ns.no_dockerd:
        ref = start_dockerd(base, tar)
        if ref is not None:
            proc, rsock = ref
            try:
                pids = [proc.pid] + pids_of("containerd")
                results["dockerd"] = bench_engine(rsock, ns.runs, pids,
                                                  "containerd-shim-runc-v2")
            finally:
                stop(proc)
                subprocess.run(["pkill", "-f", "/run/bench-ref-docker"], capture_output=True)
    keys = list(results["dockyard"])
    print(f"{'measure':52} " + " ".join(f"{k:>10}" for k in results))
    for k in keys:
        print(f"{k:52} " + " ".join(f"{results[e].get(k, float('nan')):10.1f}"
                                      for e in results))
    shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
