"""The shared extraction core (util/safetar) with a minimal subclass."""

from __future__ import annotations

import errno
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from dockyard.util.safetar import SafeExtractor, open_dir_at


class Refused(Exception):
    pass


class _Plain(SafeExtractor):
    """Names split on "/", hardlinks by name below the root, no other policy."""

    def __init__(self, root_fd: int, **kw) -> None:
        super().__init__(root_fd, **kw)
        self.refuse_replace = False

    def parent_not_dir(self, comps: list[str], comp: str) -> Exception:
        return Refused(f"{'/'.join(comps)}: {comp}")

    def check_replace(self, comps, ti, existing_is_dir) -> None:
        if self.refuse_replace:
            raise Refused("replace " + "/".join(comps))

    def hardlink(self, ti, dfd, name, comps) -> None:
        target = ti.linkname.split("/")
        sfd = self.open_parent(target, create=False)
        try:
            os.link(target[-1], name, src_dir_fd=sfd, dst_dir_fd=dfd, follow_symlinks=False)
        finally:
            os.close(sfd)

    def extract(self, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for ti, data in members:
                ti.size = len(data) if data is not None else 0
                tf.addfile(ti, io.BytesIO(data) if data is not None else None)
        buf.seek(0)
        with self, tarfile.open(fileobj=buf, mode="r|") as tf:
            for ti in tf:
                self.place(tf, ti, ti.name.rstrip("/").split("/"))
            self.finish_dirs()


def _m(name: str, kind: bytes = tarfile.REGTYPE, data: bytes | None = None, mode: int = 0o644,
       linkname: str = "", mtime: int = 1_600_000_000, uid: int = 0, gid: int = 0,
       pax: dict[str, str] | None = None) -> tuple[tarfile.TarInfo, bytes | None]:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.linkname, ti.mtime, ti.uid, ti.gid = kind, mode, linkname, mtime, uid, gid
    ti.pax_headers = dict(pax or {})
    return ti, data if data is not None or kind != tarfile.REGTYPE else b""


@pytest.fixture
def root(tmp_path: Path):
    r = tmp_path / "root"
    r.mkdir()
    (tmp_path / "outside").mkdir()
    fd = os.open(r, os.O_RDONLY | os.O_DIRECTORY)
    yield r, fd
    os.close(fd)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_open_dir_at_refuses_symlinks_and_makes_missing(root) -> None:
    r, fd = root
    os.symlink(r.parent / "outside", r / "link")
    before = _open_fds()
    with pytest.raises(OSError) as ei:
        open_dir_at(fd, ["link", "x"])
    assert ei.value.errno in (errno.ELOOP, errno.ENOTDIR) and ei.value.filename == "link"
    with pytest.raises(FileNotFoundError):
        open_dir_at(fd, ["a", "b"])
    made = open_dir_at(fd, ["a", "b"], mkdir=lambda d, n: os.mkdir(n, 0o700, dir_fd=d))
    os.close(made)
    assert (r / "a" / "b").is_dir()
    assert _open_fds() == before


def test_members_never_land_outside(root) -> None:
    r, fd = root
    ex = _Plain(fd)
    before = _open_fds()
    with pytest.raises(Refused, match="evil/pwned: evil"):
        ex.extract([_m("evil", tarfile.SYMTYPE, linkname=str(r.parent / "outside")),
                    _m("evil/pwned", data=b"x")])
    assert os.listdir(r.parent / "outside") == []
    assert _open_fds() == before


def test_replacing_and_directory_metadata(root) -> None:
    r, fd = root
    (r / "f").write_text("old")
    (r / "d").mkdir()
    (r / "d" / "ro").mkdir()
    (r / "d" / "ro" / "x").write_text("x")
    os.chmod(r / "d" / "ro", 0o555)
    _Plain(fd).extract([
        _m("f", tarfile.DIRTYPE, mode=0o750, mtime=1_500_000_000),   # file -> directory
        _m("f/g", data=b"new", mode=0o4755, mtime=1_400_000_000),
        _m("d", data=b"file"),                                        # tree -> file
        _m("f/fifo", tarfile.FIFOTYPE, mode=0o640),
    ])
    assert (r / "f").is_dir() and stat.S_IMODE((r / "f").stat().st_mode) == 0o750
    assert (r / "f").stat().st_mtime == 1_500_000_000          # after its children
    assert (r / "f" / "g").read_bytes() == b"new"
    assert stat.S_IMODE((r / "f" / "g").stat().st_mode) == 0o4755
    assert (r / "d").read_bytes() == b"file"
    assert stat.S_IMODE((r / "f" / "fifo").lstat().st_mode) == 0o640


def test_check_replace_keeps_what_is_there(root) -> None:
    r, fd = root
    (r / "f").write_text("old")
    ex = _Plain(fd)
    ex.refuse_replace = True
    with pytest.raises(Refused, match="replace f"):
        ex.extract([_m("f", data=b"new")])
    assert (r / "f").read_text() == "old"


def test_directory_replaced_later_gets_no_metadata(root) -> None:
    r, fd = root
    outside = r.parent / "outside"
    st = outside.stat()
    _Plain(fd).extract([_m("a", tarfile.DIRTYPE, mode=0o701, mtime=1),
                        _m("a/b", tarfile.DIRTYPE, mode=0o701, mtime=1),
                        _m("a", tarfile.SYMTYPE, linkname=str(outside))])
    assert os.readlink(r / "a") == str(outside)
    assert (outside.stat().st_mode, outside.stat().st_mtime) == (st.st_mode, st.st_mtime)
    assert os.listdir(outside) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="chown and trusted.* xattrs need root")
def test_owner_override_and_overlay_xattrs(root) -> None:
    r, fd = root
    pax = {"SCHILY.xattr.trusted.overlay.opaque": "y", "SCHILY.xattr.user.k": "v"}
    members = [_m("p/f", data=b"x", uid=7, gid=8, mode=0o2755, pax=pax),
               _m("l", tarfile.SYMTYPE, linkname="p/f", uid=7, gid=8)]
    _Plain(fd, owner=(11, 12), new_parent_owner=(0, 0)).extract(members)
    st = (r / "p" / "f").stat()
    assert (st.st_uid, st.st_gid) == (11, 12) and stat.S_IMODE(st.st_mode) == 0o2755
    assert ((r / "l").lstat().st_uid, (r / "l").lstat().st_gid) == (11, 12)
    assert ((r / "p").stat().st_uid, (r / "p").stat().st_gid) == (0, 0)
    with pytest.raises(OSError):
        os.getxattr(r / "p" / "f", "trusted.overlay.opaque")
    (r / "l").unlink()
    _Plain(fd, overlay_xattrs=True).extract(members)
    assert os.getxattr(r / "p" / "f", "trusted.overlay.opaque") == b"y"
    assert ((r / "p" / "f").stat().st_uid, (r / "p" / "f").stat().st_gid) == (7, 8)
