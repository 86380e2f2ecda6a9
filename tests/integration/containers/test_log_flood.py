"""No log line is lost, whatever the rate: floods through `docker logs`,
`docker logs -f`, attach, rotation, and a daemon killed mid-flood."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.integration.conftest import DOCKER, Daemon, start_daemon, stop_daemon

N = 1_000_000
PAD = "x" * 92


def flood_cmd(n: int = N, before: str = "") -> str:
    """n numbered lines of 100 characters (101 bytes with the newline)."""
    return f"{before}seq -w 1 {n} | sed 's/$/ {PAD}/'"


def expected(n: int = N) -> bytes:
    width = len(str(n))
    return b"".join(b"%0*d %s\n" % (width, i, PAD.encode()) for i in range(1, n + 1))


def same_output(got: bytes, want: bytes) -> None:
    """Equal, or an assertion that says how they differ (not 100 MB of text)."""
    if got == want:
        return
    g, w = got.splitlines(), want.splitlines()
    first = next((i for i, (a, b) in enumerate(zip(g, w, strict=False)) if a != b),
                 min(len(g), len(w)))
    raise AssertionError(
        f"{len(g)} lines ({len(got)} bytes, sha256 {hashlib.sha256(got).hexdigest()[:16]}), "
        f"want {len(w)} ({len(want)} bytes, sha256 {hashlib.sha256(want).hexdigest()[:16]}); "
        f"first difference at line {first}: {g[first:first + 1]!r} != {w[first:first + 1]!r}")


def logs(d: Daemon, name: str) -> bytes:
    res = d.docker("logs", name, timeout=120)
    assert res.returncode == 0, res.stderr.decode()
    return res.stdout


def test_flood_of_a_million_lines_is_all_in_docker_logs(daemon, name):
    t0 = time.monotonic()
    daemon.out("run", "-d", "--name", name, "busybox", "sh", "-c", flood_cmd())
    try:
        assert daemon.out("wait", name, timeout=120).strip() == "0"
        flood_s = time.monotonic() - t0
        t0 = time.monotonic()
        got = logs(daemon, name)
        logs_s = time.monotonic() - t0
        same_output(got, expected())
        # seconds, not minutes (here: about 4 s and 10 s; dockerd 20.10: 4 s and 17 s)
        assert flood_s < 60, f"1,000,000 lines took {flood_s:.1f} s"
        assert logs_s < 60, f"docker logs of 1,000,000 lines took {logs_s:.1f} s"
        # the daemon's leftovers of the run are gone: spool empty, no keeper
        cdir = Path(daemon.out("inspect", "-f", "{{.LogPath}}", name).strip()).parent
        assert (cdir / "conmon.log").stat().st_size == 0
    finally:
        daemon.docker("rm", "-f", name)


def test_logs_follow_during_a_flood_sees_every_line_once(daemon, name):
    daemon.out("create", "--name", name, "busybox", "sh", "-c", flood_cmd(before="sleep 1; "))
    try:
        daemon.out("start", name)
        follow = subprocess.Popen([DOCKER, "logs", "-f", name], env=daemon.env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = follow.communicate(timeout=180)
        assert follow.returncode == 0, err.decode()
        same_output(out, expected())
    finally:
        daemon.docker("rm", "-f", name)


def test_attached_run_of_a_flood_gets_every_byte(daemon, name):
    res = daemon.docker("run", "--name", name, "busybox", "sh", "-c", flood_cmd(300_000),
                        timeout=120)
    try:
        assert res.returncode == 0, res.stderr.decode()
        same_output(res.stdout, expected(300_000))
        same_output(logs(daemon, name), expected(300_000))
    finally:
        daemon.docker("rm", "-f", name)


def test_docker_attach_to_a_flood_gets_every_byte(daemon, name):
    daemon.out("run", "-d", "--name", name, "busybox", "sh", "-c",
               flood_cmd(300_000, before="sleep 1; "))
    try:
        res = daemon.docker("attach", name, timeout=120)
        assert res.returncode == 0, res.stderr.decode()
        same_output(res.stdout, expected(300_000))
    finally:
        daemon.docker("rm", "-f", name)


def test_rotation_drops_only_the_oldest_lines(daemon, name):
    n = 200_000
    daemon.docker("run", "--name", name, "--log-opt", "max-size=1m", "--log-opt",
                  "max-file=3", "busybox", "sh", "-c", flood_cmd(n), timeout=120)
    try:
        log_path = Path(daemon.out("inspect", "-f", "{{.LogPath}}", name).strip())
        files = sorted(log_path.parent.glob(log_path.name + "*"))
        assert len(files) == 3
        for f in files:
            assert f.stat().st_size < (1 << 20) + 4096
        got = logs(daemon, name)
        want = expected(n)
        assert want.endswith(got), "kept lines are not the newest ones, in order"
        # three files of about 1 MiB of json each: about 2 MiB of the newest lines
        assert len(got) > (1 << 20)
    finally:
        daemon.docker("rm", "-f", name)


def test_log_driver_none_never_blocks_a_flood(daemon, name):
    res = daemon.docker("run", "--name", name, "--log-driver", "none", "busybox", "sh", "-c",
                        flood_cmd(300_000) + " >/dev/null; seq 1 300000", timeout=120)
    try:
        assert res.returncode == 0, res.stderr.decode()
        assert res.stdout.count(b"\n") == 300_000
    finally:
        daemon.docker("rm", "-f", name)


def test_daemon_killed_mid_flood_then_restarted_loses_nothing():
    base = Path(tempfile.mkdtemp(prefix="dockyard-it-", dir="/var/tmp"))
    d = start_daemon(base)
    try:
        d.out("run", "-d", "--name", "flood", "busybox", "sh", "-c", flood_cmd())
        pid = int(d.out("inspect", "-f", "{{.State.Pid}}", "flood"))
        log_path = Path(d.out("inspect", "-f", "{{.LogPath}}", "flood").strip())
        cdir = log_path.parent
        # well into the flood (101 MB): a tenth of it logged, by size not by
        # time, so a fast machine does not see it end first
        deadline = time.time() + 60
        while not log_path.exists() or log_path.stat().st_size < 10 << 20:
            assert time.time() < deadline, "the flood did not start"
            time.sleep(0.05)
        os.kill(d.proc.pid, signal.SIGKILL)
        d.proc.wait()
        time.sleep(3)
        # without the daemon the container waits on its output, and the
        # disk holds no more than the spool's few MiB of it
        os.kill(pid, 0)
        assert (cdir / "conmon.log").stat().st_size < 4 << 20
        d = start_daemon(base)
        assert d.out("wait", "flood", timeout=120).strip() == "0"
        same_output(logs(d, "flood"), expected())
    finally:
        stop_daemon(d)


def test_output_of_a_container_that_exits_while_the_daemon_is_down():
    base = Path(tempfile.mkdtemp(prefix="dockyard-it-", dir="/var/tmp"))
    d = start_daemon(base)
    try:
        # less than the log FIFO holds: conmon writes it all and exits
        d.out("run", "-d", "--name", "quick", "busybox", "sh", "-c",
              flood_cmd(5000, before="sleep 1; ") + "; printf 'no newline'")
        os.kill(d.proc.pid, signal.SIGKILL)
        d.proc.wait()
        time.sleep(3)
        d = start_daemon(base)
        assert d.out("inspect", "-f", "{{.State.Status}}", "quick").strip() == "exited"
        same_output(logs(d, "quick"), expected(5000) + b"no newline")
    finally:
        stop_daemon(d)
