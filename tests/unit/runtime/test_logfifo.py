"""The log FIFO and its keeper (no root: a FIFO in a temporary directory)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from dockyard.runtime import logfifo


def test_make_fifo_replaces_a_stale_file(tmp_path: Path) -> None:
    path = tmp_path / "conmon.fifo"
    path.write_text("a regular file from an older run")
    fd = logfifo.make_fifo(str(path))
    try:
        assert path.is_fifo()
        os.write(fd, b"x")  # read-write: no reader needed, nothing blocks
        assert os.read(fd, 10) == b"x"
    finally:
        os.close(fd)
    fd = logfifo.make_fifo(str(path))  # an existing FIFO is kept
    os.close(fd)
    assert path.is_fifo()


def test_keeper_is_found_only_while_it_holds_the_fifo(tmp_path: Path) -> None:
    fifo, pidfile = tmp_path / "conmon.fifo", str(tmp_path / "log-keeper.pid")
    fd = logfifo.make_fifo(str(fifo))
    holder = subprocess.Popen(["sleep", "60"], pass_fds=(fd,))
    stranger = subprocess.Popen(["sleep", "60"])
    os.close(fd)
    try:
        assert logfifo.keeper_pid(pidfile, str(fifo)) is None  # no pidfile yet
        logfifo.write_keeper_pid(pidfile, holder.pid)
        assert logfifo.keeper_pid(pidfile, str(fifo)) == holder.pid
        # a pid that now names another process is never taken for the keeper
        logfifo.write_keeper_pid(pidfile, stranger.pid)
        assert logfifo.keeper_pid(pidfile, str(fifo)) is None
        logfifo.remove_pidfile(pidfile)
        logfifo.remove_pidfile(pidfile)
        assert not os.path.exists(pidfile)
    finally:
        for p in (holder, stranger):
            p.kill()
            p.wait()


def test_keeper_script_outlives_its_shell(tmp_path: Path) -> None:
    fd = logfifo.make_fifo(str(tmp_path / "conmon.fifo"))
    try:
        out = subprocess.run(logfifo.keeper_argv(), stdin=fd, capture_output=True,
                             check=True, timeout=10).stdout
    finally:
        os.close(fd)
    pid = int(out)
    try:
        # the shell is gone, the keeper holds the FIFO (once it has started)
        deadline = time.monotonic() + 5
        while not logfifo.holds(pid, str(tmp_path / "conmon.fifo")):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert Path(f"/proc/{pid}/fd/0").resolve() == tmp_path / "conmon.fifo"
    finally:
        os.kill(pid, 9)
