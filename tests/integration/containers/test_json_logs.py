"""Issue 3: json-file logs, rotation, log drivers."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

SCRIPT = "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done"


def test_json_file_format_and_rotation(daemon, name):
    daemon.docker("run", "--name", name, "--log-opt", "max-size=1k", "--log-opt",
                  "max-file=3", "busybox", "sh", "-c", SCRIPT)
    try:
        log_path = Path(daemon.out("inspect", "-f", "{{.LogPath}}", name).strip())
        assert log_path.name.endswith("-json.log")
        files = sorted(log_path.parent.glob(log_path.name + "*"))
        assert len(files) == 3
        rec = json.loads(log_path.read_text().splitlines()[-1])
        assert rec["log"] == "line-199\n" and rec["stream"] == "stdout"
        assert rec["time"].endswith("Z")
        assert daemon.out("logs", "--tail", "2", name) == "line-198\nline-199\n"
        # the oldest records were rotated away
        assert not daemon.out("logs", name).startswith("line-0\n")
    finally:
        daemon.docker("rm", name)


def test_long_line_split_at_16k(daemon, name):
    daemon.docker("run", "--name", name, "busybox", "sh", "-c",
                  "head -c 40000 /dev/zero | tr '\\0' a; echo")
    try:
        log_path = Path(daemon.out("inspect", "-f", "{{.LogPath}}", name).strip())
        recs = [json.loads(x) for x in log_path.read_text().splitlines()]
        assert [len(r["log"]) for r in recs] == [16384, 16384, 40000 - 32768 + 1]
        assert daemon.out("logs", name) == "a" * 40000 + "\n"
    finally:
        daemon.docker("rm", name)


def test_timestamps_and_stderr(daemon, name):
    daemon.docker("run", "--name", name, "busybox", "sh", "-c", "echo out; echo err >&2")
    try:
        res = daemon.docker("logs", "-t", name)
        assert res.stdout.decode().endswith(" out\n") and res.stdout[:4].isdigit()
        assert res.stderr.decode().endswith(" err\n")
    finally:
        daemon.docker("rm", name)


def test_log_drivers(daemon, name):
    res = daemon.docker("run", "--rm", "--log-driver", "syslog", "busybox", "true")
    assert "no log driver named 'syslog' is registered" in res.stderr.decode()
    res = daemon.docker("run", "--rm", "--log-opt", "foo=1", "busybox", "true")
    assert "unknown log opt 'foo' for json-file log driver" in res.stderr.decode()
    daemon.out("run", "-d", "--name", name, "--log-driver", "none", "busybox", "echo", "hi")
    try:
        daemon.docker("wait", name)
        res = daemon.docker("logs", name)
        assert "configured logging driver does not support reading" in res.stderr.decode()
        assert daemon.out("inspect", "-f", "{{.LogPath}}", name).strip() == ""
    finally:
        daemon.docker("rm", "-f", name)


def _open_files(pid: int) -> list[str]:
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass  # closed meanwhile
    return out


def test_runs_leave_no_open_log_files(daemon, name):
    """The daemon's descriptors across 30 runs: none left on a run's files
    (removed or not), and not many more in all (other tests' containers
    may come and go meanwhile)."""
    pid = daemon.proc.pid
    daemon.docker("run", "--rm", "busybox", "echo", "warm up")
    before = len(_open_files(pid))
    ids = []
    for i in range(15):
        daemon.out("run", "--name", f"{name}-{i}", "busybox", "sh", "-c", "seq 1 3000")
        ids.append(daemon.out("inspect", "-f", "{{.Id}}", f"{name}-{i}").strip())
        assert daemon.out("logs", "--tail", "1", f"{name}-{i}") == "3000\n"
        daemon.out("rm", f"{name}-{i}")
        ids.append(daemon.out("run", "-d", "--name", f"{name}-d{i}", "busybox", "true").strip())
        daemon.out("wait", f"{name}-d{i}")
        daemon.out("rm", f"{name}-d{i}")
    deadline = time.monotonic() + 10
    while True:
        files = _open_files(pid)
        ours = [f for f in files if any(cid in f for cid in ids)]
        if (not ours and len(files) <= before + 10) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not ours, f"files of removed containers still open: {ours[:5]}"
    assert len(files) <= before + 10, f"{len(files) - before} more open files after 30 runs"
