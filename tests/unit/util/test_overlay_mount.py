"""Overlay mounts name every directory by descriptor: the mount is the same
overlay as with full paths, its line in the mount table stays short, and
an image of many more layers than full paths allow fits one page of
options."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from dockyard.util.mount import MS_RDONLY, mount_overlay, mountinfo_has, umount

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")

LONG = "layer-with-a-name-as-long-as-a-content-digest-" + "0" * 40


def layers(base: Path, count: int) -> list[str]:
    """`count` lower directories, top first: each has its own file and a
    shared one holding its number."""
    out = []
    for i in range(count):
        d = base / f"{LONG}-{i:03d}" / "diff"
        d.mkdir(parents=True)
        (d / f"only-{i}").write_text(str(i))
        (d / "shared").write_text(str(i))
        out.append(str(d))
    return out


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def mount_line(target: Path) -> str:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        if f" {target} " in line:
            return line
    return ""


@pytest.mark.parametrize("count", [2, 150])
def test_many_layers_make_the_same_overlay(tmp_path: Path, count: int) -> None:
    lowers = layers(tmp_path / "l", count)
    assert (len(":".join(lowers)) > 4096) == (count == 150)
    upper, work, merged = (tmp_path / n for n in ("upper", "work", "merged"))
    for d in (upper, work, merged):
        d.mkdir()
    before = open_fds()
    mount_overlay(lowers, str(upper), str(work), str(merged))
    try:
        assert open_fds() == before                       # descriptors closed again
        assert mountinfo_has(str(merged))
        assert sorted(p.name for p in merged.iterdir()) == sorted(
            ["shared", *(f"only-{i}" for i in range(count))])
        assert (merged / "shared").read_text() == "0"    # the top layer wins
        assert (merged / f"only-{count - 1}").read_text() == str(count - 1)
        (merged / "new").write_text("written")
        assert (upper / "new").read_text() == "written"
        line = mount_line(merged)
        assert str(tmp_path / "l") not in line and str(upper) not in line
        assert "upperdir=/proc/self/fd/" in line and "workdir=/proc/self/fd/" in line
        assert len(line) < len(str(merged)) + 200 + 18 * count
    finally:
        umount(str(merged))


def test_many_layers_read_only(tmp_path: Path) -> None:
    lowers = layers(tmp_path / "l", 120)
    merged = tmp_path / "merged"
    merged.mkdir()
    mount_overlay(lowers, None, None, str(merged), MS_RDONLY)
    try:
        assert (merged / "shared").read_text() == "0"
        assert len(list(merged.iterdir())) == 121
        with pytest.raises(OSError):
            (merged / "new").write_text("x")
    finally:
        umount(str(merged))


def test_past_the_page_even_by_descriptor_is_refused_cleanly(tmp_path: Path) -> None:
    lowers = [str(tmp_path)] * 300                       # 300 x 18 bytes > 4095
    merged = tmp_path / "merged"
    merged.mkdir()
    before = open_fds()
    with pytest.raises(OSError) as e:
        mount_overlay(lowers, None, None, str(merged), MS_RDONLY)
    assert e.value.errno == errno.E2BIG and "300" in str(e.value)
    assert open_fds() == before
    assert not mountinfo_has(str(merged))
