"""copy_into: a tree copied into an existing directory, which takes the
source directory's owner and mode; from a layer, overlay's whiteouts and
xattrs stay behind."""

from __future__ import annotations

import os
import stat

import pytest

from dockyard.util.safetar import DIR_FLAGS
from dockyard.util.treecopy import copy_into


def _copy(src, dst, **kw) -> None:  # type: ignore[no-untyped-def]
    fd = os.open(src, DIR_FLAGS)
    try:
        copy_into(fd, dst, **kw)
    finally:
        os.close(fd)


def test_contents_modes_and_links(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_bytes(os.urandom(70000))
    os.chmod(src / "d" / "f", 0o4751)
    os.link(src / "d" / "f", src / "hard")
    (src / "link").symlink_to("d/f")
    os.chmod(src, 0o711)
    dst.mkdir()
    _copy(src, dst)
    assert (dst / "d" / "f").read_bytes() == (src / "d" / "f").read_bytes()
    assert stat.S_IMODE(os.stat(dst / "d" / "f").st_mode) == 0o4751
    assert os.stat(dst / "hard").st_ino == os.stat(dst / "d" / "f").st_ino
    assert os.readlink(dst / "link") == "d/f"
    assert stat.S_IMODE(os.stat(dst).st_mode) == 0o711


@pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts and trusted xattrs need root")
def test_a_layer_leaves_overlay_whiteouts_and_xattrs_behind(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "opaque").mkdir(parents=True)
    os.setxattr(src / "opaque", "trusted.overlay.opaque", b"y")
    os.mknod(src / "gone", stat.S_IFCHR | 0o600, os.makedev(0, 0))
    (src / "kept").write_text("k")
    dst.mkdir()
    _copy(src, dst, from_layer=True)
    assert sorted(os.listdir(dst)) == ["kept", "opaque"]
    assert "trusted.overlay.opaque" not in os.listxattr(dst / "opaque")
