"""util/treecopy: cp -a for trees of any depth, owners mapped."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dockyard.util.fstree import tree_size
from dockyard.util.treecopy import copy_tree

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, mknod)")


def _walk_to(top: Path, depth: int, name: str) -> int:
    fd = os.open(top, os.O_RDONLY)
    for _ in range(depth):
        nfd = os.open(name, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    return fd


def test_copy_of_a_tree_deeper_than_path_max(deep_tmp: Path) -> None:
    src = deep_tmp / "src"
    src.mkdir()
    fd = os.open(src, os.O_RDONLY)
    for _ in range(1500):
        os.mkdir("level-dir", 0o750, dir_fd=fd)
        nfd = os.open("level-dir", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    wfd = os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o640, dir_fd=fd)
    os.write(wfd, b"bottom")
    os.close(wfd)
    os.utime("leaf", (1_000_000, 1_000_000), dir_fd=fd)
    os.close(fd)
    copy_tree(src, deep_tmp / "dst")
    fd = _walk_to(deep_tmp / "dst", 1500, "level-dir")
    try:
        st = os.stat("leaf", dir_fd=fd)
        assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_mtime == 1_000_000
        rfd = os.open("leaf", os.O_RDONLY, dir_fd=fd)
        assert os.read(rfd, 100) == b"bottom"
        os.close(rfd)
        assert stat.S_IMODE(os.fstat(fd).st_mode) == 0o750
    finally:
        os.close(fd)
    assert tree_size(deep_tmp / "dst") == tree_size(src) == 6


def test_entry_types_links_and_metadata(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_bytes(b"x" * 5000)
    os.link(src / "d" / "f", src / "hard")
    (src / "sym").symlink_to("d/f")
    os.mkfifo(src / "fifo", 0o604)
    (src / "ro").mkdir()
    (src / "ro" / "inside").write_text("i")
    os.chmod(src / "ro", 0o555)
    os.utime(src / "d", (2_000_000, 2_000_000))
    copy_tree(src, tmp_path / "dst")
    dst = tmp_path / "dst"
    assert (dst / "d" / "f").read_bytes() == b"x" * 5000
    assert (dst / "hard").stat().st_ino == (dst / "d" / "f").stat().st_ino
    assert os.readlink(dst / "sym") == "d/f"
    assert stat.S_ISFIFO((dst / "fifo").lstat().st_mode)
    assert stat.S_IMODE((dst / "fifo").lstat().st_mode) == 0o604
    assert stat.S_IMODE((dst / "ro").stat().st_mode) == 0o555
    assert (dst / "ro" / "inside").read_text() == "i"
    assert (dst / "d").stat().st_mtime == 2_000_000     # set after its entries
    os.chmod(src / "ro", 0o755)
    os.chmod(dst / "ro", 0o755)


@root_only
def test_whiteouts_opaque_dirs_and_mapped_owners(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "opq").mkdir(parents=True)
    os.setxattr(src / "opq", "trusted.overlay.opaque", b"y")
    os.mknod(src / "gone", stat.S_IFCHR, os.makedev(0, 0))
    (src / "suid").write_text("")
    os.chown(src / "suid", 5, 6)
    os.chmod(src / "suid", 0o4755)
    copy_tree(src, tmp_path / "dst", lambda u, g: (u + 100000, g + 200000))
    dst = tmp_path / "dst"
    assert os.getxattr(dst / "opq", "trusted.overlay.opaque") == b"y"
    st = (dst / "gone").lstat()
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    st = (dst / "suid").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (100005, 200006, 0o4755)
    assert (dst / "opq").stat().st_uid == 100000
