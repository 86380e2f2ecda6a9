"""Streaming benchmarks (the speed issue's "streams at line rate"), dockyard
side by side with a private Docker Engine, both driven by the real docker CLI:

    .venv/bin/python bench/stream_bench.py [--runs N] [--no-dockerd] [--base DIR]
                                           [--tree CHECKOUT] [--only GROUPS]

Measures, alternating between the engines measure by measure so that the
machine's load falls on both alike:
- `docker logs` of a container that wrote 200 MB to its json-file log;
- `docker logs -f` latency: a line written inside the container (the host
  feeds it through a FIFO the container copies to its stdout) until the
  client prints it, median over 50 lines 50-150 ms apart;
- `docker exec -i c wc -c` fed 1 GiB, `docker exec c head -c 1G` read out,
  and `docker attach` fed 1 GiB;
- `docker cp` of a 500 MB file into a container and back out;
- `docker export` of a container holding those 500 MB;
- `docker save` and `docker load` of an image with a 500 MB layer.
Bytes are checked where they flow (sha256 of what came back, wc's count,
the loaded image's file).  While each stream runs the daemon's RSS is
sampled at 20 Hz (dockyard: its one process; dockerd: dockerd with its
containerd); the table gives the peak over the value before the stream,
and the CPU time those processes used for it (a figure the machine's
load does not move much, unlike the rates).
Prints a table; asserts nothing.  Needs root.  Removes everything it
started, also when a measure fails.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from network_bench import bench_dockyard
from run import DOCKER, ROOT, rss_kb
from tls_bench import sha256_file

from tests.integration.refengine import reference_dockerd

MB = 1_000_000
GIB = 1 << 30
LOG_BYTES = 200 * MB
BLOB_BYTES = 500 * MB
LOG_LINE = b"a log line of a busy service, seventy-nine bytes of text and its newline: 0123\n"
# the trailing blank line, if any, is the one the CLI adds in front of the count
TARGETS = {
    "logs, 200 MB json-file (MB/s)": ">= dockerd",
    "logs -f, write to client (median ms)": "<= dockerd",
    "exec -i wc -c, 1 GiB in (MB/s)": ">= dockerd",
    "exec, 1 GiB out (MB/s)": ">= dockerd",
    "attach, 1 GiB in (MB/s)": ">= dockerd",
    "cp 500 MB into a container (MB/s)": ">= dockerd",
    "cp 500 MB out of a container (MB/s)": ">= dockerd",
    "export, 500 MB rootfs (MB/s)": ">= dockerd",
    "save, 500 MB image (MB/s)": ">= dockerd",
    "load, 500 MB image (MB/s)": ">= dockerd",
}


@dataclass
class Engine:
    name: str
    argv: list[str]                       # the docker CLI pointed at this engine
    pids: Callable[[], list[int]]         # the processes whose RSS counts
    results: dict[str, float] = field(default_factory=dict)
    rss: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    def run(self, *args: str, stdin: int | bytes | None = None, stdout: int | None = None,
            check: bool = True) -> subprocess.CompletedProcess[bytes]:
        kw: dict[str, object] = {"stderr": subprocess.PIPE,
                                 "stdout": subprocess.PIPE if stdout is None else stdout}
        if isinstance(stdin, bytes):
            kw["input"] = stdin
        elif stdin is not None:
            kw["stdin"] = stdin
        res = subprocess.run([*self.argv, *args], timeout=900,  # type: ignore[call-overload]
                             **kw)
        if check and res.returncode != 0:
            raise RuntimeError(f"{self.name}: docker {' '.join(args)}: "
                               f"{res.stderr.decode(errors='replace')}")
        return res

    def out(self, *args: str) -> str:
        return self.run(*args).stdout.decode().strip()


def cpu_seconds(pids: list[int]) -> float:
    """User and system time the processes have used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / ticks


class RssSampler:
    """The peak of the engine's RSS over its value when the sampler started,
    and the CPU time its processes used meanwhile."""

    def __init__(self, pids: list[int], hz: float = 20) -> None:
        self.pids = pids
        self.period = 1 / hz
        self.before = rss_kb(pids)
        self.peak = self.before
        self.cpu_before = cpu_seconds(pids)
        self.cpu = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self.peak = max(self.peak, rss_kb(self.pids))

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_kb(self.pids))
        self.cpu = cpu_seconds(self.pids) - self.cpu_before

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.before) / 1024


