"""Diff, commit layers, export tars and cp path resolution on trees deeper
than PATH_MAX and the recursion limit."""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
from pathlib import Path

import pytest

from dockyard.engine.fs.commit import commit_tar
from dockyard.engine.fs.diff import Skips, compute_changes
from dockyard.engine.fs.paths import resolve
from dockyard.engine.fs.tar import END_OF_ARCHIVE, TarStreamer
from dockyard.images.layers import apply_layer_tar
from dockyard.util.fstree import TreeChanged, tree_size

NAME = "n" * 4
DEPTH = sys.getrecursionlimit() + 500           # ~7.5k characters of path


def chain(top: Path, depth: int, leaf: bytes = b"x") -> None:
    top.mkdir(parents=True, exist_ok=True)
    fd = os.open(top, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir(NAME, dir_fd=fd)
            nfd = os.open(NAME, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        wfd = os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd)
        os.write(wfd, leaf)
        os.close(wfd)
    finally:
        os.close(fd)


def read_at_depth(top: Path, depth: int, name: str) -> bytes:
    fd = os.open(top, os.O_RDONLY)
    try:
        for _ in range(depth):
            nfd = os.open(NAME, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        rfd = os.open(name, os.O_RDONLY, dir_fd=fd)
        try:
            return os.read(rfd, 1 << 20)
        finally:
            os.close(rfd)
    finally:
        os.close(fd)


def test_diff_of_a_deep_new_tree(deep_tmp: Path) -> None:
    lower, upper = deep_tmp / "lower", deep_tmp / "upper"
    lower.mkdir()
    chain(upper / "deep", DEPTH)
    changes = compute_changes(upper, [str(lower)], Skips.of([]))
    assert len(changes) == DEPTH + 2
    assert changes[0] == {"Path": "/deep", "Kind": 1}
    assert changes[-1]["Path"] == "/deep/" + "/".join([NAME] * DEPTH) + "/leaf"
    assert all(c["Kind"] == 1 for c in changes)


def test_diff_inside_a_deep_image_tree(deep_tmp: Path) -> None:
    """A file changed at the bottom of an image's deep tree: every directory
    above it is reported modified, found through the layer by fd."""
    lower, upper = deep_tmp / "lower", deep_tmp / "upper"
    chain(lower, DEPTH, b"old")
    chain(upper, DEPTH, b"new!")
    for root in (lower, upper):             # same directory metadata on both sides
        fd = os.open(root, os.O_RDONLY)
        try:
            for _ in range(DEPTH):
                os.utime(NAME, (1, 1), dir_fd=fd)
                nfd = os.open(NAME, os.O_RDONLY, dir_fd=fd)
                os.close(fd)
                fd = nfd
        finally:
            os.close(fd)
    changes = compute_changes(upper, [str(lower)], Skips.of([]))
    assert len(changes) == DEPTH + 1
    assert all(c["Kind"] == 0 for c in changes)
    assert changes[-1]["Path"].endswith("/leaf")


def test_commit_layer_of_a_deep_tree_round_trips(deep_tmp: Path) -> None:
    lower, upper = deep_tmp / "lower", deep_tmp / "upper"
    lower.mkdir()
    data = os.urandom(3000)
    chain(upper / "deep", DEPTH, data)
    tar_path = deep_tmp / "layer.tar"
    with open(tar_path, "wb") as f:
        f.writelines(commit_tar(upper, [str(lower)], Skips.of([])))
    with tarfile.open(tar_path) as tf:
        names = tf.getnames()
    assert len(names) == DEPTH + 2
    out = deep_tmp / "out"
    out.mkdir()
    result = apply_layer_tar(tar_path, out)
    assert result.size == len(data)
    got = read_at_depth(out / "deep", DEPTH, "leaf")
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
    assert tree_size(out) == len(data)


def test_export_stream_of_a_deep_tree(deep_tmp: Path) -> None:
    root = deep_tmp / "root"
    chain(root / "a", DEPTH, b"payload")
    (root / "z").write_text("after the deep part")
    fd = os.open(root, os.O_RDONLY)
    before = len(os.listdir("/proc/self/fd"))
    try:
        buf = io.BytesIO()
        for chunk in TarStreamer().dir_tree(fd, "", "/", include_self=False):
            buf.write(chunk)
            assert len(os.listdir("/proc/self/fd")) <= before + 4
        buf.write(END_OF_ARCHIVE)
    finally:
        os.close(fd)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tf:
        members = tf.getmembers()
        leaf = next(m for m in members if m.name.endswith("/leaf"))
        assert tf.extractfile(leaf).read() == b"payload"    # type: ignore[union-attr]
    assert len(members) == DEPTH + 3
    assert members[-1].name == "z"


def test_resolve_a_deep_path_with_symlinks(deep_tmp: Path) -> None:
    root = deep_tmp / "root"
    chain(root, DEPTH)
    fd = os.open(root, os.O_RDONLY)
    try:
        deep = "/" + "/".join([NAME] * DEPTH)
        assert resolve(fd, deep + "/leaf", True) == [NAME] * DEPTH + ["leaf"]
        # a symlink at the bottom, back to the top
        dfd = os.open(root, os.O_RDONLY)
        for _ in range(DEPTH):
            nfd = os.open(NAME, os.O_RDONLY, dir_fd=dfd)
            os.close(dfd)
            dfd = nfd
        os.symlink("/" + NAME, "up", dir_fd=dfd)
        os.symlink("../" * 1000 + "x", "rel", dir_fd=dfd)
        os.close(dfd)
        assert resolve(fd, deep + "/up/x", True) == [NAME, "x"]
        assert resolve(fd, deep + "/rel", True) == [NAME] * (DEPTH - 1000) + ["x"]
        os.symlink("../" * 5 + "escape", "rel", dir_fd=fd)
        assert resolve(fd, "/rel", True) == ["escape"]          # ".." stops at the root
    finally:
        os.close(fd)


def _rearranging_tree(root: Path) -> None:
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "a" / "b" / "c" / "f").write_text("x")
    (root / "z").write_text("z")


def _rearrange(root: Path) -> None:
    """What a running container may do while it is archived: the directory
    being walked moves away and the one above it is replaced."""
    os.rename(root / "a" / "b" / "c", root / "moved")
    os.rename(root / "a", root / "old")
    (root / "a").mkdir()


def test_tree_rearranged_under_an_export_ends_it_validly(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _rearranging_tree(root)
    fd = os.open(root, os.O_RDONLY)
    buf = io.BytesIO()
    try:
        for chunk in TarStreamer().dir_tree(fd, "", "/", include_self=False):
            buf.write(chunk)
            if b"a/b/c/f" in chunk:
                _rearrange(root)
        buf.write(END_OF_ARCHIVE)
    finally:
        os.close(fd)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tf:
        names = tf.getnames()
    assert names[:4] == ["a", "a/b", "a/b/c", "a/b/c/f"]
    assert not any(n.startswith(("moved", "old")) for n in names)


def test_tree_rearranged_under_a_commit_fails_it(tmp_path: Path) -> None:
    upper, lower = tmp_path / "upper", tmp_path / "lower"
    lower.mkdir()
    _rearranging_tree(upper)
    with pytest.raises(TreeChanged):
        for chunk in commit_tar(upper, [str(lower)], Skips.of([])):
            if b"a/b/c/f" in chunk:
                _rearrange(upper)
