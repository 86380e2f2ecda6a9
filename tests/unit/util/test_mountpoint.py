"""is_mountpoint asks the kernel with one statx call; it must agree with
/proc/self/mountinfo on directories, files, odd names and unmounted paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.util.mount import MS_BIND, is_mountpoint, mount, mountinfo_has, umount

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")


def both(path: Path) -> tuple[bool, bool]:
    return is_mountpoint(str(path)), mountinfo_has(str(path))


def test_agrees_with_mountinfo(tmp_path: Path) -> None:
    d = tmp_path / "a dir\twith odd\\names"
    d.mkdir()
    f = tmp_path / "file"
    f.write_text("x")
    link = tmp_path / "link"
    link.symlink_to(d)
    assert both(d) == (False, False)
    assert both(f) == (False, False)
    assert both(tmp_path / "missing") == (False, False)
    mount("tmpfs", str(d), "tmpfs", 0, "size=1m")
    try:
        mount(str(f), str(f), None, MS_BIND)
        try:
            assert both(d) == (True, True)
            assert both(f) == (True, True)
            assert (is_mountpoint(f"{d}/."), mountinfo_has(f"{d}/.")) == (True, False)
            assert is_mountpoint(str(link)) is False   # a symlink is not followed
            (d / "sub").mkdir()
            assert both(d / "sub") == (False, False)
        finally:
            umount(str(f))
    finally:
        umount(str(d))
    assert both(d) == (False, False)
    assert both(f) == (False, False)


def test_well_known_mounts() -> None:
    assert is_mountpoint("/proc") and is_mountpoint("/")
    assert not is_mountpoint("/proc/self/fd")
