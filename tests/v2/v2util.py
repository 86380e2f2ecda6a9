"""Helpers for the v2 suite (see conftest.py): the docker CLI, raw Engine
API calls over the daemon's unix socket, and reading cgroup v2 files from
inside a container and from the host side."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

DOCKER = os.environ.get("V2_DOCKER") or shutil.which("docker") or "/usr/local/bin/docker"
DOCKER_HOST = os.environ.get("DOCKER_HOST", "")
IN_LANE = os.environ.get("V2LANE") == "1" and DOCKER_HOST.startswith("unix://")
SOCKET = DOCKER_HOST[len("unix://"):] if IN_LANE else ""
CGROUP_ROOT = Path("/sys/fs/cgroup")
MB = 1024 * 1024
# Under TCG emulation a container start takes ~0.5-3 s; be generous.
TIMEOUT = 120


def runc_weight(shares: int) -> int:
    """runc's (and crun 1.8's) ConvertCPUSharesToCgroupV2Value: shares
    2..262144 map linearly onto cpu.weight 1..10000 (1024 -> 39)."""
    return 1 + ((shares - 2) * 9999) // 262142


def io_weight(blkio_weight: int) -> int:
    """runc's ConvertBlkIOToIOWeightValue: blkio weight 10..1000 -> io.weight 1..10000."""
    return 1 + (blkio_weight - 10) * 9999 // 990


# -- raw API over the unix socket ---------------------------------------------

class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = TIMEOUT) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


def api(method: str, path: str, body: Any = None, timeout: float = TIMEOUT) -> tuple[int, Any]:
    """(status, decoded JSON or text) of one Engine API call."""
    conn = _UnixConnection(SOCKET, timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(raw) if raw else None
    except ValueError:
        return resp.status, raw.decode(errors="replace")


# -- docker CLI ---------------------------------------------------------------

class Docker:
    def run(self, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
        return subprocess.run([DOCKER, *args], check=False, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def out(self, *args: str, timeout: float = TIMEOUT) -> str:
        res = self.run(*args, timeout=timeout)
        if res.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({res.returncode}): "
                                 f"{res.stderr.strip()}")
        return res.stdout

    def inspect(self, name: str) -> dict[str, Any]:
        # Through the API, not the CLI: each CLI start costs ~0.5 s under
        # emulation, and inspect is not what these tests are about.
        status, body = api("GET", f"/containers/{name}/json")
        assert status == 200, (status, body)
        return body

    def remove(self, name: str) -> None:
        api("DELETE", f"/containers/{name}?force=1")


# -- reading cgroups ----------------------------------------------------------

def cat_in(docker: Docker, *run_args: str, files: tuple[str, ...],
           image: str = "busybox") -> dict[str, str]:
    """Run a container with `run_args` that prints each cgroup file (relative
    to its /sys/fs/cgroup, i.e. its own group through the cgroup namespace);
    {file: stripped content, or "<missing>"}."""
    script = "; ".join(
        f'echo "@@{f}"; cat /sys/fs/cgroup/{f} 2>/dev/null || echo "<missing>"' for f in files)
    out = docker.out("run", "--rm", *run_args, image, "sh", "-c", script)
    res: dict[str, list[str]] = {}
    cur = None
    for line in out.splitlines():
        if line.startswith("@@"):
            cur = line[2:]
            res[cur] = []
        elif cur is not None:
            res[cur].append(line)
    return {k: "\n".join(v).strip() for k, v in res.items()}


def host_cgroup_dir(docker: Docker, name: str) -> Path:
    """The running container's cgroup directory, found from the host side
    through its init's /proc/<pid>/cgroup (the single "0::" line on v2)."""
    pid = docker.inspect(name)["State"]["Pid"]
    assert pid > 0, f"{name} is not running"
    text = Path(f"/proc/{pid}/cgroup").read_text()
    lines = text.splitlines()
    assert len(lines) == 1 and lines[0].startswith("0::"), f"not a pure v2 process: {text!r}"
    d = CGROUP_ROOT / lines[0][3:].lstrip("/")
    assert d.is_dir(), d
    return d


def read_host(d: Path, file: str) -> str:
    return (d / file).read_text().strip()


def wait_for(pred, timeout: float = 30, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def run_detached(docker: Docker, name: str, *args: str, cmd: tuple[str, ...] = ("sleep", "600"),
                 image: str = "busybox") -> str:
    docker.out("run", "-d", "--name", name, *args, image, *cmd)
    wait_for(lambda: docker.inspect(name)["State"]["Running"], what=f"{name} running")
    return name
