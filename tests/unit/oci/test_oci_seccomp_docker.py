"""Docker's default seccomp profile through the translation: what it allows
with and without CAP_SYS_ADMIN, and ENOSYS for syscalls newer than a profile."""

from __future__ import annotations

import json

import pytest
from oci_testutil import SAMPLE_PROFILE

from dockyard.engine.host.seccomp import DOCKER_PROFILE
from dockyard.oci.caps import DEFAULT_CAPS
from dockyard.oci.seccomp import ENOSYS, NEWER_SYSCALLS, build_seccomp, syscalls_newer_than


def docker_profile() -> dict:
    if not DOCKER_PROFILE.exists():
        pytest.skip("Docker's profile is not fetched (make setup)")
    return json.loads(DOCKER_PROFILE.read_text())


def allowed(sc: dict) -> set[str]:
    """Syscalls some rule allows without conditions on their arguments."""
    return {n for r in sc["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args")
            for n in r["names"]}


def rules_for(sc: dict, name: str) -> list[dict]:
    return [r for r in sc["syscalls"] if name in r["names"]]


def test_newer_syscalls_than_the_profile_get_enosys():
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read", "openat2"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["faccessat2"], "action": "SCMP_ACT_ALLOW",
         "includes": {"caps": ["CAP_SYS_ADMIN"]}}]}
    after = list(NEWER_SYSCALLS[NEWER_SYSCALLS.index("faccessat2") + 1:])
    assert syscalls_newer_than(profile) == after
    sc = build_seccomp(profile, DEFAULT_CAPS)
    assert sc["syscalls"][-1] == {"names": after, "action": "SCMP_ACT_ERRNO",
                                  "errnoRet": ENOSYS}
    # a syscall the profile names (even in a rule this container does not get)
    # is the profile's business, not answered with ENOSYS
    assert "faccessat2" not in sc["syscalls"][-1]["names"]
    # a profile that allows by default refuses nothing new
    allow = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    assert build_seccomp(allow, DEFAULT_CAPS)["syscalls"] == [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
    # a profile naming none of them: every one (runc does the same)
    assert build_seccomp(SAMPLE_PROFILE, DEFAULT_CAPS)["syscalls"][-1]["names"] == \
        list(NEWER_SYSCALLS)


def test_docker_profile_without_sys_admin():
    sc = build_seccomp(docker_profile(), DEFAULT_CAPS, "amd64", "6.18.0")
    assert sc["defaultAction"] == "SCMP_ACT_ERRNO" and "defaultErrnoRet" not in sc
    ok = allowed(sc)
    for name in ("unshare", "setns", "mount", "umount2", "clone3", "bpf", "pivot_root"):
        assert name not in ok, name
    # clone only without namespace flags; clone3 answers ENOSYS (glibc falls back)
    clone = rules_for(sc, "clone")
    assert len(clone) == 1 and clone[0]["args"][0]["op"] == "SCMP_CMP_MASKED_EQ"
    assert rules_for(sc, "clone3") == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO",
                                        "errnoRet": ENOSYS}]
    newer = sc["syscalls"][-1]
    assert newer["errnoRet"] == ENOSYS
    assert newer["names"][0] == "set_mempolicy_home_node"   # the first after futex_waitv
    assert {"cachestat", "fchmodat2", "mseal"} <= set(newer["names"])


def test_docker_profile_with_sys_admin():
    sc = build_seccomp(docker_profile(), [*DEFAULT_CAPS, "CAP_SYS_ADMIN"], "amd64", "6.18.0")
    ok = allowed(sc)
    for name in ("unshare", "setns", "mount", "umount2", "clone", "clone3"):
        assert name in ok, name
    assert not [r for r in rules_for(sc, "clone3") if r["action"] != "SCMP_ACT_ALLOW"]


def test_docker_profile_follows_the_architecture():
    sc = build_seccomp(docker_profile(), DEFAULT_CAPS, "arm64", "6.18.0")
    assert sc["architectures"][0] == "SCMP_ARCH_AARCH64"
    assert "arch_prctl" not in allowed(sc)
