"""Networking benchmarks (the networking issue's targets), side by side with
Docker Engine on its default networking.

    .venv/bin/python bench/network_bench.py [--runs N] [--no-dockerd] [--no-netavark]

Measures, on one machine in one run:
- `docker run --rm busybox true` on the default bridge, dockyard and dockerd
  (dockerd with its default networking: docker0, iptables, userland proxy);
- the same on a user network and with `--network none` (dockyard);
- 50 containers started on one user network, then removed (both engines);
- throughput of a 200 MB download from a container through a port published
  on 127.0.0.1, against a direct connection to the container's address
  (after a warm-up, five of each alternately, medians);
- the design not taken: netavark 1.4 setting up and tearing down one
  container on an existing network, as Podman drives it.
Prints a table; asserts nothing.  Needs root.  Everything it starts (daemons,
bridges, rules, namespaces) is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from run import DOCKER, ROOT, start_dockyard, stop, time_cli, wait_socket

from tests.integration.network.refdocker import (
    forward_policy,
    remove_docker_networking,
)

NETAVARK = "/usr/lib/podman/netavark"
AARDVARK = "/usr/lib/podman/aardvark-dns"


def cli(sock: str, *args: str, check: bool = True) -> str:
    env = dict(os.environ, DOCKER_HOST=f"unix://{sock}")
    res = subprocess.run([DOCKER, *args], env=env, capture_output=True, text=True)
    if check and res.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {res.stderr}")
    return res.stdout


def fifty(sock: str) -> float:
    net = f"bench-{uuid.uuid4().hex[:6]}"
    cli(sock, "network", "create", net)
    t = time.perf_counter()
    ids = [cli(sock, "run", "-d", "--network", net, "busybox", "sleep", "300").strip()
           for _ in range(50)]
    cli(sock, "rm", "-f", *ids)
    took = time.perf_counter() - t
    cli(sock, "network", "rm", net)
    return took * 1000


def throughput(sock: str) -> tuple[float, float]:
    """MB/s through 127.0.0.1:<published> and straight to the container's IP."""
    cid = cli(sock, "run", "-d", "-p", "127.0.0.1::80", "busybox", "sh", "-c",
              "mkdir /www; head -c 200000000 /dev/zero > /www/big; "
              "exec httpd -f -p 80 -h /www").strip()
    try:
        port = cli(sock, "port", cid, "80/tcp").strip().rsplit(":", 1)[1]
        ip = json.loads(cli(sock, "inspect", cid))[0]["NetworkSettings"]["IPAddress"]
        published, direct = f"http://127.0.0.1:{port}/big", f"http://{ip}/big"
        _mbps(direct)                                  # warm up: server, page cache
        pub, dir_ = [], []
        for _ in range(5):                             # alternate; medians
            pub.append(_mbps(published))
            dir_.append(_mbps(direct))
        return statistics.median(pub), statistics.median(dir_)
    finally:
        cli(sock, "rm", "-f", cid)


def _mbps(url: str) -> float:
    deadline = time.time() + 20
    while True:
        try:
            t = time.perf_counter()
            with urllib.request.urlopen(url, timeout=30) as r:
                n = 0
                while chunk := r.read(1 << 20):
                    n += len(chunk)
            return n / (time.perf_counter() - t) / 1e6
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def _netavark_rules(table: str) -> list[str]:
    out = subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True).stdout
    return [ln for ln in out.splitlines() if "NETAVARK" in ln]


def remove_netavark_chains() -> None:
    """netavark leaves its top-level chains (and the jumps to them) after the
    last network's teardown: take them out, jumps first."""
    for table in ("filter", "nat", "mangle"):
        lines = _netavark_rules(table)
        for ln in lines:
            if ln.startswith("-A ") and not ln.split()[1].startswith("NETAVARK"):
                subprocess.run(["iptables", "-t", table, "-D", *shlex.split(ln[3:])],
                               capture_output=True)
        chains = [ln[1:].split()[0] for ln in lines if ln.startswith(":")]
        for verb in ("-F", "-X"):
            for chain in chains:
                subprocess.run(["iptables", "-t", table, verb, chain], capture_output=True)


