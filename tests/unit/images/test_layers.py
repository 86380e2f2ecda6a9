"""Layer extraction with hostile tarballs, whiteouts, metadata; and the reverse."""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
from pathlib import Path

import pytest
from imgtestutil import entry, tar_bytes, write

from dockyard.images.layers import LayerError, apply_layer_tar


def apply(tmp_path: Path, members: list, privileged: bool = False) -> Path:
    root = tmp_path / "layer"
    root.mkdir()
    apply_layer_tar(write(tmp_path / "l.tar", tar_bytes(members)), root, privileged)
    return root


def test_regular_files_modes_mtimes_xattrs(tmp_path: Path) -> None:
    root = apply(tmp_path, [
        entry("etc/", tarfile.DIRTYPE, mode=0o750, mtime=1_500_000_000),
        entry("etc/conf", data=b"x=1\n", mode=0o4755, mtime=1_400_000_000,
              pax={"SCHILY.xattr.user.note": "hello"}),
        entry("bin/sh", tarfile.SYMTYPE, linkname="/bin/busybox"),
        entry("etc/hard", tarfile.LNKTYPE, linkname="etc/conf"),
        entry("fifo", tarfile.FIFOTYPE, mode=0o600),
    ])
    conf = root / "etc/conf"
    assert conf.read_bytes() == b"x=1\n"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o4755
    assert conf.stat().st_mtime == 1_400_000_000
    assert (root / "etc").stat().st_mtime == 1_500_000_000   # set after its children
    assert stat.S_IMODE((root / "etc").stat().st_mode) == 0o750
    assert os.readlink(root / "bin/sh") == "/bin/busybox"     # stored, never followed
    assert (root / "etc/hard").stat().st_ino == conf.stat().st_ino
    assert stat.S_ISFIFO((root / "fifo").lstat().st_mode)
    try:
        assert os.getxattr(conf, "user.note") == b"hello"
    except OSError:
        pytest.skip("filesystem without user xattrs")


def test_dotdot_stops_at_the_layer_root(tmp_path: Path) -> None:
    """As dockerd, which unpacks chrooted: `..` never leaves the root."""
    root = apply(tmp_path, [entry("../escape", data=b"x"),
                            entry("a/../../../b", data=b"y")])
    assert not (tmp_path / "escape").exists()
    assert (root / "escape").read_bytes() == b"x"
    assert (root / "b").read_bytes() == b"y"


def test_absolute_names_stay_inside(tmp_path: Path) -> None:
    root = apply(tmp_path, [entry(str(tmp_path / "abs"), data=b"x")])
    assert not (tmp_path / "abs").exists()
    assert (root / str(tmp_path / "abs").lstrip("/")).read_bytes() == b"x"


def test_write_through_planted_symlink_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    with pytest.raises(LayerError):
        apply(tmp_path, [entry("evil", tarfile.SYMTYPE, linkname=str(outside)),
                         entry("evil/pwned", data=b"x")])
    assert list(outside.iterdir()) == []


def test_relative_symlink_escape_is_not_followed(tmp_path: Path) -> None:
    with pytest.raises(LayerError):
        apply(tmp_path, [entry("up", tarfile.SYMTYPE, linkname="../.."),
                         entry("up/tmp/pwned", data=b"x")])
    assert not (tmp_path.parent / "tmp" / "pwned").exists()


def test_file_replacing_symlink_does_not_write_target(tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.write_bytes(b"keep")
    root = apply(tmp_path, [entry("link", tarfile.SYMTYPE, linkname=str(target)),
                            entry("link", data=b"new")])
    assert target.read_bytes() == b"keep"
    assert (root / "link").read_bytes() == b"new"


def test_hardlink_escape_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"s")
    for linkname in ("../secret", str(secret)):
        with pytest.raises(LayerError):
            apply(tmp_path, [entry("h", tarfile.LNKTYPE, linkname=linkname)])
        shutil.rmtree(tmp_path / "layer", ignore_errors=True)
    assert secret.stat().st_nlink == 1


def test_hardlink_via_symlinked_dir_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_bytes(b"root")
    with pytest.raises(LayerError):
        apply(tmp_path, [entry("d", tarfile.SYMTYPE, linkname=str(outside)),
                         entry("h", tarfile.LNKTYPE, linkname="d/passwd")])
    assert (outside / "passwd").stat().st_nlink == 1


def test_device_nodes_skipped_unless_privileged(tmp_path: Path) -> None:
    ti, _ = entry("dev/sda", tarfile.BLKTYPE)
    ti.devmajor, ti.devminor = 8, 0
    root = apply(tmp_path, [(ti, None)])
    assert not (root / "dev/sda").exists()


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts need CAP_MKNOD")
def test_whiteouts_become_overlay_whiteouts(tmp_path: Path) -> None:
    root = apply(tmp_path, [
        entry("a/", tarfile.DIRTYPE, mode=0o755),
        entry("a/.wh..wh..opq", data=b""),
        entry("a/keep", data=b"k"),
        entry(".wh.gone", data=b""),
        entry(".wh..wh.plnk/", tarfile.DIRTYPE),
    ])
    st = (root / "gone").lstat()
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(root / "a", "trusted.overlay.opaque") == b"y"
    assert not (root / ".wh..wh.plnk").exists()


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_ownership_preserved(tmp_path: Path) -> None:
    root = apply(tmp_path, [entry("f", data=b"x", uid=1234, gid=5678, mode=0o2755),
                            entry("l", tarfile.SYMTYPE, linkname="f", uid=42, gid=43)])
    st = (root / "f").stat()
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    assert stat.S_IMODE(st.st_mode) == 0o2755      # chmod after chown keeps setgid
    assert ((root / "l").lstat().st_uid, (root / "l").lstat().st_gid) == (42, 43)


def test_later_entries_replace_earlier(tmp_path: Path) -> None:
    root = apply(tmp_path, [entry("x/", tarfile.DIRTYPE), entry("x/y", data=b"1"),
                            entry("x", data=b"file now")])
    assert (root / "x").read_bytes() == b"file now"
