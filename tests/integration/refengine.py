"""A private Docker Engine (Debian's docker.io) to compare dockyard with.

It runs on its own socket, data root and exec root, with no networking of
its own (`--bridge=none`, no iptables), so it leaves nothing on the host;
nothing is pulled: images come from dockyard (`docker save | docker load`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


def reference_available() -> bool:
    return shutil.which("dockerd") is not None and os.geteuid() == 0


@contextlib.contextmanager
def reference_dockerd(base: Path, start_timeout: float = 60) -> Iterator[list[str] | None]:
    """The docker CLI argv prefix for a private dockerd, or None when it is
    not installed or does not start (then the caller compares with the
    texts it keeps)."""
    if not reference_available():
        yield None
        return
    sock = base / "docker.sock"
    log_path = base / "dockerd.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        ["dockerd", "-H", f"unix://{sock}", "--data-root", str(base / "data"),
         "--exec-root", str(base / "exec"), "--pidfile", str(base / "dockerd.pid"),
         "--iptables=false", "--ip6tables=false", "--bridge=none"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    cli = [DOCKER, "-H", f"unix://{sock}"]
    try:
        deadline = time.monotonic() + start_timeout
        started = True
        while subprocess.run([*cli, "version"], capture_output=True,
                             check=False).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                started = False
                break
            time.sleep(0.3)
        yield cli if started else None
    finally:
        if proc.poll() is None:
            ids = subprocess.run([*cli, "ps", "-aq"], capture_output=True, text=True,
                                 check=False).stdout.split()
            if ids:
                subprocess.run([*cli, "rm", "-f", *ids], capture_output=True, check=False)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        for m in sorted((line.split()[4] for line in
                         Path("/proc/self/mountinfo").read_text().splitlines()
                         if line.split()[4].startswith(str(base))), reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True, check=False)
