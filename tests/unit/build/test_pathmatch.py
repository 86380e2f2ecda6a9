"""Go's filepath.Clean and filepath.Match, as COPY's wildcards use them."""

from __future__ import annotations

import pytest

from dockyard.build.pathmatch import BadPattern, clean, has_wildcards, match


@pytest.mark.parametrize(("path", "want"), [
    ("", "."), (".", "."), ("a/b/", "a/b"), ("//a//b", "/a/b"), ("/../a", "/a"),
    ("../a", "../a"), ("a/../..", ".."), ("a/./b/../c", "a/c"), ("/", "/"), ("a/..", "."),
])
def test_clean(path, want):
    assert clean(path) == want


MATCHES = [
    ("abc", "abc", True), ("*", "abc", True), ("*c", "abc", True), ("a*", "a", True),
    ("a*", "abc", True), ("a*", "ab/c", False), ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False), ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True), ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False), ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False), ("ab[c]", "abc", True), ("ab[b-d]", "abc", True),
    ("ab[e-g]", "abc", False), ("ab[^c]", "abc", False), ("ab[^b-d]", "abc", False),
    ("ab[^e-g]", "abc", True), ("a\\*b", "a*b", True), ("a\\*b", "ab", False),
    ("a?b", "a☺b", True), ("a[^a]b", "a☺b", True), ("a???b", "a☺b", False),
    ("*x", "xxx", True), ("a?", "a/", False), ("file*.txt", "file1.txt", True),
]


@pytest.mark.parametrize(("pattern", "name", "want"), MATCHES)
def test_match(pattern, name, want):
    assert match(pattern, name) is want


@pytest.mark.parametrize("pattern", ["[", "[^", "[^bc", "a[", "ab\\", "[a-", "[x-]",
                                     "[-x]", "a[]"])
def test_bad_patterns(pattern):
    with pytest.raises(BadPattern):
        match(pattern, "a")


def test_a_bad_pattern_after_a_mismatch_is_still_found():
    with pytest.raises(BadPattern):
        match("x*[", "abc")


def test_has_wildcards():
    assert has_wildcards("*.txt") and has_wildcards("a?") and has_wildcards("[ab]")
    assert not has_wildcards("plain/path")
    assert not has_wildcards("escaped\\*star")
