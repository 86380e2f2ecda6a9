"""Volumes, binds and tmpfs mounts on a pure cgroup v2 host: the same engine
code as on v1, checked end to end where the runtime's own mount setup and
cgroup namespace differ (crun/runc without the hybrid-host wrapper)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def test_named_volume_bind_and_tmpfs(docker, name, tmp_path):
    vol = f"v2-{uuid.uuid4().hex[:8]}"
    docker.out("volume", "create", vol)
    try:
        data = os.urandom(1 << 20)
        (tmp_path / "in.bin").write_bytes(data)
        out = docker.out("run", "--name", name, "-v", f"{vol}:/d", "-v", f"{tmp_path}:/b",
                         "--tmpfs", "/run:size=8m", "busybox", "sh", "-c",
                         "cp /b/in.bin /d/copy && echo kept > /d/f && "
                         "df -k /run | tail -1 && cmp /b/in.bin /d/copy && echo same")
        lines = out.splitlines()
        assert lines[0].split()[1] == "8192" and lines[1] == "same"
        assert docker.out("run", "--rm", "-v", f"{vol}:/d", "busybox", "cat", "/d/f") == "kept\n"
        mp = Path(docker.out("volume", "inspect", "-f", "{{.Mountpoint}}", vol).strip())
        assert (mp / "copy").read_bytes() == data
        # cp out of the stopped container's volume
        got = docker.run("cp", f"{name}:/d/f", str(tmp_path / "back"))
        assert got.returncode == 0, got.stderr
        assert (tmp_path / "back").read_text() == "kept\n"
        res = docker.run("volume", "rm", vol)
        assert "volume is in use" in res.stderr
    finally:
        docker.remove(name)
        docker.run("volume", "rm", "-f", vol)
