"""docker build, dockyard against Docker Engine's classic builder, in one run.

    .venv/bin/python bench/build_bench.py [--runs N] [--no-dockerd]

Starts a private dockyard daemon and, when Debian's `dockerd` is installed,
a private dockerd 20.10 (its own socket, data root and exec root, no
bridge, no iptables), loads the same busybox image into it, and builds
the same 10-step Dockerfile (FROM busybox, RUN, COPY of a 20 MB context,
ENV, WORKDIR, RUN, ENV, LABEL, RUN, CMD) with the real docker CLI and
DOCKER_BUILDKIT=0 on both: cold (`--no-cache`) and again fully cached.
Both builds use `--network none`, since the reference dockerd has no
bridge.  Medians of N runs; nothing is asserted.  Every process started
here is stopped by its pid.
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
DOCKERFILE = """\
FROM busybox
RUN echo first > /first
COPY ctx/ /data/
ENV APP=bench
WORKDIR /app
RUN ls /data | wc -l > /app/count
ENV MORE=1
LABEL bench=build
RUN echo done > /app/done
CMD ["cat", "/app/count"]
"""


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self.unix_path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.unix_path)
        self.sock = s


def ping(sock: str) -> bool:
    try:
        c = UnixHTTP(sock)
        c.request("GET", "/_ping")
        ok = c.getresponse().status == 200
        c.close()
        return ok
    except OSError:
        return False


def wait_socket(sock: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(sock) and ping(sock):
            return
        if proc.poll() is not None:
            raise RuntimeError("daemon exited early")
        time.sleep(0.05)
    raise RuntimeError(f"{sock} never answered")


def make_context(base: Path) -> Path:
    ctx = base / "context"
    data = ctx / "ctx"
    data.mkdir(parents=True)
    for i in range(200):                      # 200 files of 100 KiB: 20 MB
        (data / f"file{i:03d}.bin").write_bytes(os.urandom(100 * 1024))
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    return ctx


def docker(sock: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, DOCKER_HOST=f"unix://{sock}", DOCKER_BUILDKIT="0")
    return subprocess.run([DOCKER, *args], env=env, capture_output=True, timeout=600)


def timed_build(sock: str, ctx: Path, *extra: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    res = docker(sock, "build", "--network", "none", "-t", "build-bench", *extra, str(ctx))
    elapsed = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"build failed: {res.stderr.decode()}{res.stdout.decode()}")
    return elapsed, res.stdout.decode()


def bench(sock: str, ctx: Path, runs: int) -> dict[str, float]:
    cold = [timed_build(sock, ctx, "--no-cache")[0] for _ in range(runs)]
    cached_runs = []
    for _ in range(runs):
        elapsed, out = timed_build(sock, ctx)
        if out.count("Using cache") != 9:
            raise RuntimeError(f"the cached build was not fully cached:\n{out}")
        cached_runs.append(elapsed)
    return {"cold build, 10 steps, 20 MB COPY (s)": statistics.median(cold),
            "same build again, fully cached (s)": statistics.median(cached_runs)}


def start_dockyard(base: Path) -> tuple[subprocess.Popen[bytes], str]:
    sock = str(base / "dockyard.sock")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dockyard.cli", "daemon", "-H", f"unix://{sock}",
         "--data-root", str(base / "dy-data"), "--exec-root", str(base / "dy-exec")],
        stdout=subprocess.DEVNULL, stderr=open(base / "dockyard.log", "wb"),
        start_new_session=True, cwd=ROOT)
    wait_socket(sock, proc)
    return proc, sock


def start_dockerd(base: Path, busybox_tar: Path) -> tuple[subprocess.Popen[bytes], str] | None:
    if not shutil.which("dockerd"):
        return None
    sock = str(base / "dockerd.sock")
    proc = subprocess.Popen(
        ["dockerd", "-H", f"unix://{sock}", "--data-root", str(base / "docker-data"),
         "--exec-root", str(base / "docker-exec"), "--pidfile", str(base / "dockerd.pid"),
         "--bridge", "none", "--iptables=false",
         "--containerd-namespace", "build-bench", "--containerd-plugins-namespace",
         "build-bench-plugins"],
        stdout=subprocess.DEVNULL, stderr=open(base / "dockerd.log", "wb"),
        start_new_session=True)
    wait_socket(sock, proc, 90)
    res = docker(sock, "load", "-i", str(busybox_tar))
    if res.returncode != 0:
        raise RuntimeError(f"docker load failed: {res.stderr.decode()}")
    return proc, sock


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-dockerd", action="store_true")
    ns = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="build-bench-", dir="/var/tmp"))
    ctx = make_context(base)
    results: dict[str, dict[str, float]] = {}
    dy, sock = start_dockyard(base)
    tar = base / "busybox.tar"
    try:
        results["dockyard"] = bench(sock, ctx, ns.runs)
        res = docker(sock, "save", "-o", str(tar), "busybox")
        if res.returncode != 0:
            raise RuntimeError(res.stderr.decode())
    finally:
        stop(dy)
        subprocess.run([sys.executable, "-m", "dockyard.cli", "cleanup", "--data-root",
                        str(base / "dy-data"), "--exec-root", str(base / "dy-exec")],
                       cwd=ROOT, capture_output=True)
    if not ns.no_dockerd:
        ref = start_dockerd(base, tar)
        if ref is not None:
            proc, rsock = ref
            try:
                results["dockerd 20.10"] = bench(rsock, ctx, ns.runs)
            finally:
                stop(proc)
    print(json.dumps(results, indent=1))
    names = list(results)
    print(f"{'measure':44} " + " ".join(f"{n:>14}" for n in names))
    for key in results["dockyard"]:
        print(f"{key:44} " + " ".join(f"{results[n][key]:14.3f}" for n in names))
    shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
