"""util/fstree: walks and removal of trees deeper than PATH_MAX and the
recursion limit, never following symlinks nor leaving the tree."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.util.fstree import (
    DIR,
    LEAF,
    MOUNT,
    POST,
    DirCursor,
    TreeChanged,
    TreeWalk,
    clear_dir,
    open_regular,
    remove_tree,
    tree_size,
)

NAME = "d" * 40


def make_chain(top: Path, depth: int, name: str = NAME, leaf: bytes = b"leaf") -> None:
    """top/name/name/... `depth` levels, a file `f` at the bottom, built
    through fds since the path is far longer than PATH_MAX."""
    top.mkdir(parents=True, exist_ok=True)
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        wfd = os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(wfd, leaf)
        os.close(wfd)
    finally:
        os.close(fd)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_deep_chain_is_walked_removed_and_measured(deep_tmp: Path) -> None:
    depth = 3 * sys.getrecursionlimit()          # ~120k characters of path
    make_chain(deep_tmp / "t", depth, leaf=b"x" * 1000)
    assert tree_size(deep_tmp / "t") == 1000
    fd = os.open(deep_tmp / "t", os.O_RDONLY)
    before = open_fds()
    kinds = {DIR: 0, POST: 0, LEAF: 0}
    deepest = 0
    try:
        for e in TreeWalk(fd):
            kinds[e.kind] += 1
            deepest = max(deepest, e.depth)
            assert open_fds() <= before + 3       # one cursor, whatever the depth
    finally:
        os.close(fd)
    assert kinds == {DIR: depth, POST: depth, LEAF: 1}
    assert deepest == depth + 1
    remove_tree(deep_tmp / "t")
    assert not (deep_tmp / "t").exists()


def test_walk_order_and_paths(deep_tmp: Path) -> None:
    for p in ("b/y", "a/x/z", "c"):
        (deep_tmp / p).parent.mkdir(parents=True, exist_ok=True)
        (deep_tmp / p).write_text(p)
    fd = os.open(deep_tmp, os.O_RDONLY)
    seen = []
    try:
        walk = TreeWalk(fd, sort=True)
        for e in walk:
            path = "/".join(walk.path) if e.kind == DIR else walk.path_of(e.name)
            seen.append((e.kind, path))
    finally:
        os.close(fd)
    assert seen == [(DIR, "a"), (DIR, "a/x"), (LEAF, "a/x/z"), (POST, "a/x"), (POST, "a"),
                    (DIR, "b"), (LEAF, "b/y"), (POST, "b"), (LEAF, "c")]


def test_prune_skips_a_directory(deep_tmp: Path) -> None:
    make_chain(deep_tmp / "skip", 5)
    (deep_tmp / "keep").write_text("k")
    fd = os.open(deep_tmp, os.O_RDONLY)
    names = []
    try:
        walk = TreeWalk(fd)
        for e in walk:
            names.append((e.kind, e.name))
            if e.kind == DIR and e.name == "skip":
                walk.prune()
    finally:
        os.close(fd)
    assert sorted(names) == [(DIR, "skip"), (LEAF, "keep"), (POST, "skip")]


def test_removal_never_follows_symlinks(deep_tmp: Path) -> None:
    outside = deep_tmp / "outside"
    make_chain(outside, 3)
    t = deep_tmp / "t"
    t.mkdir()
    (t / "abs").symlink_to(outside)
    (t / "rel").symlink_to("../outside")
    (t / "sub").mkdir()
    (t / "sub" / "link").symlink_to(outside / NAME)
    remove_tree(t)
    assert not t.exists()
    assert tree_size(outside) == 4


def test_removal_of_read_only_directories(deep_tmp: Path) -> None:
    t = deep_tmp / "t"
    make_chain(t, 4)
    (t / NAME / "f2").write_text("x")
    for d in (t / NAME, t / NAME / NAME):
        d.chmod(0o555)
    (t / NAME / NAME / NAME).chmod(0)
    remove_tree(t)
    assert not t.exists()


def test_remove_file_and_missing(deep_tmp: Path) -> None:
    (deep_tmp / "f").write_text("x")
    remove_tree(deep_tmp / "f")
    remove_tree(deep_tmp / "nope")
    remove_tree(deep_tmp / "nope" / "deeper")
    assert list(deep_tmp.iterdir()) == []
    with pytest.raises(ValueError):
        remove_tree("/")


def test_clear_dir_keeps_the_directory(deep_tmp: Path) -> None:
    make_chain(deep_tmp / "a", 50)
    (deep_tmp / "b").write_text("x")
    assert clear_dir(deep_tmp) == []
    assert deep_tmp.is_dir() and list(deep_tmp.iterdir()) == []


def test_moved_directory_is_noticed_not_followed(deep_tmp: Path) -> None:
    """A directory moved out of the tree while it is walked: going back up
    never lands outside the tree."""
    root = deep_tmp / "root"
    make_chain(root / "a", 3)
    (root / "z").write_text("z")
    away = deep_tmp / "away"
    away.mkdir()
    (away / "secret").write_text("s")
    fd = os.open(root, os.O_RDONLY)
    seen = []
    try:
        walk = TreeWalk(fd, sort=True)
        for e in walk:
            seen.append(walk.path_of(e.name) if e.kind != DIR else "/".join(walk.path))
            if e.kind == DIR and walk.path == ["a", NAME, NAME]:
                # the walker sits in a/N/N: move a/N (its parent) out of the tree
                os.rename(root / "a" / NAME, away / "moved")
    finally:
        os.close(fd)
    assert "z" in seen                     # the walk went on from a/, reopened by name
    assert not any("secret" in s for s in seen)


def test_cursor_goes_up_only_to_the_directory_it_came_from(deep_tmp: Path) -> None:
    t = deep_tmp / "t"
    make_chain(t, 3)
    fd = os.open(t, os.O_RDONLY)
    try:
        with DirCursor(fd) as cur:
            cur.down(NAME)
            parent = os.fstat(cur.fd)
            cur.down(NAME)
            # the current directory moves out: ".." is another directory now,
            # so the parent is found again from the root by name
            os.rename(t / NAME / NAME, deep_tmp / "moved")
            cur.up()
            assert (os.fstat(cur.fd).st_ino, cur.names) == (parent.st_ino, [NAME])
        with DirCursor(fd) as cur:
            os.rename(deep_tmp / "moved", t / NAME / NAME)
            cur.down(NAME)
            cur.down(NAME)
            # ... and when that name is another directory too, the walk stops
            os.rename(t / NAME / NAME, deep_tmp / "moved2")
            os.rename(t / NAME, deep_tmp / "old")
            (t / NAME).mkdir()
            with pytest.raises(TreeChanged):
                cur.up()
    finally:
        os.close(fd)


def test_open_regular_never_opens_devices_or_fifos(deep_tmp: Path) -> None:
    (deep_tmp / "file").write_bytes(b"data")
    os.mkfifo(deep_tmp / "fifo")
    (deep_tmp / "link").symlink_to("file")
    fd = os.open(deep_tmp, os.O_RDONLY)
    try:
        st = os.stat(deep_tmp / "file")
        rfd = open_regular(fd, "file", st)
        assert rfd is not None
        assert os.read(rfd, 10) == b"data"
        os.close(rfd)
        assert open_regular(fd, "fifo") is None      # would block if opened
        assert open_regular(fd, "link") is None
        assert open_regular(fd, "missing") is None
        (deep_tmp / "file").rename(deep_tmp / "kept")
        (deep_tmp / "file").write_bytes(b"other")
        assert open_regular(fd, "file", st) is None  # not the file that was seen
    finally:
        os.close(fd)


root_only = pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")


@root_only
def test_removal_does_not_enter_a_mount_unless_told(deep_tmp: Path) -> None:
    t = deep_tmp / "t"
    mnt = t / "sub" / "mnt"
    mnt.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(mnt)], check=True)
    try:
        (mnt / "precious").write_text("p")
        (t / "other").write_text("o")
        with pytest.raises(OSError) as err:
            remove_tree(t)
        assert err.value.errno == errno.EBUSY
        assert (mnt / "precious").read_text() == "p"
        assert not (t / "other").exists()
        fd = os.open(t, os.O_RDONLY)
        try:
            kinds = [(e.kind, e.name) for e in TreeWalk(fd)]
        finally:
            os.close(fd)
        assert (MOUNT, "mnt") in kinds
        remove_tree(t, unmount=True)
        assert not t.exists()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@root_only
def test_bind_mount_of_the_same_filesystem_is_a_mount(deep_tmp: Path) -> None:
    src = deep_tmp / "src"
    src.mkdir()
    (src / "keep").write_text("k")
    t = deep_tmp / "t"
    (t / "bind").mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(src), str(t / "bind")], check=True)
    try:
        with pytest.raises(OSError):
            remove_tree(t)
        assert (src / "keep").exists()
    finally:
        subprocess.run(["umount", "-l", str(t / "bind")], capture_output=True)