def measured(es: list[Engine], key: str, nbytes: int, fn: Callable[[Engine], None],
             runs: int) -> None:
    """Median MB/s of `runs` calls of fn per engine, the engines taking turns
    (and turns about going first), and the largest RSS growth seen."""
    rates: dict[str, list[float]] = {e.name: [] for e in es}
    growth: dict[str, list[float]] = {e.name: [] for e in es}
    cpu: dict[str, list[float]] = {e.name: [] for e in es}
    for r in range(runs):
        for e in es if r % 2 == 0 else es[::-1]:
            with RssSampler(e.pids()) as s:
                t = time.perf_counter()
                fn(e)
                took = time.perf_counter() - t
            rates[e.name].append(nbytes / took / MB)
            growth[e.name].append(s.growth_mb)
            cpu[e.name].append(s.cpu)
    for e in es:
        e.results[key] = statistics.median(rates[e.name])
        e.rss[key] = max(growth[e.name])
        e.cpu[key] = statistics.median(cpu[e.name])


# ---------------------------------------------------------------- the measures
def bench_logs(es: list[Engine], work: Path, runs: int) -> None:
    count = LOG_BYTES // len(LOG_LINE)
    line = LOG_LINE.decode().rstrip("\n")
    expect = hashlib.sha256(LOG_LINE * count).hexdigest()
    cids: dict[str, str] = {}
    try:
        for e in es:
            cids[e.name] = e.out("run", "-d", "--network", "none", "busybox", "sh", "-c",
                                 f"yes '{line}' | head -n {count}")
        for e in es:
            e.out("wait", cids[e.name])

        def once(e: Engine) -> None:
            with open(work / f"logs-{e.name}", "wb") as f:
                e.run("logs", cids[e.name], stdout=f.fileno())

        measured(es, "logs, 200 MB json-file (MB/s)", count * len(LOG_LINE), once, runs)
        for e in es:
            if sha256_file(work / f"logs-{e.name}") != expect:
                raise RuntimeError(f"{e.name}: docker logs gave other bytes than were written")
            (work / f"logs-{e.name}").unlink()
    finally:
        for e in es:
            if e.name in cids:
                e.run("rm", "-f", cids[e.name], check=False)


