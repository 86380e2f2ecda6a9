"""Stats benchmarks (issue 5): one-shot latency and the cost of 50 streams.

    .venv/bin/python bench/stats_bench.py [--containers 50] [--seconds 10]

Starts a private dockyard daemon (socket and data root under a temp dir,
exec root under /run), then measures:
- the latency of `GET /containers/{id}/stats?stream=false&one-shot=true`
  over the API (median and p95 of 200), and the raw cost of one sample
  (the cgroup + /proc reads the daemon does, timed in this process);
- `stream=false` without one-shot (two samples, ~1 s: Docker's semantics);
- the daemon's CPU time while N containers each have a streaming client
  (plus, for comparison, with the same containers and no clients).
Prints the figures; asserts nothing.  Needs root.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CLK_TCK = os.sysconf("SC_CLK_TCK")


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=60)
        self.unix_path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.unix_path)
        self.sock = s


def api(conn: UnixHTTP, method: str, path: str, body: object | None = None
        ) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data,
                 headers={"Content-Type": "application/json"} if data else {})
    r = conn.getresponse()
    return r.status, r.read()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its reaped children), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def start_daemon(base: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    sock = str(base / "d.sock")
    exec_root = f"/run/dockyard-stats-bench-{os.getpid()}"
    log = open(base / "daemon.log", "ab")  # stays open as long as the daemon runs
    proc = subprocess.Popen(
        [sys.executable, "-m", "dockyard.cli", "daemon", "-H", f"unix://{sock}",
         "--data-root", str(base / "data"), "--exec-root", exec_root],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=ROOT, start_new_session=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        if os.path.exists(sock):
            try:
                if api(UnixHTTP(sock), "GET", "/_ping")[0] == 200:
                    return proc, sock, exec_root
            except OSError:
                pass
        if proc.poll() is not None:
            raise RuntimeError((base / "daemon.log").read_text())
        time.sleep(0.05)
    raise RuntimeError("daemon did not answer")


def start_containers(sock: str, n: int) -> list[str]:
    conn = UnixHTTP(sock)
    ids = []
    for _ in range(n):
        st, body = api(conn, "POST", "/containers/create",
                       {"Image": "busybox", "Cmd": ["sleep", "3600"]})
        assert st == 201, body
        cid = json.loads(body)["Id"]
        st, body = api(conn, "POST", f"/containers/{cid}/start")
        assert st == 204, body
        ids.append(cid)
    return ids


class StreamClients:
    """N raw streaming stats connections, drained by one thread."""

    def __init__(self, sock: str, ids: list[str]) -> None:
        self.sel = selectors.DefaultSelector()
        self.bytes = 0
        self.objects = 0
        self.stop = threading.Event()
        for cid in ids:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sock)
            s.sendall(f"GET /v1.47/containers/{cid}/stats?stream=1 HTTP/1.1\r\n"
                      "Host: localhost\r\n\r\n".encode())
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ)
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        while not self.stop.is_set():
            for key, _ in self.sel.select(0.2):
                try:
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                except BlockingIOError:
                    continue
                self.bytes += len(data)
                self.objects += data.count(b'"os_type"')

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]


def raw_sample_cost(cid: str, runs: int = 200) -> float:
    """Median µs of one sample's file reads, as the daemon does them."""
    from dockyard.engine.stats import read_sample

    from dockyard.cgroups import detect_cgroups, locate_container_cgroup
    from dockyard.cgroups.stats import read_memory_total

    cg = locate_container_cgroup(detect_cgroups(), f"/dockyard/{cid}")
    mem = read_memory_total()
    pid = 0
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        s = read_sample(cg, pid, mem)
        out.append(time.perf_counter() - t)
        assert s.parts is not None
    return statistics.median(out) * 1e6


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=10)
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="dockyard-stats-bench-", dir="/var/tmp"))
    proc, sock, exec_root = start_daemon(base)
    results: dict[str, str] = {}
    try:
        ids = start_containers(sock, a.containers)
        conn = UnixHTTP(sock)
        path = f"/containers/{ids[0]}/stats?stream=false&one-shot=true"
        api(conn, "GET", path)                       # warm-up (cgroup detection)
        lat = []
        for _ in range(200):
            t = time.perf_counter()
            st, body = api(conn, "GET", path)
            lat.append(time.perf_counter() - t)
            assert st == 200, body
        lat.sort()
        results["one-shot stats over the API, median (ms)"] = f"{statistics.median(lat)*1e3:.2f}"
        results["one-shot stats over the API, p95 (ms)"] = f"{lat[int(len(lat)*0.95)]*1e3:.2f}"
        results["one sample's file reads, median (us)"] = f"{raw_sample_cost(ids[0]):.0f}"
        t = time.perf_counter()
        api(conn, "GET", f"/containers/{ids[0]}/stats?stream=false")
        results["stream=false, two samples (ms)"] = f"{(time.perf_counter()-t)*1e3:.0f}"
        conn.close()

        time.sleep(1)
        c0, t0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(a.seconds)
        idle = (cpu_seconds(proc.pid) - c0) / (time.monotonic() - t0) * 100
        results[f"daemon CPU, {a.containers} running, no stats clients (% of a core)"] = \
            f"{idle:.2f}"

        clients = StreamClients(sock, ids)
        time.sleep(2)                                # let every sampler start
        c0, t0, n0 = cpu_seconds(proc.pid), time.monotonic(), clients.objects
        time.sleep(a.seconds)
        busy = (cpu_seconds(proc.pid) - c0) / (time.monotonic() - t0) * 100
        objs = clients.objects - n0
        clients.close()
        results[f"daemon CPU, {a.containers} streaming stats (% of a core)"] = f"{busy:.2f}"
        results["stats objects received per second"] = f"{objs / a.seconds:.1f}"
        for cid in ids:
            c = UnixHTTP(sock)
            api(c, "DELETE", f"/containers/{cid}?force=1")
            c.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        subprocess.run(["umount", "-l", f"{exec_root}/netns"], capture_output=True)
        shutil.rmtree(exec_root, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)
    width = max(map(len, results))
    for k, v in results.items():
        print(f"{k:<{width}}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