def netavark_cost(runs: int) -> tuple[float, float]:
    """Median setup and teardown of one container on an existing network;
    netavark's chains go afterwards unless they were there before."""
    if not os.access(NETAVARK, os.X_OK):
        return float("nan"), float("nan")
    had_chains = any(_netavark_rules(t) for t in ("filter", "nat", "mangle"))
    try:
        return _netavark_cost(runs)
    finally:
        if not had_chains:
            remove_netavark_chains()


def _netavark_cost(runs: int) -> tuple[float, float]:
    conf = Path(tempfile.mkdtemp(prefix="nvbench-"))
    info = {"name": "nvbench", "id": uuid.uuid4().hex * 2, "driver": "bridge",
            "network_interface": "nvbench0",
            "subnets": [{"subnet": "10.199.0.0/24", "gateway": "10.199.0.1"}],
            "ipv6_enabled": False, "internal": False, "dns_enabled": True,
            "ipam_options": {"driver": "host-local"}, "options": {"isolate": "true"}}

    def opts(i: int) -> bytes:
        return json.dumps({
            "container_id": f"{i:064x}", "container_name": f"c{i}", "port_mappings": [],
            "networks": {"nvbench": {"interface_name": "eth0",
                                     "static_ips": [f"10.199.0.{10 + i}"],
                                     "aliases": [f"c{i}"]}},
            "network_info": {"nvbench": info}}).encode()

    def call(verb: str, i: int) -> float:
        t = time.perf_counter()
        subprocess.run([NETAVARK, "--config", str(conf), "--rootless=false",
                        "--aardvark-binary", AARDVARK, verb, f"/run/netns/nvbench{i}"],
                       input=opts(i), capture_output=True, check=True)
        return (time.perf_counter() - t) * 1000

    setups, teardowns = [], []
    try:
        for i in range(runs + 1):
            subprocess.run(["ip", "netns", "add", f"nvbench{i}"], check=True)
        call("setup", runs)                      # the network exists from here on
        for i in range(runs):
            setups.append(call("setup", i))
        for i in range(runs):
            teardowns.append(call("teardown", i))
        call("teardown", runs)
    finally:
        for i in range(runs + 1):
            subprocess.run(["ip", "netns", "del", f"nvbench{i}"], capture_output=True)
        shutil.rmtree(conf, ignore_errors=True)
    return statistics.median(setups), statistics.median(teardowns)


def start_reference_dockerd(base: Path, busybox_tar: Path | None,
                            extra: tuple[str, ...] = (), tag: str = "bench-net-docker"
                            ) -> tuple[subprocess.Popen[bytes], str]:
    """A Docker Engine with its default networking (docker0, iptables, proxy);
    `extra` daemon options, busybox loaded from `busybox_tar` if given; `tag`
    names its socket, data root and exec root."""
    sock = f"/run/{tag}.sock"
    proc = subprocess.Popen(
        ["dockerd", "-H", f"unix://{sock}", "--data-root", f"/var/lib/{tag}",
         "--exec-root", f"/run/{tag}", "--pidfile", f"/run/{tag}.pid", *extra],
        stdout=subprocess.DEVNULL, stderr=open(base / "dockerd.log", "wb"),
        start_new_session=True)
    try:
        wait_socket(sock, proc, 60)
        if busybox_tar is not None:
            cli(sock, "load", "-i", str(busybox_tar))
    except BaseException:
        stop(proc)
        raise
    return proc, sock


def cleanup_dockyard(base: Path, tree: Path, exec_root: str = "/run/dockyard-bench") -> None:
    """A stopped private dockyard's bridges, rules and name server go."""
    subprocess.run([sys.executable, "-m", "dockyard.cli", "cleanup", "--data-root",
                    str(base / "data"), "--exec-root", exec_root],
                   cwd=tree, capture_output=True)