def bench_follow(e: Engine, work: Path, lines: int = 50) -> None:
    fifo_dir = work / f"fifo-{e.name}"
    fifo_dir.mkdir()
    os.mkfifo(fifo_dir / "in")
    cid = e.out("run", "-d", "--network", "none", "-v", f"{fifo_dir}:/in", "busybox",
                "sh", "-c", "exec cat /in/in")
    follower = subprocess.Popen([*e.argv, "logs", "-f", cid], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
    sent: dict[int, float] = {}
    jitter = random.Random(7)
    latencies: list[float] = []
    try:
        assert follower.stdout is not None
        with open(fifo_dir / "in", "wb", buffering=0) as fifo, RssSampler(e.pids()) as s:
            for i in range(lines + 5):
                sent[i] = time.perf_counter()
                fifo.write(f"line {i}\n".encode())
                got = follower.stdout.readline()
                seen = time.perf_counter()
                n = int(got.split()[1])
                if n != i:
                    raise RuntimeError(f"{e.name}: logs -f gave line {n}, expected {i}")
                if i >= 5:                               # the first few warm up
                    latencies.append((seen - sent[i]) * 1000)
                # 50-150 ms apart, at random: no phase lock with a poll
                time.sleep(jitter.uniform(0.05, 0.15))
        e.results["logs -f, write to client (median ms)"] = statistics.median(latencies)
        e.rss["logs -f, write to client (median ms)"] = s.growth_mb
        e.cpu["logs -f, write to client (median ms)"] = s.cpu
    finally:
        follower.kill()
        follower.wait()
        e.run("rm", "-f", cid, check=False)


def _wc_count(res: subprocess.CompletedProcess[bytes], e: Engine, what: str) -> None:
    got = res.stdout.decode().split()
    if got != [str(GIB)]:
        raise RuntimeError(f"{e.name}: {what} counted {got}, expected {GIB}")


ZERO = "head -c 1073741824 /dev/zero"


def bench_exec_attach(es: list[Engine], runs: int) -> None:
    cids: dict[str, str] = {}
    try:
        for e in es:
            cids[e.name] = e.out("run", "-d", "--network", "none", "busybox", "sleep", "3600")

        def exec_in(e: Engine) -> None:
            feeder = subprocess.Popen(["sh", "-c", ZERO], stdout=subprocess.PIPE)
            assert feeder.stdout is not None
            res = e.run("exec", "-i", cids[e.name], "wc", "-c", stdin=feeder.stdout.fileno())
            feeder.stdout.close()
            feeder.wait()
            _wc_count(res, e, "exec -i wc -c")

        def exec_out(e: Engine) -> None:
            reader = subprocess.Popen(["wc", "-c"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE)
            assert reader.stdin is not None
            e.run("exec", cids[e.name], "head", "-c", str(GIB), "/dev/zero",
                  stdout=reader.stdin.fileno())
            reader.stdin.close()
            assert reader.stdout is not None
            out = reader.stdout.read()
            reader.wait()
            _wc_count(subprocess.CompletedProcess([], 0, out, b""), e, "exec out")

        measured(es, "exec -i wc -c, 1 GiB in (MB/s)", GIB, exec_in, runs)
        measured(es, "exec, 1 GiB out (MB/s)", GIB, exec_out, runs)
    finally:
        for e in es:
            if e.name in cids:
                e.run("rm", "-f", cids[e.name], check=False)

    def attach_in(e: Engine) -> None:
        # created with -i, so StdinOnce: the client's EOF ends wc's stdin
        aid = e.out("create", "-i", "--network", "none", "busybox", "wc", "-c")
        try:
            e.run("start", aid)
            feeder = subprocess.Popen(["sh", "-c", ZERO], stdout=subprocess.PIPE)
            assert feeder.stdout is not None
            res = e.run("attach", aid, stdin=feeder.stdout.fileno())
            feeder.stdout.close()
            feeder.wait()
            _wc_count(res, e, "attach wc -c")
        finally:
            e.run("rm", "-f", aid, check=False)

    measured(es, "attach, 1 GiB in (MB/s)", GIB, attach_in, runs)


def bench_files(es: list[Engine], work: Path, blob: Path, blob_sha: str, runs: int) -> None:
    cids: dict[str, str] = {}

    def img(e: Engine) -> str:
        return f"streambench-{e.name}:500mb"

    def path(e: Engine, what: str) -> Path:
        return work / f"{what}-{e.name}"

    try:
        for e in es:
            cids[e.name] = e.out("run", "-d", "--network", "none", "busybox", "sleep", "3600")

        def cp_in(e: Engine) -> None:
            e.run("exec", cids[e.name], "rm", "-f", "/blob")
            e.run("cp", str(blob), f"{cids[e.name]}:/blob")

        def cp_out(e: Engine) -> None:
            shutil.rmtree(path(e, "back"), ignore_errors=True)
            path(e, "back").mkdir()
            e.run("cp", f"{cids[e.name]}:/blob", str(path(e, "back") / "blob"))

        def export(e: Engine) -> None:
            e.run("export", "-o", str(path(e, "export")), cids[e.name])

        def save(e: Engine) -> None:
            e.run("save", "-o", str(path(e, "save")), img(e))

        def load(e: Engine) -> None:
            e.run("rmi", img(e))
            e.run("load", "-i", str(path(e, "save")))

        measured(es, "cp 500 MB into a container (MB/s)", BLOB_BYTES, cp_in, runs)
        measured(es, "cp 500 MB out of a container (MB/s)", BLOB_BYTES, cp_out, runs)
        measured(es, "export, 500 MB rootfs (MB/s)", BLOB_BYTES, export, runs)
        for e in es:
            inside = e.out("exec", cids[e.name], "sha256sum", "/blob").split()[0]
            if inside != blob_sha:
                raise RuntimeError(f"{e.name}: docker cp in changed the bytes")
            if sha256_file(path(e, "back") / "blob") != blob_sha:
                raise RuntimeError(f"{e.name}: docker cp out changed the bytes")
            shutil.rmtree(path(e, "back"))
            if _member_sha(path(e, "export"), "blob") != blob_sha:
                raise RuntimeError(f"{e.name}: docker export lost the file's bytes")
            path(e, "export").unlink()
            e.run("stop", "-t", "0", cids[e.name])
            e.run("commit", cids[e.name], img(e))
        measured(es, "save, 500 MB image (MB/s)", BLOB_BYTES, save, runs)
        measured(es, "load, 500 MB image (MB/s)", BLOB_BYTES, load, runs)
        for e in es:
            path(e, "save").unlink()
            loaded = e.out("run", "--rm", "--network", "none", img(e),
                           "sha256sum", "/blob").split()[0]
            if loaded != blob_sha:
                raise RuntimeError(f"{e.name}: docker save | load changed the bytes")
    finally:
        for e in es:
            if e.name in cids:
                e.run("rm", "-f", cids[e.name], check=False)
            e.run("rmi", "-f", img(e), check=False)


def _member_sha(tar_path: Path, name: str) -> str:
    with tarfile.open(tar_path) as tf:
        for m in tf:
            if m.name.lstrip("./") == name:
                f = tf.extractfile(m)
                assert f is not None
                h = hashlib.sha256()
                while chunk := f.read(1 << 20):
                    h.update(chunk)
                return h.hexdigest()
    return ""


# ---------------------------------------------------------------- the engines
def _daemon_pid(sock: str) -> int:
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError):
                if sock.encode() in (d / "cmdline").read_bytes() and \
                        b"daemon" in (d / "cmdline").read_bytes():
                    return int(d.name)
    raise RuntimeError(f"no daemon process for {sock}")


def _children_named(pid: int, name: str) -> list[int]:
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (d / "stat").read_text()
                comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat.rsplit(")", 1)[1]
                if comm == name and int(rest.split()[1]) == pid:
                    found.append(int(d.name))
    return found


@contextlib.contextmanager
def engines(base: Path, tree: Path, with_dockerd: bool) -> Iterator[list[Engine]]:
    with bench_dockyard(base / "dockyard", tree, str(base / "dockyard-exec")) as sock:
        pid = _daemon_pid(sock)
        dy = Engine("dockyard", [DOCKER, "-H", f"unix://{sock}"], lambda: [pid])
        if not with_dockerd:
            yield [dy]
            return
        busybox = base / "busybox.tar"
        dy.run("save", "-o", str(busybox), "busybox")
        ref_base = base / "dockerd"
        ref_base.mkdir()
        with reference_dockerd(ref_base) as argv:
            if argv is None:
                raise RuntimeError("the reference dockerd did not start")
            ref_pid = int((ref_base / "dockerd.pid").read_text())
            ref = Engine("dockerd", argv,
                         lambda: [ref_pid, *_children_named(ref_pid, "containerd")])
            ref.run("load", "-i", str(busybox))
            yield [dy, ref]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-dockerd", action="store_true")
    ap.add_argument("--base", type=Path, default=Path("/var/tmp"),
                    help="where the scratch directory (data roots, payloads) goes")
    ap.add_argument("--tree", type=Path, default=ROOT,
                    help="a dockyard checkout whose daemon to measure (default: this one)")
    ap.add_argument("--only", default="logs,follow,exec,files",
                    help="which groups to measure (logs, follow, exec, files)")
    ns = ap.parse_args()
    ns.base.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="dockyard-streambench-", dir=ns.base))
    only = set(ns.only.split(","))
    load_before = os.getloadavg()
    try:
        (base / "dockyard").mkdir()
        with engines(base, ns.tree.resolve(), not ns.no_dockerd) as es:
            blob = base / "blob"
            with open(blob, "wb") as f:
                f.writelines(os.urandom(MB) for _ in range(BLOB_BYTES // MB))
            blob_sha = sha256_file(blob)
            if "logs" in only:
                bench_logs(es, base, ns.runs)
            if "follow" in only:
                for e in es:
                    bench_follow(e, base)
            if "exec" in only:
                bench_exec_attach(es, ns.runs)
            if "files" in only:
                bench_files(es, base, blob, blob_sha, ns.runs)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    load_after = os.getloadavg()
    report(es, load_before, load_after)
    return 0


def report(es: list[Engine], load_before: tuple[float, ...], load_after: tuple[float, ...]
           ) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    names = [e.name for e in es]
    head = f"{'measure':38} " + " ".join(f"{n:>9}" for n in names)
    if len(es) == 2:
        head += f" {'ratio':>6}  target"
    print(head)
    for key, target in TARGETS.items():
        if key not in es[0].results:
            continue
        vals = [e.results.get(key, float("nan")) for e in es]
        row = f"{key:38} " + " ".join(f"{v:9.1f}" for v in vals)
        if len(es) == 2:
            row += f" {vals[0] / vals[1]:6.2f}  {target}"
        print(row)
    for title, table in (("daemon RSS growth while streaming, peak (MB)", "rss"),
                         ("daemon CPU time per stream, median (s)", "cpu")):
        print(title)
        for key in TARGETS:
            if key in getattr(es[0], table):
                print(f"  {key:36} " + " ".join(
                    f"{getattr(e, table).get(key, float('nan')):9.2f}" for e in es))


if __name__ == "__main__":
    sys.exit(main())
