"""ssh:// hosts: the docker CLI runs `ssh ... -- HOST docker system dial-stdio`
and speaks the API through that command's stdin and stdout; on the remote
side `docker system dial-stdio` dials the daemon's unix socket.

Two ways: an OpenSSH server of our own on 127.0.0.1 (from Debian's
openssh-server, unpacked by tests/fixtures/sshd.sh, never installed), whose
`SetEnv DOCKER_HOST` points dial-stdio at the daemon; and, where that is not
available, an `ssh` on PATH that runs the remote command on this machine,
which still tests the CLI's ssh helper and dial-stdio against our socket."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import DOCKER, Daemon

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "sshd.sh"


def _fixture(what: str) -> str:
    return subprocess.run(["bash", str(FIXTURE), what], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture
def sshd_env(daemon: Daemon, tmp_path: Path) -> Iterator[dict[str, str]]:
    """DOCKER_HOST=ssh://root@127.0.0.1:PORT through a real sshd."""
    sshd = _fixture("path")
    if not os.access(sshd, os.X_OK) or subprocess.run(["getent", "passwd", "sshd"],
                                                      capture_output=True).returncode:
        pytest.skip("no private sshd: run tests/fixtures/sshd.sh fetch (make setup-test does)")
    d = tmp_path / "ssh"
    d.mkdir()
    for key in ("hostkey", "id"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)],
                       check=True)
    (d / "authorized_keys").write_bytes((d / "id.pub").read_bytes())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (d / "sshd_config").write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {d}/hostkey
PidFile {d}/sshd.pid
AuthorizedKeysFile {d}/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
StrictModes no
SetEnv DOCKER_HOST={daemon.host}
""")
    (d / "ssh_config").write_text(f"""Host 127.0.0.1
  IdentityFile {d}/id
  UserKnownHostsFile /dev/null
  StrictHostKeyChecking no
  LogLevel ERROR
""")
    bin_dir = d / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F {d}/ssh_config "$@"\n')
    (bin_dir / "ssh").chmod(0o755)
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)   # its privilege separation dir
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(d / "sshd_config")],
                            env={"LD_LIBRARY_PATH": _fixture("libdir")},
                            stdout=subprocess.DEVNULL, stderr=open(d / "sshd.log", "wb"))
    deadline = time.time() + 10
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None:
            raise AssertionError((d / "sshd.log").read_text())
        time.sleep(0.05)
    env = daemon.env()
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    env["DOCKER_HOST"] = f"ssh://root@127.0.0.1:{port}"
    try:
        yield env
    finally:
        proc.terminate()
        proc.wait(10)
    assert "Accepted publickey for root" in (d / "sshd.log").read_text()


def test_ssh_host_through_a_real_sshd(daemon: Daemon, sshd_env: dict[str, str]):
    data = os.urandom(4 * 1024 * 1024)
    res = subprocess.run([DOCKER, "run", "-i", "--rm", "busybox", "sh", "-c",
                          "sha256sum; exit 7"], env=sshd_env, input=data, capture_output=True,
                         timeout=60)
    assert res.returncode == 7, res.stderr
    assert res.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()
    info = subprocess.run([DOCKER, "info", "--format", "{{.ID}}"], env=sshd_env,
                          capture_output=True, text=True, timeout=60)
    assert info.stdout == daemon.out("info", "--format", "{{.ID}}")


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
