"""The ecosystem lane: real clients (Docker Compose v2 and v1,
testcontainers-python) against a private dockyard daemon.  The clients are
installed by tests/eco/clients.sh under build/eco (`make test-eco`)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.eco.util import APPS, COMPOSE_V1, PLUGIN
from tests.integration.conftest import (  # noqa: F401 - the suite-wide checks apply here too
    Daemon,
    nothing_left_behind,
    pytest_sessionfinish,
    start_daemon,
    stop_daemon,
)


@pytest.fixture(scope="session")
def daemon() -> Iterator[Daemon]:
    if not PLUGIN.exists() or not COMPOSE_V1.exists():
        pytest.fail("the lane's clients are missing: run `make test-eco` (tests/eco/clients.sh)")
    base = Path(tempfile.mkdtemp(prefix="dockyard-eco-", dir="/var/tmp"))
    d = start_daemon(base)
    plugins = base / "docker-config" / "cli-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    (plugins / "docker-compose").symlink_to(PLUGIN)
    try:
        yield d
    finally:
        stop_daemon(d)


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A fresh copy of the demo application (tests may edit their copy)."""
    dst = tmp_path / "demo"
    shutil.copytree(APPS / "demo", dst)
    return dst

