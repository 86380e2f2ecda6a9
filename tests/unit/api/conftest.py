"""The `server` fixture: a real server on a unix socket (see http_testutil)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from http_testutil import Server, running_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with running_server(tmp_path) as s:
        yield s
