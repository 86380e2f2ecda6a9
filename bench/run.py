"""dockyard against Docker Engine, side by side, in one run.

    .venv/bin/python bench/run.py [--no-dockerd] [--runs N] [--tree CHECKOUT]

Starts a private dockyard (its default bridge network on) and, when Debian's
`dockerd` is installed, a private dockerd 20.10 with its default networking
(docker0, iptables, userland proxy), both at once, and measures every row on
both engines in turn, sample by sample, so that whatever else the machine is
doing weighs on both alike.  Prints a table of medians with the ratio
dockyard/dockerd and each row's target, and stops and cleans up everything it
started.  No timing is asserted anywhere in the test suite.

The docker CLI rows are whole CLI commands, as a user types them.  The API
rows use a minimal HTTP/1.1 client (one kept-alive connection, requests
written as prepared bytes, responses read by Content-Length or chunks), so
that what is measured is the daemon and not the client library.

`--tree` measures the daemon of another checkout (an older commit, say) with
these same measurements.
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
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from instant import Answers, InstantServer  # bench/, beside this script

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


class RawClient:
    """One kept-alive HTTP/1.1 connection with as little client work as
    possible: the request is prepared bytes, the response is read by
    Content-Length or by chunks."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    @staticmethod
    def prepare(method: str, path: str, body: object | None = None) -> bytes:
        data = json.dumps(body).encode() if body is not None else b""
        head = f"{method} {path} HTTP/1.1\r\nHost: docker\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        return head.encode() + b"\r\n" + data

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 18)
        if not chunk:
            raise ConnectionError("daemon closed the connection")
        self.buf += chunk

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _line(self) -> bytes:
        while (i := self.buf.find(b"\r\n")) < 0:
            self._fill()
        out, self.buf = self.buf[:i], self.buf[i + 2:]
        return out

    def send(self, request: bytes) -> tuple[int, bytes]:
        self.sock.sendall(request)
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            self._fill()
        head, self.buf = self.buf[:end].decode("latin-1"), self.buf[end + 4:]
        lines = head.split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip()
                   for k, v in (ln.split(":", 1) for ln in lines[1:])}
        if request.startswith(b"HEAD") or status in (204, 304):
            return status, b""
        if "content-length" in headers:
            return status, self._take(int(headers["content-length"]))
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while size := int(self._line().split(b";")[0], 16):
                parts.append(self._take(size))
                self._take(2)
            while self._line():                       # trailers, then the blank line
                pass
            return status, b"".join(parts)
        raise RuntimeError(f"response without a length: {head!r}")


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


