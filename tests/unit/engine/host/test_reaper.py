"""The reaper: an orphaned runtime or monitor process that exits is reaped
soon after, though nothing waits for it; sweeps follow SIGCHLD."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]

# Runs as its own process: it becomes a child subreaper (as the daemon
# does), starts the reaper, then orphans a process named "crun" that
# sleeps a moment and exits.  Prints what became of it.
SCRIPT = textwrap.dedent("""
    import asyncio, ctypes, subprocess, sys, time
    sys.path.insert(0, sys.argv[2])
    from dockyard.engine.host.reaper import reaper_loop, zombie_children
    from dockyard.util.kernelfile import read_small as _read
    import os

    def child_state(name):
        me = os.getpid()
        for task in os.listdir(f"/proc/{me}/task"):
            for k in (_read(f"/proc/{me}/task/{task}/children") or b"").split():
                stat = _read(f"/proc/{int(k)}/stat") or b""
                if f"({name})".encode() in stat:
                    return stat[stat.rindex(b")") + 2:][:1].decode()
        return None

    async def main():
        assert ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0
        reaper = asyncio.create_task(reaper_loop(interval=0.2))
        await asyncio.sleep(0.1)
        subprocess.run(["sh", "-c", sys.argv[1] + " 0.3 &"], check=True)
        states = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            states.append(child_state("crun"))
            if states[-1] is None and any(states):
                break                  # it was there, and is gone
            await asyncio.sleep(0.05)
        reaper.cancel()
        print(",".join(s or "-" for s in states))

    asyncio.run(main())
""")


def test_an_orphan_that_exits_is_reaped(tmp_path: Path) -> None:
    fake = tmp_path / "crun"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", fake)
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(fake), str(ROOT)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    states = out.stdout.strip().split(",")
    assert "S" in states or "R" in states, states      # it was ours, alive
    assert states[-1] == "-", states                   # and is gone: not left a zombie