@contextlib.contextmanager
def bench_dockyard(base: Path, tree: Path, exec_root: str = "/run/dockyard-bench"
                   ) -> Iterator[str]:
    """A private dockyard's socket; stopped and its host networking removed after."""
    dy, sock = start_dockyard(base, tree, exec_root)
    try:
        yield sock
    finally:
        # containers outlive their daemon: what a bench stopped half way left
        ids = cli(sock, "ps", "-aq", check=False).split()
        if ids:
            cli(sock, "rm", "-f", *ids, check=False)
        stop(dy)
        cleanup_dockyard(base, tree, exec_root)
        shutil.rmtree(exec_root, ignore_errors=True)


@contextlib.contextmanager
def networked_dockerd(base: Path, busybox_tar: Path, extra: tuple[str, ...] = (),
                      tag: str = "bench-net-docker") -> Iterator[str]:
    """start_reference_dockerd's socket; afterwards the daemon, its docker0,
    chains and FORWARD policy are gone again."""
    if Path("/sys/class/net/docker0").exists():
        raise RuntimeError("docker0 exists: another Docker Engine with its default "
                           "networking runs on this host")
    policy = forward_policy()
    proc = None
    try:
        proc, sock = start_reference_dockerd(base, busybox_tar, extra, tag)
        yield sock
    finally:
        if proc is not None:
            stop(proc)
        subprocess.run(["pkill", "-f", f"/run/{tag}"], capture_output=True)
        remove_docker_networking(policy)
        shutil.rmtree(f"/var/lib/{tag}", ignore_errors=True)
        shutil.rmtree(f"/run/{tag}", ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--no-dockerd", action="store_true")
    ap.add_argument("--no-netavark", action="store_true")
    ap.add_argument("--tree", type=Path, default=ROOT)
    ns = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="dockyard-netbench-", dir="/var/tmp"))
    rows: dict[str, dict[str, float]] = {"dockyard": {}, "dockerd": {}}
    with bench_dockyard(base, ns.tree.resolve()) as sock:
        d = rows["dockyard"]
        d["run --rm, default bridge (ms)"] = time_cli(sock, ["run", "--rm", "busybox", "true"],
                                                      ns.runs)
        d["run --rm, --network none (ms)"] = time_cli(
            sock, ["run", "--rm", "--network", "none", "busybox", "true"], ns.runs)
        net = f"bench-{uuid.uuid4().hex[:6]}"
        cli(sock, "network", "create", net)
        d["run --rm, user network (ms)"] = time_cli(
            sock, ["run", "--rm", "--network", net, "busybox", "true"], ns.runs)
        cli(sock, "network", "rm", net)
        d["50 started on a user network, then removed (ms)"] = fifty(sock)
        published, direct = throughput(sock)
        d["200 MB via 127.0.0.1 published port (MB/s)"] = published
        d["200 MB straight to the container (MB/s)"] = direct
        tar = base / "busybox.tar"
        cli(sock, "save", "-o", str(tar), "busybox")
    if not ns.no_dockerd and shutil.which("dockerd"):
        with networked_dockerd(base, tar) as rsock:
            r = rows["dockerd"]
            r["run --rm, default bridge (ms)"] = time_cli(
                rsock, ["run", "--rm", "busybox", "true"], ns.runs)
            r["50 started on a user network, then removed (ms)"] = fifty(rsock)
            published, direct = throughput(rsock)
            r["200 MB via 127.0.0.1 published port (MB/s)"] = published
            r["200 MB straight to the container (MB/s)"] = direct
    if not ns.no_netavark:
        setup, teardown = netavark_cost(ns.runs)
        rows["netavark"] = {"one container: setup (ms)": setup,
                            "one container: teardown (ms)": teardown}
    for engine, values in rows.items():
        if values:
            print(f"[{engine}]")
            for k, v in values.items():
                print(f"  {k:52} {v:10.1f}")
    shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
