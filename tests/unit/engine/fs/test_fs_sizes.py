"""Container sizes (SizeRw, SizeRootFs): moby's directory.Size."""

from __future__ import annotations

import os
from pathlib import Path

from dockyard.engine.containers.views import dir_size


def test_hardlinks_count_once(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/busybox").write_bytes(b"x" * 1000)
    for name in ("sh", "ls", "cat"):
        os.link(tmp_path / "bin/busybox", tmp_path / "bin" / name)
    assert dir_size(tmp_path) == 1000


def test_symlinks_and_empty_files(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d/f").write_bytes(b"abc")
    (tmp_path / "empty").write_bytes(b"")
    os.symlink("d", tmp_path / "dirlink")          # a symlink to a directory: its own size
    os.symlink("d/f", tmp_path / "filelink")
    assert dir_size(tmp_path) == 3 + len("d") + len("d/f")


def test_missing_directory_is_zero(tmp_path: Path) -> None:
    assert dir_size(tmp_path / "nope") == 0
