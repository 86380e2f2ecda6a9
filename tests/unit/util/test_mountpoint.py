"""is_mountpoint asks the kernel (statx) and agrees with /proc/self/mountinfo."""

from __future__ import annotations

import os
from pathlib import Path

from dockyard.util import mount


def listed() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


# where the host's containers come and go while the tests run
_BUSY = ("/run", "/var", "/tmp", "/work", "/proc/")


def test_agrees_with_mountinfo_on_the_hosts_mount_points_and_their_children() -> None:
    every = listed()
    points = sorted(p for p in every if "\\" not in p and not p.startswith(_BUSY))
    assert points
    for p in points:
        if os.path.exists(p):
            assert mount.is_mountpoint(p), p
    checked = 0
    for p in points:
        try:
            names = sorted(os.listdir(p))[:5]
        except OSError:
            continue
        for n in names:
            child = os.path.join(p, n)
            if child.startswith(_BUSY):
                continue
            want = child in every
            assert mount.is_mountpoint(child) == want, child
            checked += 1
    assert checked > 10


def test_a_plain_directory_a_file_and_a_missing_path_are_not(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("x")
    assert not mount.is_mountpoint(str(tmp_path / "d"))
    assert not mount.is_mountpoint(str(tmp_path / "f"))
    assert not mount.is_mountpoint(str(tmp_path / "missing"))
    assert not mount.is_mountpoint(str(tmp_path / "f" / "below-a-file"))
    assert mount.is_mountpoint("/proc")
