"""The context tree: hostile names, in-scope symlinks, COPY sources and checksums."""

from __future__ import annotations

import hashlib

import pytest

from dockyard.build import context as ctx
from dockyard.build.ignore import IgnoreMatcher
from dockyard.errors import InvalidParameter

DATA = {"a.txt": b"alpha", "dir/b.txt": b"beta", "dir/sub/c.txt": b"gamma", "x.md": b"md"}


def digest(e: ctx.Entry) -> str:
    return hashlib.sha256(DATA[e.path].encode() if isinstance(DATA[e.path], str)
                          else DATA[e.path]).hexdigest()


def tree(extra: list[ctx.Entry] | None = None) -> ctx.ContextTree:
    t = ctx.ContextTree()
    for path, data in DATA.items():
        t.add(ctx.Entry(path, ctx.FILE, 0o644, size=len(data)))
    for e in extra or []:
        t.add(e)
    return t


@pytest.mark.parametrize(("name", "want"), [
    ("a", "a"), ("./a/b/", "a/b"), ("/etc/passwd", "etc/passwd"), ("a/../b", "b"),
    (".", ""), ("./", ""), ("/", ""), ("/../x", "x"),
])
def test_member_names(name, want):
    assert ctx.clean_member_name(name) == want


@pytest.mark.parametrize("name", ["../x", "a/../../x", ".."])
def test_escaping_member_names_are_refused(name):
    with pytest.raises(ctx.ContextError, match="outside of the build context"):
        ctx.clean_member_name(name)


def test_escaping_relative_symlinks_are_refused_absolute_ones_kept():
    t = ctx.ContextTree()
    with pytest.raises(ctx.ContextError, match="invalid symlink"):
        t.add(ctx.Entry("d/evil", ctx.SYMLINK, linkname="../../etc"))
    t.add(ctx.Entry("d/abs", ctx.SYMLINK, linkname="/etc"))
    t.add(ctx.Entry("d/ok", ctx.SYMLINK, linkname="../a.txt"))


def test_implicit_parents_and_replacement():
    t = tree()
    assert t.lookup("dir").implicit and t.lookup("dir").kind == ctx.DIR
    t.add(ctx.Entry("dir", ctx.DIR, 0o700, uid=5))
    d = t.lookup("dir")
    assert not d.implicit and d.mode == 0o700 and "b.txt" in d.children
    t.add(ctx.Entry("a.txt", ctx.SYMLINK, linkname="dir/b.txt"))
    assert t.lookup("a.txt").kind == ctx.SYMLINK
    t.remove("dir/sub")
    assert t.lookup("dir/sub/c.txt") is None


def test_resolve_stays_inside():
    t = tree([ctx.Entry("up", ctx.SYMLINK, linkname="/"),
              ctx.Entry("abs", ctx.SYMLINK, linkname="/dir/sub"),
              ctx.Entry("dir/back", ctx.SYMLINK, linkname="../a.txt"),
              ctx.Entry("loop", ctx.SYMLINK, linkname="loop")])
    assert t.resolve("abs/c.txt") == "dir/sub/c.txt"
    assert t.resolve("up/up/up/a.txt") == "a.txt"
    assert t.resolve("dir/back") == "a.txt"
    assert t.resolve("dir/../../a.txt") == "a.txt"
    with pytest.raises(InvalidParameter, match="too many links"):
        t.resolve("loop")


def test_ignore_keeps_parents_of_exceptions():
    t = tree()
    t.apply_ignore(IgnoreMatcher(["dir", "!dir/sub/c.txt", "*.md"]))
    assert t.lookup("x.md") is None
    assert t.lookup("dir/b.txt") is None
    assert t.lookup("dir/sub/c.txt") is not None
    assert t.lookup("dir").implicit


def test_sources_single_dir_and_wildcards():
    t = tree()
    one = ctx.sources(t, ["a.txt"], "COPY", digest)
    assert [s.path for s in one] == ["a.txt"] and one[0].hash.startswith("file:")
    d = ctx.sources(t, ["./dir/"], "COPY", digest)
    assert d[0].entry.kind == ctx.DIR and d[0].hash.startswith("dir:")
    many = ctx.sources(t, ["*.txt", "dir/*"], "COPY", digest)
    assert [s.path for s in many] == ["a.txt", "dir/b.txt", "dir/sub"]
    assert ctx.sources_hash(many).startswith("multi:")
    assert ctx.sources_hash(one) == one[0].hash
    root = ctx.sources(t, ["."], "COPY", digest)
    assert root[0].entry is t.root


def test_checksums_follow_content_and_mode_not_mtime():
    t1, t2 = tree(), tree()
    h1 = ctx.sources(t1, ["dir"], "COPY", digest)[0].hash
    t2.lookup("dir/b.txt").mtime = 12345
    assert ctx.sources(t2, ["dir"], "COPY", digest)[0].hash == h1
    t2.lookup("dir/b.txt").mode = 0o600
    assert ctx.sources(t2, ["dir"], "COPY", digest)[0].hash != h1
    DATA["dir/b.txt"] = b"changed"
    try:
        assert ctx.sources(tree(), ["dir"], "COPY", digest)[0].hash != h1
    finally:
        DATA["dir/b.txt"] = b"beta"


def test_source_errors_are_dockers():
    t = tree()
    with pytest.raises(InvalidParameter) as e:
        ctx.sources(t, ["missing"], "COPY", digest)
    assert e.value.message == ("COPY failed: file not found in build context or excluded by "
                               ".dockerignore: stat missing: file does not exist")
    with pytest.raises(InvalidParameter) as e:
        ctx.sources(t, ["../outside"], "ADD", digest)
    assert e.value.message == ("ADD failed: forbidden path outside the build context: "
                               "../outside ()")
    with pytest.raises(InvalidParameter) as e:
        ctx.sources(t, ["nomatch*"], "COPY", digest)
    assert e.value.message == "COPY failed: no source files were specified"
    with pytest.raises(InvalidParameter) as e:
        ctx.sources(t, ["gone"], "COPY", digest, from_image=True)
    assert e.value.message == "COPY failed: stat gone: file does not exist"


def test_walk_order_and_no_symlink_descent():
    t = tree([ctx.Entry("dir/link", ctx.SYMLINK, linkname="/")])
    paths = [e.path for e in t.walk(t.lookup("dir"))]
    assert paths == ["dir", "dir/b.txt", "dir/link", "dir/sub", "dir/sub/c.txt"]
