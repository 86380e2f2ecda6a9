"""Issue 3: state survives `kill -9` of the daemon; containers keep running."""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from pathlib import Path

from tests.integration.conftest import start_daemon, stop_daemon

LOOP = 'trap "exit 0" TERM; while :; do echo tick; sleep 0.2; done'


def test_kill_dash_nine_and_restart():
    base = Path(tempfile.mkdtemp(prefix="dockyard-it-", dir="/var/tmp"))
    d = start_daemon(base)
    try:
        for n in ("r1", "r2", "r3"):
            d.out("run", "-d", "--name", n, "busybox", "sh", "-c", LOOP)
        d.out("run", "-d", "--name", "e1", "busybox", "sh", "-c", "sleep 1; exit 42")
        pids = {n: json.loads(d.out("inspect", n))[0]["State"]["Pid"] for n in ("r1", "r2")}
        os.kill(d.proc.pid, signal.SIGKILL)
        d.proc.wait()
        time.sleep(2)  # e1 exits while the daemon is down
        for pid in pids.values():
            os.kill(pid, 0)  # still running without the daemon
        d2 = start_daemon(base)
        d = d2
        states = {n: json.loads(d.out("inspect", n))[0]["State"]
                  for n in ("r1", "r2", "r3", "e1")}
        for n in ("r1", "r2", "r3"):
            assert states[n]["Status"] == "running"
        assert states["r1"]["Pid"] == pids["r1"]
        assert states["e1"]["Status"] == "exited"
        assert states["e1"]["ExitCode"] == 42
        assert states["e1"]["FinishedAt"] != "0001-01-01T00:00:00Z"
        # logs written while the daemon was down are there
        assert "tick" in d.out("logs", "--tail", "1", "r1")
        d.out("stop", "r1", "r2", "r3")
        assert d.out("inspect", "-f", "{{.State.ExitCode}}", "r1").strip() == "0"
        d.out("rm", "r1", "r2", "r3", "e1")
        assert d.out("ps", "-aq") == ""
    finally:
        stop_daemon(d)
