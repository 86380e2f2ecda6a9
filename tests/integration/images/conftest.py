"""Registries on 127.0.0.1 for the registry tests (see registries.py)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import remove_test_dir
from tests.integration.images.registries import Registry, TokenServer, make_ca

USER, PASSWORD = "tester", "s3cret-pass"


@pytest.fixture(scope="module")
def reg_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="dockyard-reg-", dir="/var/tmp"))
    try:
        yield d
    finally:
        remove_test_dir(d)


@pytest.fixture(scope="module")
def registry(reg_dir: Path) -> Iterator[Registry]:
    """A plain http registry without authentication."""
    r = Registry(reg_dir / "plain").start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture(scope="module")
def auth_registry(reg_dir: Path) -> Iterator[Registry]:
    """htpasswd basic auth: USER / PASSWORD."""
    r = Registry(reg_dir / "basic", htpasswd=(USER, PASSWORD)).start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture(scope="module")
def token_registry(reg_dir: Path) -> Iterator[Registry]:
    """Bearer tokens from TokenServer: USER may do anything, anonymous
    clients may pull `public/*` only."""
    ts = TokenServer(reg_dir / "token", {USER: PASSWORD}).start()
    r = Registry(reg_dir / "bearer", token=ts).start()
    try:
        yield r
    finally:
        r.stop()
        ts.stop()


@pytest.fixture(scope="module")
def tls_material(reg_dir: Path) -> tuple[Path, Path, Path]:
    return make_ca(reg_dir / "ca")


@pytest.fixture(scope="module")
def tls_registry(reg_dir: Path, tls_material: tuple[Path, Path, Path]) -> Iterator[Registry]:
    """https with a certificate signed by a CA these tests made."""
    _ca, crt, key = tls_material
    r = Registry(reg_dir / "tls", tls=(crt, key)).start()
    try:
        yield r
    finally:
        r.stop()
