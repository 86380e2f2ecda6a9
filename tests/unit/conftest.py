"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.util.fstree import clear_dir


@pytest.fixture
def deep_tmp(tmp_path: Path) -> Iterator[Path]:
    """tmp_path for trees deeper than pytest's own (recursive) cleanup can
    remove: emptied by the test itself."""
    yield tmp_path
    clear_dir(tmp_path)
