"""The ecosystem lane's benchmarks, side by side with Docker Engine on its
default networking (the compose application needs a user network):

    .venv/bin/python bench/eco_bench.py [--runs N] [--no-dockerd]

Measures, on one machine in one run:
- `docker compose up -d --wait` of the lane's demo application from cold
  (images present, nothing running), then `docker compose down -v`;
- a testcontainers-python session that starts and stops 20 containers with
  an exposed port each (Ryuk off, as in the lane).
Needs the lane's clients (`make test-eco` installs them under build/eco).
Prints a table; asserts nothing.  Needs root.  Everything it starts is
removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from network_bench import bench_dockyard, networked_dockerd
from run import DOCKER, ROOT

PLUGIN = ROOT / "build" / "eco" / "docker-config" / "cli-plugins" / "docker-compose"
APP = ROOT / "tests" / "eco" / "apps" / "demo"

TC_SESSION = """
import os, sys, time
os.environ["TESTCONTAINERS_RYUK_DISABLED"] = "true"
from testcontainers.core.container import DockerContainer
t = time.perf_counter()
for i in range(20):
    c = DockerContainer("busybox").with_command(["httpd", "-f", "-p", "80"])
    with c.with_exposed_ports(80):
        c.get_exposed_port(80)
print((time.perf_counter() - t) * 1000)
"""


def _env(sock: str, config: Path) -> dict[str, str]:
    # the classic builder for the demo's web service (no BuildKit here)
    env = dict(os.environ, DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=str(config),
               DOCKER_BUILDKIT="0")
    env.pop("DOCKER_CONTEXT", None)
    return env


def compose_cycle(sock: str, config: Path, work: Path, runs: int) -> tuple[float, float]:
    """Medians of `up -d --wait` and `down -v`, in ms."""
    app = work / "demo"
    shutil.copytree(APP, app, dirs_exist_ok=True)
    env = _env(sock, config)
    # images present, nothing running: the web image is built once first
    subprocess.run([DOCKER, "compose", "build"], cwd=app, env=env, check=True,
                   capture_output=True, timeout=300)
    ups, downs = [], []
    for _ in range(runs):
        for cmd, out in ((["up", "-d", "--wait"], ups), (["down", "-v", "-t", "1"], downs)):
            t = time.perf_counter()
            subprocess.run([DOCKER, "compose", *cmd], cwd=app, env=env, check=True,
                           capture_output=True, timeout=300)
            out.append((time.perf_counter() - t) * 1000)
    return statistics.median(ups), statistics.median(downs)


def testcontainers_session(sock: str, config: Path) -> float:
    out = subprocess.run([sys.executable, "-c", TC_SESSION], env=_env(sock, config),
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"the testcontainers session failed:\n{out.stderr}")
    return float(out.stdout.strip())


def measure(sock: str, config: Path, work: Path, runs: int) -> dict[str, float]:
    up, down = compose_cycle(sock, config, work, runs)
    return {"compose up -d --wait, from cold (ms)": up,
            "compose down -v (ms)": down,
            "testcontainers: 20 containers with a port (ms)": testcontainers_session(
                sock, config)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-dockerd", action="store_true")
    ap.add_argument("--tree", type=Path, default=ROOT)
    ns = ap.parse_args()
    if not PLUGIN.exists():
        print("the compose plugin is missing: run `make test-eco` first", file=sys.stderr)
        return 1
    base = Path(tempfile.mkdtemp(prefix="dockyard-ecobench-", dir="/var/tmp"))
    config = base / "docker-config"
    (config / "cli-plugins").mkdir(parents=True)
    (config / "cli-plugins" / "docker-compose").symlink_to(PLUGIN)
    rows: dict[str, dict[str, float]] = {}
    tar = base / "busybox.tar"
    try:
        with bench_dockyard(base, ns.tree.resolve()) as sock:
            rows["dockyard"] = measure(sock, config, base, ns.runs)
            subprocess.run([DOCKER, "-H", f"unix://{sock}", "save", "-o", str(tar),
                            "busybox"], check=True, capture_output=True)
        if not ns.no_dockerd and shutil.which("dockerd"):
            with networked_dockerd(base, tar) as rsock:
                rows["dockerd"] = measure(rsock, config, base, ns.runs)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    keys = list(rows["dockyard"])
    print(f"{'':52} {'dockyard':>10} {'dockerd':>10} {'ratio':>6}")
    for k in keys:
        dy_v = rows["dockyard"][k]
        ref = rows.get("dockerd", {}).get(k)
        ratio = f"{dy_v / ref:6.2f}" if ref else ""
        print(f"{k:52} {dy_v:10.0f} {ref if ref else float('nan'):10.0f} {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
