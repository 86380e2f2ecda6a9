"""Reference parsing and normalisation, checked against Docker's behaviour."""

from __future__ import annotations

import pytest

from dockyard.errors import InvalidParameter
from dockyard.images.reference import familiar_match, parse_any, parse_normalized_named

D64 = "sha256:" + "a" * 64


@pytest.mark.parametrize("given,full,familiar", [
    ("busybox", "docker.io/library/busybox", "busybox"),
    ("busybox:latest", "docker.io/library/busybox:latest", "busybox:latest"),
    ("user/repo", "docker.io/user/repo", "user/repo"),
    ("docker.io/library/busybox:1", "docker.io/library/busybox:1", "busybox:1"),
    ("index.docker.io/foo", "docker.io/library/foo", "foo"),
    ("localhost/x", "localhost/x", "localhost/x"),
    ("localhost:5000/x:tag", "localhost:5000/x:tag", "localhost:5000/x:tag"),
    (f"host:5000/a/b@{D64}", f"host:5000/a/b@{D64}", f"host:5000/a/b@{D64}"),
    (f"a/b:t@{D64}", f"docker.io/a/b:t@{D64}", f"a/b:t@{D64}"),
    ("Example.com/x", "Example.com/x", "Example.com/x"),
    ("a__b/c-d.e", "docker.io/a__b/c-d.e", "a__b/c-d.e"),
    ("[::1]:5000/x", "[::1]:5000/x", "[::1]:5000/x"),
])
def test_normalise(given: str, full: str, familiar: str) -> None:
    ref = parse_normalized_named(given)
    assert str(ref) == full
    assert ref.familiar() == familiar


@pytest.mark.parametrize("given,message", [
    ("Busybox", "invalid reference format: repository name (library/Busybox) must be lowercase"),
    ("user/Repo:1", "invalid reference format: repository name (user/Repo) must be lowercase"),
    ("a:b:c", "invalid reference format"),
    ("", "invalid reference format"),
    ("-x", "invalid reference format"),
    ("x::y", "invalid reference format"),
    ("a/b/", "invalid reference format"),
    ("x:" + "t" * 129, "invalid reference format"),
    ("a" * 64, f"invalid repository name ({'a' * 64}), cannot specify 64-byte hexadecimal strings"),
])
def test_invalid(given: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as e:
        parse_normalized_named(given)
    assert e.value.message == message


def test_default_tag_and_ids() -> None:
    assert parse_normalized_named("busybox").with_default_tag().familiar() == "busybox:latest"
    assert parse_any("a" * 64) == "sha256:" + "a" * 64
    assert parse_any(D64) == D64
    assert parse_any("abc123").familiar() == "abc123"   # a short hex is a name first


def test_familiar_match_uses_path_semantics() -> None:
    ref = parse_normalized_named("foo/bar:1")
    assert familiar_match("foo/*", ref)
    assert familiar_match("foo/bar", ref)
    assert familiar_match("*/bar:1", ref)
    assert not familiar_match("*", ref)            # "*" does not cross "/"
    assert familiar_match("busy*", parse_normalized_named("busybox:latest"))
