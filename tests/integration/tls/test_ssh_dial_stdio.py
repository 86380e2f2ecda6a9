"""ssh:// hosts: the docker CLI runs `ssh ... -- HOST docker system dial-stdio`
and speaks the API through that command's stdin and stdout; on the remote
side `docker system dial-stdio` dials the daemon's unix socket.  Here the
`ssh` the CLI finds on PATH runs the remote command on this machine (the
transport is ssh's business; the README shows the setup with a real sshd),
so what is tested is the CLI's ssh helper and dial-stdio against our socket:
an interactive-style stdin stream, a large copy and the exit code."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from tests.integration.conftest import DOCKER, Daemon


def ssh_env(daemon: Daemon, tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    ssh = bin_dir / "ssh"
    ssh.write_text(f"""#!/bin/sh
echo "$*" >> {calls}
while [ $# -gt 0 ]; do case "$1" in --) shift; break;; *) shift;; esac; done
shift   # the host
exec env DOCKER_HOST={daemon.host} "$@"
""")
    ssh.chmod(0o755)
    env = daemon.env()
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    env["DOCKER_HOST"] = "ssh://root@127.0.0.1:2222"
    return env


def test_ssh_host_through_dial_stdio(daemon: Daemon, tmp_path: Path):
    env = ssh_env(daemon, tmp_path)
    data = os.urandom(4 * 1024 * 1024)
    res = subprocess.run([DOCKER, "run", "-i", "--rm", "busybox", "sh", "-c",
                          "sha256sum; exit 7"], env=env, input=data, capture_output=True,
                         timeout=60)
    assert res.returncode == 7, res.stderr
    assert res.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls and all(c.endswith("-- 127.0.0.1 docker system dial-stdio") and
                         "-l root -p 2222" in c for c in calls)
    info = subprocess.run([DOCKER, "info", "--format", "{{.ID}}"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert info.stdout == daemon.out("info", "--format", "{{.ID}}")
