"""TCP + mutual TLS against the unix socket, one daemon serving both.

    .venv/bin/python bench/tls_bench.py [--runs N] [--mb 200]

Measures, alternating the two transports so that machine load hits both
alike (medians):
- `docker run --rm busybox true`;
- `docker exec <running container> true`;
- `docker cp` of a random file of --mb MB into a container and back out,
  in MB/s, checked by sha256 both ways.
Targets (README): run and exec at most 10 ms slower over TLS.  Prints a
table; asserts nothing.  Needs root and openssl.  The daemon, its
certificates and containers are removed at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import DOCKER, ROOT, stop, wait_socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def docker(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    res = subprocess.run([DOCKER, *args], env=env, capture_output=True)
    if res.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {res.stderr.decode()}")
    return res


def timed(env: dict[str, str], *args: str) -> float:
    t = time.perf_counter()
    docker(env, *args)
    return (time.perf_counter() - t) * 1000


def sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--cp-runs", type=int, default=3)
    ns = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="dockyard-tlsbench-", dir="/var/tmp"))
    certs = base / "certs"
    subprocess.run([sys.executable, "-m", "dockyard.cli", "certs", "--dir", str(certs),
                    "--host", "127.0.0.1"], check=True, capture_output=True, cwd=ROOT)
    sock, port = str(base / "dockyard.sock"), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dockyard.cli", "daemon", "-H", f"unix://{sock}",
         "-H", f"tcp://127.0.0.1:{port}", "--tlsverify",
         "--tlscacert", str(certs / "ca.pem"), "--tlscert", str(certs / "server-cert.pem"),
         "--tlskey", str(certs / "server-key.pem"),
         "--data-root", str(base / "data"), "--exec-root", "/run/dockyard-tlsbench"],
        stdout=subprocess.DEVNULL, stderr=open(base / "dockyard.log", "wb"),
        start_new_session=True, cwd=ROOT)
    unix = dict(os.environ, DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=str(base / "cfg"))
    tls = dict(unix, DOCKER_HOST=f"tcp://127.0.0.1:{port}", DOCKER_TLS_VERIFY="1",
               DOCKER_CERT_PATH=str(certs))
    rows: list[tuple[str, str, str, str]] = []
    try:
        wait_socket(sock, proc)
        cid = docker(unix, "run", "-d", "busybox", "sleep", "3600").stdout.decode().strip()
        for label, args in (("docker run --rm busybox true (ms)",
                             ["run", "--rm", "busybox", "true"]),
                            ("docker exec <c> true (ms)", ["exec", cid, "true"])):
            timed(unix, *args)
            timed(tls, *args)                 # warm-up, both
            u, t = [], []
            for _ in range(ns.runs):
                u.append(timed(unix, *args))
                t.append(timed(tls, *args))
            mu, mt = statistics.median(u), statistics.median(t)
            rows.append((label, f"{mu:.0f}", f"{mt:.0f}", f"{mt - mu:+.0f} ms"))
        blob = base / "blob"
        with open(blob, "wb") as f:
            for _ in range(ns.mb):
                f.write(os.urandom(1 << 20))
        want = sha256_file(blob)
        size_mb = ns.mb * 1.048576
        into: dict[str, list[float]] = {"unix": [], "tls": []}
        out_of: dict[str, list[float]] = {"unix": [], "tls": []}
        for _ in range(ns.cp_runs):
            for name, env in (("unix", unix), ("tls", tls)):
                ms = timed(env, "cp", str(blob), f"{cid}:/tmp/blob")
                into[name].append(size_mb / (ms / 1000))
                got = docker(env, "exec", cid, "sha256sum", "/tmp/blob").stdout.split()[0]
                assert got.decode() == want, "copy in changed the bytes"
                back = base / f"back-{name}"
                ms = timed(env, "cp", f"{cid}:/tmp/blob", str(back))
                out_of[name].append(size_mb / (ms / 1000))
                assert sha256_file(back) == want, "copy out changed the bytes"
                back.unlink()
                docker(env, "exec", cid, "rm", "/tmp/blob")
        for label, d in ((f"docker cp {ns.mb} MB into a container (MB/s)", into),
                         (f"docker cp {ns.mb} MB out of a container (MB/s)", out_of)):
            mu, mt = statistics.median(d["unix"]), statistics.median(d["tls"])
            rows.append((label, f"{mu:.0f}", f"{mt:.0f}", f"{mt / mu:.2f}x"))
        docker(unix, "rm", "-f", cid)
    finally:
        stop(proc)
        subprocess.run([sys.executable, "-m", "dockyard.cli", "cleanup", "--data-root",
                        str(base / "data"), "--exec-root", "/run/dockyard-tlsbench"],
                       capture_output=True, cwd=ROOT)
        subprocess.run(["rm", "-rf", str(base), "/run/dockyard-tlsbench"], check=False)
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'unix':>6}  {'TLS':>6}  difference")
    for label, u, t, diff in rows:
        print(f"{label:<{width}}  {u:>6}  {t:>6}  {diff}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