def docker(sock: str, *args: str) -> str:
    env = dict(os.environ, DOCKER_HOST=f"unix://{sock}")
    res = subprocess.run([DOCKER, *args], env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {res.stderr.strip()}")
    return res.stdout


def time_cli(sock: str, args: list[str], runs: int) -> float:
    env = dict(os.environ, DOCKER_HOST=f"unix://{sock}")
    subprocess.run([DOCKER, *args], env=env, capture_output=True)  # warm-up
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([DOCKER, *args], env=env, capture_output=True, check=True)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1000


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


class Engine:
    """One engine's socket, the containers made on it, and its samples."""

    def __init__(self, name: str, sock: str, daemon_pids: list[int], monitor: str) -> None:
        self.name, self.sock = name, sock
        self.daemon_pids, self.monitor = daemon_pids, monitor
        self.samples: dict[str, list[float]] = {}
        self.made: list[str] = []
        self.running = ""

    def add(self, row: str, ms: float) -> None:
        self.samples.setdefault(row, []).append(ms)

    def cli(self, *args: str) -> str:
        return docker(self.sock, *args)

    def run_d_rm(self) -> None:
        cid = self.cli("run", "-d", "busybox", "sleep", "600").strip()
        self.cli("rm", "-f", cid)

    def fifty_creates(self) -> None:
        c = RawClient(self.sock)
        req = RawClient.prepare("POST", "/containers/create",
                                {"Image": "busybox", "Cmd": ["true"]})
        try:
            for _ in range(50):
                st, body = c.send(req)
                assert st == 201, body
                self.made.append(json.loads(body)["Id"])
        finally:
            c.close()

    def api_samples(self, row: str, requests: list[bytes]) -> None:
        c = RawClient(self.sock)
        try:
            c.send(requests[0])                      # warm-up
            for req in requests:
                t = time.perf_counter()
                st, body = c.send(req)
                self.add(row, (time.perf_counter() - t) * 1000)
                assert st == 200, body[:200]
        finally:
            c.close()


ROWS = [  # (row, target ratio)
    ("docker run --rm busybox true", 0.5),
    ("docker run -d + docker rm -f", 0.5),
    ("docker exec c true", 0.5),
    ("50 creates through the API", 0.3),
    ("GET /containers/json?all=1, 100 containers", 0.5),
    ("GET /containers/{id}/json", 0.5),
    ("docker ps -a, 100 containers", 0.5),
]
# reference rows, no target: what every CLI row pays before any daemon
# work, and the cheapest request
FLOORS = ["docker CLI alone (docker --version)", "GET /_ping"]
# the same CLI commands against an engine answering from memory
# (bench/instant.py): what they cost with a daemon that takes no time
ANSWERED = ["docker exec c true", "docker ps -a, 100 containers"]


def measure(engines: list[Engine], runs: int, inst: Engine | None = None,
            server: InstantServer | None = None) -> None:
    """Every row on every engine in turn; `inst` (the CLI against `server`,
    an engine answering from memory what dockyard answered) takes its turn
    in the exec and `ps -a` rows."""
    def each(row: str, fn: Callable[[Engine], object], n: int,
             among: list[Engine] | None = None) -> None:
        among = among or engines
        for e in among:                                    # one untimed round
            fn(e)
        for _ in range(n):
            for e in among:
                e.add(row, timed(lambda e=e: fn(e)))

    dy = engines[0]
    with_floor = engines + ([inst] if inst is not None else [])
    each(ROWS[0][0], lambda e: e.cli("run", "--rm", "busybox", "true"), runs)
    each(ROWS[1][0], Engine.run_d_rm, runs)
    for e in engines:
        e.running = e.cli("run", "-d", "busybox", "sleep", "600").strip()
    if server is not None:
        server.answers = recorded_answers(dy, dy.running)
    each(ROWS[2][0], lambda e: e.cli("exec", e.running, "true"), runs, with_floor)
    for e in engines:
        e.cli("rm", "-f", e.running)
    each(ROWS[3][0], Engine.fifty_creates, max(3, runs // 5))
    for e in engines:                                      # 100 containers on each
        e.cli("rm", "-f", *e.made[100:])
        del e.made[100:]
    for _ in range(runs):
        for e in engines:
            e.api_samples(ROWS[4][0], [RawClient.prepare("GET", "/containers/json?all=1")] * 5)
    for _ in range(runs):
        for e in engines:
            e.api_samples(ROWS[5][0], [RawClient.prepare("GET", f"/containers/{cid}/json")
                                       for cid in e.made[:20]])
    if server is not None:
        st, listing = api(dy.sock, "GET", "/containers/json?all=1")
        assert st == 200, listing
        server.answers = replace(server.answers, containers_list=listing)
    each(ROWS[6][0], lambda e: e.cli("ps", "-a"), runs, with_floor)
    each(FLOORS[0], lambda e: e.cli("--version"), runs)
    for _ in range(runs):
        for e in engines:
            e.api_samples(FLOORS[1], [RawClient.prepare("GET", "/_ping")] * 20)


def recorded_answers(dy: Engine, cid: str) -> Answers:
    """What dockyard answers to the requests of `docker exec` on its
    running container `cid` (the listing is filled in later)."""
    st, exec_made = api(dy.sock, "POST", f"/containers/{cid}/exec", {"Cmd": ["true"]})
    assert st == 201, exec_made
    exec_id = json.loads(exec_made)["Id"]
    st, out = api(dy.sock, "POST", f"/exec/{exec_id}/start", {"Detach": True})
    assert st == 200, out
    for _ in range(200):
        st, exec_json = api(dy.sock, "GET", f"/exec/{exec_id}/json")
        if not json.loads(exec_json)["Running"]:
            break
        time.sleep(0.01)
    st, inspect = api(dy.sock, "GET", f"/containers/{cid}/json")
    return Answers(containers_list=b"[]", container_inspect=inspect,
                   exec_inspect=exec_json, exec_id=exec_id)


def footprint(e: Engine) -> dict[str, float]:
    """Idle RSS, RSS per running container, one-shot stats: reported, not compared.
    The daemon has run one container first: what it loads on first use
    (netlink, for one) is part of its idle size, not of the containers'."""
    out: dict[str, float] = {}
    e.cli("run", "--rm", "busybox", "true")
    time.sleep(0.5)
    idle = rss_kb(e.daemon_pids)
    out["daemon RSS, idle (MB)"] = idle / 1024
    before_mon = rss_kb(pids_of(e.monitor))
    running = [e.cli("run", "-d", "busybox", "sleep", "600").strip() for _ in range(10)]
    time.sleep(1)
    busy = rss_kb(e.daemon_pids) + rss_kb(pids_of(e.monitor)) - before_mon
    out["RSS per running container, monitor included (MB)"] = (busy - idle) / 1024 / 10
    samples = []
    for _ in range(20):            # dockerd ends this answer by closing: one connection each
        t = time.perf_counter()
        st, body = api(e.sock, "GET", f"/containers/{running[0]}/stats?stream=false&one-shot=true")
        samples.append((time.perf_counter() - t) * 1000)
        assert st == 200, body
    out["one-shot stats through the API (ms)"] = statistics.median(samples)
    e.cli("rm", "-f", *running)
    return out


def start_dockyard(base: Path, tree: Path, exec_root: str = "/run/dockyard-bench",
                   log: str = "dockyard.log") -> tuple[subprocess.Popen[bytes], str]:
    sock = str(base / "dockyard.sock")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dockyard.cli", "daemon", "-H", f"unix://{sock}",
         "--data-root", str(base / "data"), "--exec-root", exec_root],
        stdout=subprocess.DEVNULL, stderr=open(base / log, "ab"),
        start_new_session=True, cwd=tree)
    try:
        wait_socket(sock, proc)
    except BaseException:
        stop(proc)
        raise
    return proc, sock


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def report(engines: list[Engine], extra: dict[str, dict[str, float]],
           inst: Engine | None = None) -> None:
    names = [e.name for e in engines]
    width = 46
    print(f"{'measure (ms, medians)':{width}} " + " ".join(f"{n:>9}" for n in names)
          + ("    ratio  target" if len(engines) > 1 else ""))
    for row, target in ROWS:
        vals = [statistics.median(e.samples[row]) for e in engines]
        line = f"{row:{width}} " + " ".join(f"{v:9.2f}" for v in vals)
        if len(vals) > 1:
            ratio = vals[0] / vals[1]
            line += f"  {ratio:7.2f}  <= {target}" + ("" if ratio <= target else "  not met")
        print(line)
    for row in FLOORS:
        vals = [statistics.median(e.samples[row]) for e in engines]
        line = f"{row:{width}} " + " ".join(f"{v:9.2f}" for v in vals)
        if len(vals) > 1:
            line += f"  {vals[0] / vals[1]:7.2f}"
        print(line)
    for row in extra[names[0]]:
        print(f"{row:{width}} " + " ".join(f"{extra[n][row]:9.1f}" for n in names))
    if inst is None:
        return
    print("the CLI's own time: the same commands, taking their turn in the same rows, "
          "against an engine answering from memory what dockyard answered (bench/instant.py)")
    for row in ANSWERED:
        floor = statistics.median(inst.samples[row])
        line = f"  {row:{width - 2}} {floor:9.2f}"
        if len(engines) > 1:
            ref = statistics.median(engines[1].samples[row])
            line += f"  = {floor / ref:.2f} x dockerd's: no daemon gets this row below it"
        print(line)


def main() -> int:
    from network_bench import bench_dockyard, networked_dockerd

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--no-dockerd", action="store_true")
    ap.add_argument("--tree", type=Path, default=ROOT,
                    help="a dockyard checkout whose daemon to measure (default: this one)")
    ns = ap.parse_args()
    load = os.getloadavg()[0]
    base = Path(tempfile.mkdtemp(prefix="dockyard-bench-", dir="/var/tmp"))
    try:
        with bench_dockyard(base, ns.tree.resolve()) as sock:
            dy_pid = [int(p) for p in subprocess.run(
                ["pgrep", "-f", f"daemon -H unix://{sock}"], capture_output=True,
                text=True).stdout.split()]
            dy = Engine("dockyard", sock, dy_pid, "(conmon|catatonit -P|sleep 2147483647)")
            tar = base / "busybox.tar"
            dy.cli("save", "-o", str(tar), "busybox")
            engines = [dy]
            extra = {"dockyard": footprint(dy)}
            inst = Engine("from memory", str(base / "instant.sock"), [], "")
            inst.running = "c"
            empty = Answers(containers_list=b"[]", container_inspect=b"{}", exec_inspect=b"{}")
            with InstantServer(inst.sock, empty) as server:
                if ns.no_dockerd or not shutil.which("dockerd"):
                    measure(engines, ns.runs, inst, server)
                else:
                    with networked_dockerd(base, tar) as rsock:
                        pids = pids_of("dockerd -H unix:///run/bench-net-docker")
                        pids += pids_of("containerd --config /run/bench-net-docker")
                        ref = Engine("dockerd", rsock, pids, "containerd-shim-runc-v2")
                        extra["dockerd"] = footprint(ref)
                        engines.append(ref)
                        measure(engines, ns.runs, inst, server)
                        ref.cli("rm", "-f", *ref.made)
            dy.cli("rm", "-f", *dy.made)
        print(f"load average at start: {load:.2f}")
        report(engines, extra, inst)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
