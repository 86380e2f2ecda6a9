"""Chroot-like path resolution, Docker's path stat and safe extraction."""

from __future__ import annotations

import errno
import io
import os
import tarfile
from pathlib import Path

import pytest

from dockyard.engine.fs import paths
from dockyard.engine.fs.tar import BreakoutError, ExtractOptions, TarStreamer, extract
from dockyard.errors import InvalidParameter


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_text("root\n")
    (r / "tmp").mkdir()
    os.symlink("/etc", r / "tmp" / "abs")
    os.symlink("../../../../../../etc", r / "tmp" / "rel")
    os.symlink("loop", r / "tmp" / "loop")
    os.symlink("/etc/passwd", r / "tmp" / "pw")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("s")
    fd = os.open(r, os.O_RDONLY | os.O_DIRECTORY)
    yield r, fd
    os.close(fd)


def test_resolve_stays_in_root(root):
    _, fd = root
    assert paths.resolve(fd, "/tmp/abs/passwd", False) == ["etc", "passwd"]
    assert paths.resolve(fd, "/tmp/rel/passwd", False) == ["etc", "passwd"]
    assert paths.resolve(fd, "/../../../outside/secret", False) == ["outside", "secret"]
    assert paths.resolve(fd, "/tmp/pw", False) == ["tmp", "pw"]
    assert paths.resolve(fd, "/tmp/pw", True) == ["etc", "passwd"]
    with pytest.raises(OSError) as ei:
        paths.resolve(fd, "/tmp/loop/x", False)
    assert ei.value.errno == errno.ELOOP


def test_path_stat(root):
    _, fd = root
    st = paths.path_stat(fd, "/etc")
    assert st["name"] == "etc" and st["mode"] == (1 << 31) | 0o755 and st["linkTarget"] == ""
    st = paths.path_stat(fd, "tmp/pw")
    assert st["mode"] & (1 << 27) and st["linkTarget"] == "/etc/passwd"
    assert paths.path_stat(fd, "/tmp/abs/")["mode"] & (1 << 31)
    assert paths.path_stat(fd, "/etc/.")["name"] == "."
    assert paths.path_stat(fd, "/")["name"] == "/"
    with pytest.raises(FileNotFoundError):
        paths.path_stat(fd, "/tmp/rel/../../outside/secret")


def test_docker_path_helpers():
    assert paths.container_abs_path("etc/") == "/etc/"
    assert paths.container_abs_path("/etc/.") == "/etc/."
    assert paths.container_abs_path("../x") == "/x"
    assert paths.split_dir_entry("/etc/.") == ("/etc", ".")
    assert paths.split_dir_entry("/etc/passwd") == ("/etc", "passwd")
    assert paths.go_file_mode(0o41777) == (1 << 31) | (1 << 20) | 0o777
    assert paths.go_file_mode(0o20600) == (1 << 26) | (1 << 21) | 0o600


def _tar(*members: tuple[str, str, str]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, kind, arg in members:
            ti = tarfile.TarInfo(name)
            if kind == "f":
                ti.size = len(arg)
                tf.addfile(ti, io.BytesIO(arg.encode()))
            elif kind == "d":
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            else:
                ti.type = tarfile.SYMTYPE if kind == "s" else tarfile.LNKTYPE
                ti.linkname = arg
                tf.addfile(ti)
    buf.seek(0)
    return buf


def _outside_untouched(r: Path) -> None:
    assert sorted(os.listdir(r.parent / "outside")) == ["secret"]
    assert sorted(os.listdir(r.parent)) == ["outside", "root"]


@pytest.mark.parametrize("members", [
    [("../escape", "f", "x")],
    [("a/../../escape", "f", "x")],
    [("up", "s", "../../.."), ("up/p", "f", "x")],
    [("hl", "h", "../../outside/secret")],
])
def test_hostile_members_refused(root, members):
    r, fd = root
    with pytest.raises(InvalidParameter):
        extract(fd, ["tmp"], _tar(*members), ExtractOptions())
    _outside_untouched(r)


def test_symlinks_are_followed_inside_the_root(root):
    r, fd = root
    outside = str(r.parent / "outside")
    extract(fd, ["tmp"], _tar(("evil", "s", outside), ("evil/p", "f", "x"),
                              ("rel/p2", "f", "y"), ("./abs/p3", "f", "z")), ExtractOptions())
    _outside_untouched(r)
    assert (r / outside.lstrip("/") / "p").read_text() == "x"
    assert (r / "etc" / "p2").read_text() == "y"
    assert (r / "etc" / "p3").read_text() == "z"


def test_no_overwrite_dir_non_dir(root):
    _, fd = root
    with pytest.raises(InvalidParameter, match="cannot overwrite directory"):
        extract(fd, [], _tar(("etc", "f", "x")), ExtractOptions(no_overwrite_dir_non_dir=True))
    with pytest.raises(InvalidParameter, match="cannot overwrite non-directory"):
        extract(fd, ["etc"], _tar(("passwd", "d", "")),
                ExtractOptions(no_overwrite_dir_non_dir=True))
    extract(fd, ["etc"], _tar(("passwd", "f", "new")), ExtractOptions(no_overwrite_dir_non_dir=True))


def test_directory_replaces_non_directory(root):
    r, fd = root
    extract(fd, ["etc"], _tar(("passwd", "d", "")), ExtractOptions())
    assert (r / "etc" / "passwd").is_dir()


def test_breakout_error_is_invalid_parameter():
    assert issubclass(BreakoutError, InvalidParameter)


def test_streamer_round_trip(root):
    r, fd = root
    os.link(r / "etc" / "passwd", r / "etc" / "hard")
    data = b"".join(TarStreamer().dir_tree(fd, "", "/", include_self=False)) + b"\0" * 1024
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        m = {t.name: t for t in tf.getmembers()}
    assert m["etc"].isdir() and m["tmp/abs"].issym() and m["tmp/abs"].linkname == "/etc"
    # lexical order: the first name of an inode carries the data
    assert m["etc/hard"].isreg() and m["etc/hard"].size == 5
    assert m["etc/passwd"].islnk() and m["etc/passwd"].linkname == "etc/hard"
