"""A private Docker Engine for side-by-side checks and benchmarks: its own
socket, data root, exec root and pidfile under one directory, and no
networking of its own (no bridge, no iptables), so it leaves nothing on the
host once stopped."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def start_private_dockerd(base: Path, docker: str, timeout: float = 60
                          ) -> tuple[subprocess.Popen[bytes], str] | None:
    """(process, socket path), or None when it did not come up (its log is
    base/dockerd.log)."""
    sock = str(base / "docker.sock")
    log = open(base / "dockerd.log", "wb")
    proc = subprocess.Popen(
        ["dockerd", "-H", f"unix://{sock}", "--data-root", str(base / "data"),
         "--exec-root", str(base / "exec"), "--pidfile", str(base / "dockerd.pid"),
         "--iptables=false", "--ip6tables=false", "--bridge=none"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    deadline = time.monotonic() + timeout
    while subprocess.run([docker, "-H", f"unix://{sock}", "version"], capture_output=True,
                         check=False).returncode != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            return None
        time.sleep(0.3)
    return proc, sock
