"""Volume benchmarks (the volumes issue's targets), side by side with Docker Engine.

    .venv/bin/python bench/volume_bench.py [--runs N] [--files N] [--no-dockerd]

Measures, on one machine in one run, medians:
- `docker run --rm busybox true`, then the same with `-v VOLUME:/d` (an
  existing named volume) and with `-v /host/dir:/d` (a bind mount); the
  three are run in turn, round after round, so drift hits them alike.
  Target: a volume or a bind adds at most 10 ms;
- first use of a new named volume over an image path holding 10,000 files
  (`docker run --rm -v NEW:/data IMAGE true`, dockerd's copy-up), a fresh
  volume each run, against the same without a volume.
Both engines get the same busybox image and the same 10,000-file image
(`docker import`).  Docker Engine runs privately (tests/integration/
refengine.py: own socket and data root, no networking), as the interop
tests run it.  Prints a table; asserts nothing.  Needs root.  Everything it
starts is stopped and removed at the end.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from run import DOCKER, ROOT, stop, wait_socket

from tests.integration.refengine import reference_dockerd


def start_dockyard(base: Path, exec_root: str) -> tuple[subprocess.Popen[bytes], str]:
    sock = str(base / "dockyard.sock")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dockyard.cli", "daemon", "-H", f"unix://{sock}",
         "--data-root", str(base / "data"), "--exec-root", exec_root],
        stdout=subprocess.DEVNULL, stderr=open(base / "dockyard.log", "wb"),
        start_new_session=True, cwd=ROOT)
    wait_socket(sock, proc)
    return proc, sock


def cli(engine: list[str], *args: str, input: bytes | None = None) -> str:
    """`engine`: the docker CLI's argv prefix for one engine."""
    res = subprocess.run([*engine, *args], input=input, capture_output=True)
    if res.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {res.stderr.decode()}")
    return res.stdout.decode()


def timed(sock: list[str], *args: str) -> float:
    t = time.perf_counter()
    cli(sock, *args)
    return (time.perf_counter() - t) * 1000


def many_files_tar(n: int) -> bytes:
    """/data with n files of 100 bytes in directories of 100, plus busybox."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.add("/bin/busybox", "bin/busybox")
        for link in ("sh", "true"):
            ti = tarfile.TarInfo(f"bin/{link}")
            ti.type, ti.linkname = tarfile.SYMTYPE, "busybox"
            tf.addfile(ti)
        payload = b"x" * 100
        for i in range(n):
            if i % 100 == 0:
                ti = tarfile.TarInfo(f"data/d{i // 100}")
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            ti = tarfile.TarInfo(f"data/d{i // 100}/f{i}")
            ti.size = len(payload)
            tf.addfile(ti, io.BytesIO(payload))
    return buf.getvalue()


def bench(sock: list[str], runs: int, bind_dir: Path, image_tar: bytes, files: int
          ) -> dict[str, float]:
    vol = f"bench-{uuid.uuid4().hex[:6]}"
    cli(sock, "volume", "create", vol)
    img = f"bench-files-{uuid.uuid4().hex[:6]}:latest"
    cli(sock, "import", "-", img, input=image_tar)
    variants = {
        "run --rm busybox true (ms)": ("busybox", "true"),
        "  with -v VOLUME:/d (ms)": ("-v", f"{vol}:/d", "busybox", "true"),
        "  with -v /host/dir:/d (ms)": ("-v", f"{bind_dir}:/d", "busybox", "true"),
    }
    samples: dict[str, list[float]] = {k: [] for k in variants}
    for args in variants.values():
        timed(sock, "run", "--rm", *args)               # warm-up
    for _ in range(runs):
        for key, args in variants.items():
            samples[key].append(timed(sock, "run", "--rm", *args))
    out = {k: statistics.median(v) for k, v in samples.items()}
    base = out["run --rm busybox true (ms)"]
    out["  volume adds (ms)"] = out["  with -v VOLUME:/d (ms)"] - base
    out["  bind adds (ms)"] = out["  with -v /host/dir:/d (ms)"] - base
    plain, first = [], []
    # untimed rounds first: the first files written in a new data root land
    # in ext4 block groups not used before, which costs the first rounds
    # (either engine) far more than the copy itself
    for _ in range(3):
        warm = f"bench-warm-{uuid.uuid4().hex[:6]}"
        cli(sock, "run", "--rm", "-v", f"{warm}:/data", img, "/bin/true")
        cli(sock, "volume", "rm", warm)
    for _ in range(max(3, runs // 3)):
        plain.append(timed(sock, "run", "--rm", img, "/bin/true"))
        fresh = f"bench-new-{uuid.uuid4().hex[:6]}"
        first.append(timed(sock, "run", "--rm", "-v", f"{fresh}:/data", img, "/bin/true"))
        n = cli(sock, "run", "--rm", "-v", f"{fresh}:/data", img, "/bin/sh", "-c",
                "n=0; for d in /data/*; do for f in $d/*; do n=$((n+1)); done; done; echo $n")
        assert int(n) == files, n
        cli(sock, "volume", "rm", fresh)
    out[f"run with image of {files} files, no volume (ms)"] = statistics.median(plain)
    out["  first use of a new volume over them (ms)"] = statistics.median(first)
    out["  copy-up adds (ms)"] = statistics.median(first) - statistics.median(plain)
    cli(sock, "volume", "rm", vol)
    cli(sock, "rmi", img)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--no-dockerd", action="store_true")
    ns = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="dockyard-volbench-", dir="/var/tmp"))
    bind_dir = base / "bind"
    bind_dir.mkdir()
    image_tar = many_files_tar(ns.files)
    results: dict[str, dict[str, float]] = {}
    exec_root = f"/run/dockyard-volbench-{base.name.rsplit('-', 1)[-1]}"
    dy, sock = start_dockyard(base, exec_root)
    engine = [DOCKER, "-H", f"unix://{sock}"]
    try:
        results["dockyard"] = bench(engine, ns.runs, bind_dir, image_tar, ns.files)
        tar = base / "busybox.tar"
        cli(engine, "save", "-o", str(tar), "busybox")
    finally:
        stop(dy)
        subprocess.run([sys.executable, "-m", "dockyard.cli", "cleanup", "--data-root",
                        str(base / "data"), "--exec-root", exec_root],
                       cwd=ROOT, capture_output=True)
    if not ns.no_dockerd and shutil.which("dockerd"):
        ref_base = base / "ref"
        ref_base.mkdir()
        with reference_dockerd(ref_base) as ref:
            if ref is None:
                print("dockerd did not start; see", ref_base / "dockerd.log")
            else:
                cli(ref, "load", "-i", str(tar))
                results["dockerd"] = bench(ref, ns.runs, bind_dir, image_tar, ns.files)
    print(f"{'measure (medians)':52} " + " ".join(f"{k:>10}" for k in results))
    for key in results["dockyard"]:
        print(f"{key:52} " + " ".join(f"{results[e].get(key, float('nan')):10.1f}"
                                      for e in results))
    subprocess.run(["umount", "-l", f"{exec_root}/netns"], capture_output=True, check=False)
    subprocess.run(["rm", "-rf", "--one-file-system", str(base), exec_root], check=False)
    return 0


if __name__ == "__main__":
    os.environ.pop("DOCKER_HOST", None)
    sys.exit(main())
