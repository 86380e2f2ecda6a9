""".dockerignore reading and matching (moby's ignorefile and patternmatcher rules)."""

from __future__ import annotations

import pytest

from dockyard.build.ignore import IgnoreMatcher, parse_ignore_file, read_patterns
from dockyard.errors import InvalidParameter


def test_read_patterns_trims_cleans_and_skips_comments():
    text = ("\ufeff# comment\n ignored-with-spaces \n\n\t\t\n!  keep/me  \n/abs/path\n"
            "a//b/../c\n #not a comment\n!\n")
    assert read_patterns(text) == ["ignored-with-spaces", "!keep/me", "abs/path", "a/c",
                                   "#not a comment", "!"]


def test_only_a_leading_hash_is_a_comment():
    assert read_patterns("#*\n  #x\n") == ["#x"]


CASES = [
    # (patterns, path, excluded)
    (["ignored"], "ignored", True),
    (["ignored"], "ignored/subdir/file", True),
    (["ignored", "!ignored/subdir/keep"], "ignored/subdir/keep", False),
    (["ignored", "!ignored/subdir/keep"], "ignored/subdir/other", True),
    (["*.go"], "main.go", True),
    (["*.go"], "dir/main.go", False),
    (["**/*.go"], "dir/sub/main.go", True),
    (["**/*.go"], "main.go", True),
    (["**"], "anything/at/all", True),
    (["dir/**"], "dir/x/y", True),
    (["dir/**"], "dirx", False),
    (["**/node_modules"], "a/b/node_modules/x", True),
    (["a/**/b"], "a/b", True),
    (["a/**/b"], "a/x/y/b", True),
    (["a/**/b"], "a/x/y/c", False),
    (["?"], "a", True),
    (["?"], "ab", False),
    (["[a-c]x"], "bx", True),
    (["[a-c]x"], "dx", False),
    (["*", "!keep"], "keep", False),
    (["*", "!keep"], "drop", True),
    (["!keep", "*"], "keep", True),
    (["a.b"], "axb", False),
    (["a+b"], "a+b", True),
    (["file\\*"], "file*", True),
    (["file\\*"], "filex", False),
    (["Dockerfile"], "Dockerfile", True),
    ([".dockerignore"], ".dockerignore", True),
    (["docs"], "docs2", False),
]


@pytest.mark.parametrize(("patterns", "path", "excluded"), CASES)
def test_matching(patterns, path, excluded):
    assert IgnoreMatcher(patterns).excludes(path) is excluded


def test_root_and_empty_never_excluded():
    m = IgnoreMatcher(["*"])
    assert not m.excludes(".")
    assert not m.excludes("")
    assert not IgnoreMatcher([])


def test_bad_patterns_are_refused():
    with pytest.raises(InvalidParameter, match='illegal exclusion pattern: "!"'):
        IgnoreMatcher(["!"])
    with pytest.raises(InvalidParameter, match="syntax error in pattern"):
        IgnoreMatcher(["[a-"])


def test_parse_ignore_file_names_the_file():
    with pytest.raises(InvalidParameter) as e:
        parse_ignore_file("ok\n[\n")
    assert e.value.message == "error reading .dockerignore: syntax error in pattern"
    assert parse_ignore_file("a\n!a/b\n").excludes("a/c")
