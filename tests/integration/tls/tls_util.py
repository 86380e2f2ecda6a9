"""Helpers for the TLS tests: a daemon on its unix socket and on TCP with
mutual TLS (a free port on 127.0.0.1), certificates made by `dockyard certs`,
and the docker CLI pointed at either."""

from __future__ import annotations

import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.integration.conftest import DOCKER, Daemon, start_daemon


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_pki(d: Path) -> Path:
    subprocess.run([sys.executable, "-m", "dockyard.cli", "certs", "--dir", str(d),
                    "--host", "localhost", "--host", "127.0.0.1"], check=True,
                   capture_output=True)
    return d


@dataclass
class TlsDaemon:
    daemon: Daemon
    port: int
    certs: Path

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def env(self, cert_path: Path | None = None) -> dict[str, str]:
        """The environment of a remote client: DOCKER_HOST, DOCKER_TLS_VERIFY,
        DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem)."""
        env = self.daemon.env()
        env.update(DOCKER_HOST=self.url, DOCKER_TLS_VERIFY="1",
                   DOCKER_CERT_PATH=str(cert_path or self.certs))
        return env

    def docker(self, *args: str, input: bytes | None = None, timeout: float = 60,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([DOCKER, *args], env=env or self.env(), input=input,
                              capture_output=True, timeout=timeout)

    def out(self, *args: str, **kw: object) -> str:
        res = self.docker(*args, **kw)  # type: ignore[arg-type]
        assert res.returncode == 0, res.stderr.decode()
        return res.stdout.decode()

    def log_since(self, mark: int) -> str:
        return self.daemon.log()[mark:]


def start_tls_daemon(base: Path, certs: Path, extra: list[str] | None = None) -> TlsDaemon:
    for _attempt in range(5):
        port = free_port()
        try:
            d = start_daemon(base, [
                "-H", f"tcp://127.0.0.1:{port}", "--tlsverify",
                "--tlscacert", str(certs / "ca.pem"), "--tlscert", str(certs / "server-cert.pem"),
                "--tlskey", str(certs / "server-key.pem"), *(extra or [])])
        except RuntimeError as e:
            if "Address already in use" in str(e):
                continue      # another process took the port meanwhile
            raise
        return TlsDaemon(d, port, certs)
    raise RuntimeError("no free port found")


