"""The v2 lane's daemon uses Docker's default seccomp profile too (the
checkout's fetched copy, shared into the VM), not a fallback."""

from __future__ import annotations


def test_dockers_profile_is_the_default(info, docker):
    assert "name=seccomp,profile=builtin" in info["SecurityOptions"]
    # a missing or changed profile would be named in the warnings
    assert not [w for w in info["Warnings"] if "seccomp" in w], info["Warnings"]
    res = docker.run("run", "--rm", "busybox", "unshare", "-U", "true")
    assert res.returncode != 0 and "Operation not permitted" in res.stderr
    out = docker.out("run", "--rm", "--cap-add", "SYS_ADMIN", "busybox", "sh", "-c",
                     "unshare -m true && echo allowed")
    assert out == "allowed\n"
