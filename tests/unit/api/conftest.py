"""The `server` fixture: a real server on a unix socket (see http_testutil);
`no_tracebacks`, for tests of what clients may send."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from http_testutil import Server, running_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with running_server(tmp_path) as s:
        yield s


@pytest.fixture
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]
