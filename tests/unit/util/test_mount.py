"""is_mountpoint against what /proc/self/mountinfo says."""

from __future__ import annotations

import os
from pathlib import Path

from dockyard.util.mount import is_mountpoint, unescape_mountinfo


def mount_targets() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {unescape_mountinfo(line.split()[4]) for line in f}


def test_every_mount_target_is_a_mountpoint() -> None:
    targets = [t for t in mount_targets() if os.path.isdir(t) and not os.path.islink(t)]
    assert targets
    assert all(is_mountpoint(t) for t in targets), [t for t in targets if not is_mountpoint(t)]


def test_plain_directories_files_and_missing_paths_are_not(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("x")
    os.symlink("/proc", tmp_path / "link")       # a symlink to a mount point is not one
    for p in ("d", "f", "link", "missing"):
        assert not is_mountpoint(str(tmp_path / p)), p
    assert str(tmp_path / "d") not in mount_targets()


def test_trailing_slash_and_root() -> None:
    assert is_mountpoint("/proc/")
    assert is_mountpoint("/")
