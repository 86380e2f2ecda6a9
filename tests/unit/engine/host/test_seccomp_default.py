"""The daemon option `seccomp-profile`: builtin (Docker's, fetched by make
setup and checksummed), unconfined, or a file; what happens when Docker's
profile is missing or changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockyard.engine.host import seccomp as sel
from dockyard.errors import InvalidParameter

ALLOW_MKDIR_NOT = {"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}


@pytest.fixture
def docker_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Docker's profile and its recorded checksum in a directory of our own."""
    if not sel.DOCKER_PROFILE.exists():
        pytest.skip("Docker's profile is not fetched (make setup)")
    (tmp_path / "docker-default.json").write_bytes(sel.DOCKER_PROFILE.read_bytes())
    (tmp_path / "docker-default.json.sha256").write_bytes(sel.DOCKER_PROFILE_SUM.read_bytes())
    monkeypatch.setattr(sel, "DOCKER_PROFILE", tmp_path / "docker-default.json")
    monkeypatch.setattr(sel, "DOCKER_PROFILE_SUM", tmp_path / "docker-default.json.sha256")
    monkeypatch.setattr(sel, "DEBIAN_DOCKER_PROFILE", tmp_path / "absent.json")
    return tmp_path / "docker-default.json"


def test_builtin_is_dockers_profile(docker_copy: Path):
    for setting in (None, "", "builtin"):
        d = sel.select_seccomp(setting)
        assert d.name == "builtin" and not d.warnings
        assert d.profile == json.loads(docker_copy.read_text()) == d.builtin
        assert "sha256 verified" in d.origin


def test_unconfined_and_a_file(docker_copy: Path, tmp_path: Path):
    d = sel.select_seccomp("unconfined")
    assert d.name == "unconfined" and d.profile is None and d.builtin is not None
    f = tmp_path / "mine.json"
    f.write_text(json.dumps(ALLOW_MKDIR_NOT))
    d = sel.select_seccomp(str(f))
    assert d.name == str(f) and d.profile == ALLOW_MKDIR_NOT
    assert d.builtin == json.loads(docker_copy.read_text())


def test_a_bad_file_stops_the_start(docker_copy: Path, tmp_path: Path):
    with pytest.raises(InvalidParameter, match=r"opening seccomp profile \(/no/such\) failed: "
                                               "No such file or directory"):
        sel.select_seccomp("/no/such")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidParameter, match="decoding seccomp profile"):
        sel.select_seccomp(str(bad))
    bad.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["a"], "action": "x", "includes": {"minKernel": "5"}}]}))
    with pytest.raises(InvalidParameter, match="invalid kernel version"):
        sel.select_seccomp(str(bad))


def test_a_changed_profile_is_used_and_reported(docker_copy: Path):
    data = json.loads(docker_copy.read_text())
    data["syscalls"] = data["syscalls"][:-1]
    docker_copy.write_text(json.dumps(data))
    d = sel.select_seccomp(None)
    assert d.profile == data and "modified" in d.origin
    assert len(d.warnings) == 1 and "not the recorded" in d.warnings[0]


def test_missing_docker_profile_falls_back_loudly(docker_copy: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path):
    docker_copy.unlink()
    common = tmp_path / "common.json"
    common.write_text(json.dumps(ALLOW_MKDIR_NOT))
    monkeypatch.setattr(sel, "CONTAINERS_COMMON_PROFILE", common)
    d = sel.select_seccomp(None)
    assert d.name == "builtin" and d.profile == ALLOW_MKDIR_NOT
    assert "containers-common" in d.origin and "missing" in d.warnings[0]
    assert "make setup" in d.warnings[0]
    # with neither there is no silent unfiltered default
    common.unlink()
    with pytest.raises(InvalidParameter, match="no default seccomp profile"):
        sel.select_seccomp(None)
    assert sel.select_seccomp("unconfined").profile is None
