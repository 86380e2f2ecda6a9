"""Fixtures of the TLS tests (see tls_util)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tls_util import TlsDaemon, make_pki, start_tls_daemon

from tests.integration.conftest import stop_daemon


@pytest.fixture(scope="session")
def pki() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="dockyard-pki-", dir="/var/tmp") as d:
        yield make_pki(Path(d))


@pytest.fixture(scope="session")
def tls_daemon(pki: Path) -> Iterator[TlsDaemon]:
    base = Path(tempfile.mkdtemp(prefix="dockyard-tls-", dir="/var/tmp"))
    td = start_tls_daemon(base, pki, ["--tls-handshake-timeout", "2"])
    try:
        yield td
    finally:
        stop_daemon(td.daemon)


@pytest.fixture
def cacert_only(pki: Path, tmp_path: Path) -> Path:
    """A DOCKER_CERT_PATH with the CA but no client certificate."""
    d = tmp_path / "no-client-cert"
    d.mkdir()
    (d / "ca.pem").write_bytes((pki / "ca.pem").read_bytes())
    os.chmod(d, 0o700)
    return d
