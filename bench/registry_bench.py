"""Registry benchmarks (the registry issue's targets), side by side with
Docker Engine in one run.

    .venv/bin/python bench/registry_bench.py [--runs N] [--no-dockerd] [--mb 100]

Starts Debian's docker-registry (distribution 2.8) on 127.0.0.1, puts a
100 MB image of 5 layers in it (each layer half random bytes, half text,
so gzip has work both ways), then for dockyard and for a private dockerd:
- pull of that image into an empty store (`docker pull`, then `docker rmi`
  so the next run starts empty again);
- push of the same image to an empty registry (a second registry, wiped
  and restarted before every push, so every layer really goes up);
- pull of an image whose layers are all present (the same layers under
  another repository: every layer `Already exists`), and a pull of an
  image that is already here (`Image is up to date`), both timed through
  the API so the CLI's own start-up is not counted.
Medians of N runs after a warm-up, alternating nothing: each engine runs
alone on the machine.  Prints a table; asserts nothing.  Needs root.
Everything it starts is stopped and its directories are removed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from run import DOCKER, ROOT, UnixHTTP, stop, wait_socket

from tests.integration.images.registries import Registry, image_layer, push_image

DY_EXEC, REF_EXEC = "/run/dockyard-regbench", "/run/dockyard-regbench-ref"
TARGETS = {"pull, empty store (s)": "<= 0.8x dockerd", "push, empty registry (s)": "<= dockerd",
           "pull, all layers present (ms)": "< 100 ms", "pull, image up to date (ms)": ""}


def layers(total_mb: int, count: int) -> list[bytes]:
    rng = random.Random(13)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
             for _ in range(4000)]
    out = []
    per = total_mb * 1_000_000 // count
    for i in range(count):
        files = {}
        for j in range(4):
            n = per // 8
            files[f"bench/l{i}/random{j}"] = rng.randbytes(n)
            text = b" ".join(rng.choice(words) for _ in range(n // 5))
            files[f"bench/l{i}/text{j}"] = text[:n]
        out.append(image_layer(files))
    return out


def cli(sock: str, *args: str) -> str:
    env = dict(os.environ, DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG="/nonexistent")
    res = subprocess.run([DOCKER, *args], env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {res.stderr}")
    return res.stdout


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def api_pull(sock: str, ref: str) -> None:
    """POST /images/create, reading the progress stream to its end."""
    name, tag = ref.rsplit(":", 1)
    c = UnixHTTP(sock)
    c.request("POST", f"/images/create?fromImage={name}&tag={tag}",
              headers={"X-Registry-Auth": base64.b64encode(b"{}").decode()})
    r = c.getresponse()
    body = r.read()
    c.close()
    last = json.loads(body.splitlines()[-1])
    if r.status != 200 or "error" in last:
        raise RuntimeError(f"pull {ref}: {r.status} {body[-300:]!r}")


def start_dockyard(base: Path) -> tuple[subprocess.Popen[bytes], str]:
    sock = str(base / "dockyard.sock")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dockyard.cli", "daemon", "-H", f"unix://{sock}",
         "--data-root", str(base / "dockyard-data"), "--exec-root", DY_EXEC],
        stdout=subprocess.DEVNULL, stderr=open(base / "dockyard.log", "wb"),
        start_new_session=True, cwd=ROOT)
    wait_socket(sock, proc)
    return proc, sock


def start_dockerd(base: Path) -> tuple[subprocess.Popen[bytes], str] | None:
    if not shutil.which("dockerd"):
        return None
    sock = str(base / "dockerd.sock")
    proc = subprocess.Popen(
        ["dockerd", "-H", f"unix://{sock}", "--data-root", str(base / "dockerd-data"),
         "--exec-root", REF_EXEC, "--pidfile", str(base / "dockerd.pid"),
         "--bridge", "none", "--iptables=false", "--ip6tables=false"],
        stdout=subprocess.DEVNULL, stderr=open(base / "dockerd.log", "wb"),
        start_new_session=True)
    wait_socket(sock, proc, 60)
    return proc, sock


def bench_engine(sock: str, src: Registry, dst: Registry, runs: int) -> dict[str, float]:
    big, same = f"{src.host}/bench/big:1", f"{src.host}/bench/same:1"
    pushed = f"{dst.host}/bench/pushed:1"
    res: dict[str, list[float]] = {k: [] for k in TARGETS}
    for i in range(runs + 1):                     # the first is a warm-up
        out: list[str] = []
        cold = timed(lambda out=out: out.append(cli(sock, "pull", big)))  # type: ignore[misc]
        if out[0].count("Pull complete") != 5:         # really from an empty store
            raise RuntimeError(f"not a pull into an empty store:\n{out[0]}")
        cli(sock, "tag", big, pushed)
        dst.stop()
        shutil.rmtree(dst.root / "data", ignore_errors=True)
        dst.start()
        push = timed(lambda: cli(sock, "push", pushed))
        present = timed(lambda: api_pull(sock, same))
        uptodate = timed(lambda: api_pull(sock, big))
        cli(sock, "rmi", big, same, pushed)
        if i:
            res["pull, empty store (s)"].append(cold)
            res["push, empty registry (s)"].append(push)
            res["pull, all layers present (ms)"].append(present * 1000)
            res["pull, image up to date (ms)"].append(uptodate * 1000)
    return {k: statistics.median(v) for k, v in res.items()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--no-dockerd", action="store_true")
    ns = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="dockyard-regbench-", dir="/var/tmp"))
    src = Registry(base / "src").start()
    dst = Registry(base / "dst").start()
    results: dict[str, dict[str, float]] = {}
    try:
        image = layers(ns.mb, 5)
        push_image(src, "bench/big", "1", image)
        # the same layers under another image (another config): all present
        push_image(src, "bench/same", "1", image, cmd=["/bin/true"])
        dy, sock = start_dockyard(base)
        try:
            results["dockyard"] = bench_engine(sock, src, dst, ns.runs)
        finally:
            stop(dy)
        if not ns.no_dockerd:
            ref = start_dockerd(base)
            if ref is not None:
                proc, rsock = ref
                try:
                    results["dockerd"] = bench_engine(rsock, src, dst, ns.runs)
                finally:
                    stop(proc)
    finally:
        src.stop()
        dst.stop()
    print(f"{ns.mb} MB, 5 layers; medians of {ns.runs} runs")
    print(f"{'measure':34} " + " ".join(f"{k:>10}" for k in results) + f" {'target':>18}")
    for k, target in TARGETS.items():
        print(f"{k:34} " + " ".join(f"{results[e][k]:10.2f}" for e in results)
              + f" {target:>18}")
    if "dockerd" in results:
        for k in ("pull, empty store (s)", "push, empty registry (s)"):
            print(f"{k}: dockyard/dockerd = "
                  f"{results['dockyard'][k] / results['dockerd'][k]:.2f}")
    subprocess.run(["umount", "-R", str(base / "dockerd-data")], capture_output=True)
    subprocess.run([sys.executable, "-m", "dockyard.cli", "cleanup", "--data-root",
                    str(base / "dockyard-data"), "--exec-root", DY_EXEC], capture_output=True)
    for d in (DY_EXEC, REF_EXEC):
        subprocess.run(["umount", "-R", f"{d}/netns"], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)
    shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
