"""`docker top`: the container's processes, found through its v2 group's
cgroup.procs."""

from __future__ import annotations

import pytest
from v2util import api, run_detached

pytestmark = pytest.mark.needs("top")


def test_top_lists_group_processes(docker, name):
    run_detached(docker, name, cmd=("sh", "-c", "sleep 601 & sleep 602 & wait"))
    out = docker.out("top", name)
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["UID", "PID"], out
    cmds = " ".join(lines[1:])
    assert "sleep 601" in cmds and "sleep 602" in cmds, out
    assert len(lines) == 4, out


def test_top_ps_args_and_pids(docker, name):
    run_detached(docker, name)
    pid = docker.inspect(name)["State"]["Pid"]
    status, body = api("GET", f"/containers/{name}/top?ps_args=-o%20pid,comm")
    assert status == 200, body
    assert body["Titles"] == ["PID", "COMMAND"]
    assert body["Processes"] == [[str(pid), "sleep"]]
