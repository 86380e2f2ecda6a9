"""Many `docker events` subscribers while several clients run containers at
once: no run fails, every run gets its own bytes back, and every subscriber
sees every container's events exactly once, in Docker's order.
(bench/load_bench.py does the same at scale, timed.)"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
from pathlib import Path

from tests.integration.conftest import DOCKER, Daemon
from tests.integration.containers.eventcheck import judge, read_stream, sequences

SUBSCRIBERS = 10
CLIENTS = 5
RUNS = 3

# what dockerd 20.10 emits for `docker run --rm -i` on the default bridge
EXPECTED = ["container create", "container attach", "network connect", "container start",
            "container die", "network disconnect", "container destroy"]


def listeners(daemon: Daemon) -> int:
    out = daemon.out("info", "--format", "{{.NEventsListener}}")
    return int(out.strip())


def test_subscribers_see_every_run_once_in_order(daemon: Daemon, tmp_path: Path) -> None:
    before = listeners(daemon)
    files = [tmp_path / f"events-{i}.jsonl" for i in range(SUBSCRIBERS)]
    subs = []
    ids: set[str] = set()
    failures: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        for r in range(RUNS):
            payload = os.urandom(256 * 1024)
            cidfile = tmp_path / f"c{n}-{r}.cid"
            res = subprocess.run([DOCKER, "run", "--rm", "-i", "--cidfile", str(cidfile),
                                  "busybox", "md5sum"], env=daemon.env(), input=payload,
                                 capture_output=True, timeout=120)
            with lock:
                if cidfile.exists():
                    ids.add(cidfile.read_text().strip())
                want = hashlib.md5(payload).hexdigest()
                if res.returncode != 0 or res.stdout.split()[:1] != [want.encode()]:
                    failures.append(f"client {n} run {r}: exit {res.returncode}, "
                                    f"{res.stdout[:80]!r} {res.stderr[:300]!r}")

    try:
        for f in files:
            with open(f, "wb") as w:
                subs.append(subprocess.Popen([DOCKER, "events", "--format", "{{json .}}"],
                                             env=daemon.env(), stdout=w,
                                             stderr=subprocess.STDOUT))
        deadline = time.time() + 30
        while listeners(daemon) < before + SUBSCRIBERS:
            assert time.time() < deadline, "the subscribers never all connected"
            time.sleep(0.1)
        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not failures, failures
        assert len(ids) == CLIENTS * RUNS
        deadline = time.time() + 30        # the last destroy events are on their way
        while not all(all("container destroy" in seq
                           for seq in sequences(read_stream(f), ids).values())
                      for f in files):
            assert time.time() < deadline, "destroy events missing"
            time.sleep(0.2)
        time.sleep(0.5)                    # and nothing after them
    finally:
        for p in subs:
            p.terminate()
        for p in subs:
            p.wait(10)
    verdict = judge([read_stream(f) for f in files], ids)
    assert verdict.canonical == EXPECTED
    assert verdict.ok, (verdict.lost, verdict.duplicated, verdict.misordered,
                        verdict.problems)
    assert verdict.subscribers == SUBSCRIBERS and verdict.containers == CLIENTS * RUNS
