"""Issue 3: lifecycle, names, list/inspect, wait, kill, rename, prune, bad input."""

from __future__ import annotations

import json
import time

import docker
import pytest

LOOP = 'trap "exit 0" TERM; while :; do sleep 0.1; done'


def test_names_and_conflicts(daemon, name):
    cid = daemon.out("create", "--name", name, "busybox", "true").strip()
    try:
        res = daemon.docker("create", "--name", name, "busybox", "true")
        assert res.returncode != 0
        assert (f'Conflict. The container name "/{name}" is already in use by container '
                f'"{cid}"') in res.stderr.decode()
        res = daemon.docker("create", "--name", "bad name!", "busybox", "true")
        assert "Invalid container name (bad name!), only [a-zA-Z0-9][a-zA-Z0-9_.-] are " \
               "allowed" in res.stderr.decode()
        info = json.loads(daemon.out("inspect", cid[:12]))[0]
        assert info["Name"] == f"/{name}"
        assert info["State"]["Status"] == "created"
        assert info["Config"]["Hostname"] == cid[:12]
        for key in ("Id", "Created", "Path", "Args", "State", "Image", "ResolvConfPath",
                    "HostnamePath", "HostsPath", "LogPath", "Name", "RestartCount", "Driver",
                    "Platform", "MountLabel", "ProcessLabel", "AppArmorProfile", "HostConfig",
                    "GraphDriver", "Mounts", "Config", "NetworkSettings"):
            assert key in info
    finally:
        daemon.docker("rm", "-f", name)


def test_generated_name(daemon):
    cid = daemon.out("create", "busybox", "true").strip()
    try:
        n = daemon.out("inspect", "-f", "{{.Name}}", cid).strip()
        assert n.startswith("/") and "_" in n
    finally:
        daemon.docker("rm", cid)


def test_start_stop_start_rm(daemon, name):
    daemon.out("run", "-d", "--name", name, "busybox", "sh", "-c", LOOP)
    try:
        assert daemon.out("inspect", "-f", "{{.State.Running}}", name).strip() == "true"
        res = daemon.docker("rm", name)
        assert "container is running: stop the container before removing or force " \
               "remove" in res.stderr.decode()
        daemon.out("stop", name)
        st = json.loads(daemon.out("inspect", name))[0]["State"]
        assert st["Status"] == "exited" and st["ExitCode"] == 0 and not st["Running"]
        daemon.out("start", name)
        assert daemon.out("inspect", "-f", "{{.State.Status}}", name).strip() == "running"
        daemon.out("restart", "-t", "1", name)
        assert daemon.out("inspect", "-f", "{{.State.Status}}", name).strip() == "running"
    finally:
        daemon.out("rm", "-f", name)
    assert daemon.docker("inspect", name).returncode == 1


def test_kill_signals(daemon, name):
    daemon.out("run", "-d", "--name", name, "busybox", "sh", "-c",
               'trap "exit 12" USR1; while :; do sleep 0.1; done')
    try:
        res = daemon.docker("kill", "-s", "NOSUCH", name)
        assert res.returncode == 1 and "invalid signal" in res.stderr.decode().lower()
        daemon.out("kill", "-s", "USR1", name)
        assert daemon.out("wait", name).strip() == "12"
        res = daemon.docker("kill", name)
        assert "is not running" in res.stderr.decode()
    finally:
        daemon.docker("rm", "-f", name)


def test_wait_conditions(client, name):
    c = client.containers.create("busybox", ["sh", "-c", "sleep 0.3; exit 5"], name=name)
    try:
        c.start()
        assert c.wait(timeout=10)["StatusCode"] == 5
        assert c.wait(condition="not-running", timeout=10)["StatusCode"] == 5
        with pytest.raises(docker.errors.APIError):
            client.api.wait(c.id, condition="bogus")
    finally:
        c.remove(force=True)


def test_rm_wait_removed(daemon, name):
    res = daemon.docker("run", "--rm", "--name", name, "busybox", "sh", "-c", "exit 4")
    assert res.returncode == 4
    assert daemon.docker("inspect", name).returncode == 1


def test_rename(daemon, name):
    daemon.out("create", "--name", name, "busybox", "true")
    try:
        daemon.out("rename", name, name + "-new")
        assert daemon.out("inspect", "-f", "{{.Name}}", name + "-new").strip() == \
            f"/{name}-new"
        assert daemon.docker("inspect", name).returncode == 1
    finally:
        daemon.docker("rm", "-f", name + "-new")


def test_ps_filters_and_format(daemon, name):
    daemon.out("run", "-d", "--name", name, "--label", "team=a", "busybox", "sh", "-c", LOOP)
    daemon.docker("run", "--name", name + "-x", "busybox", "sh", "-c", "exit 3")
    try:
        assert daemon.out("ps", "--filter", "label=team=a", "--format", "{{.Names}}").strip() \
            == name
        assert daemon.out("ps", "-a", "--filter", "exited=3", "--format",
                          "{{.Names}}").strip() == name + "-x"
        assert daemon.out("ps", "-a", "--filter", "status=running", "--filter",
                          f"name={name}", "--format", "{{.Names}}").strip() == name
        assert name in daemon.out("ps", "--filter", "ancestor=busybox", "--format",
                                  "{{.Names}}")
        st = daemon.out("ps", "-a", "--filter", f"name={name}-x", "--format", "{{.Status}}")
        assert st.startswith("Exited (3)")
        res = daemon.docker("ps", "--filter", "nosuch=1")
        assert "invalid filter 'nosuch'" in res.stderr.decode()
    finally:
        daemon.docker("rm", "-f", name, name + "-x")


def test_prune(daemon, name):
    daemon.out("run", "--name", name, "--label", "p=1", "busybox", "true")
    out = daemon.out("container", "prune", "-f", "--filter", "label=p=1")
    assert "Deleted Containers" in out
    assert daemon.docker("inspect", name).returncode == 1


def test_unknown_image_and_container(daemon):
    res = daemon.docker("inspect", "--type", "container", "nosuchcontainer")
    assert "No such container: nosuchcontainer" in res.stderr.decode()
    # --pull never: a pull would go to Docker Hub
    res = daemon.docker("create", "--pull", "never", "nosuchimage:1")
    assert res.returncode != 0


def test_docker_py_logs_stream(client, name):
    c = client.containers.run("busybox", ["sh", "-c", "echo one; sleep 0.3; echo two"],
                              detach=True, name=name)
    try:
        lines = list(c.logs(stream=True, follow=True))
        assert b"".join(lines) == b"one\ntwo\n"
    finally:
        c.remove(force=True)


def test_autoremove_detached(daemon, name):
    daemon.out("run", "-d", "--rm", "--name", name, "busybox", "true")
    deadline = time.time() + 10
    while time.time() < deadline and daemon.docker("inspect", name).returncode == 0:
        time.sleep(0.1)
    assert daemon.docker("inspect", name).returncode == 1


def test_realtime_signal_and_range(daemon, name):
    daemon.out("run", "-d", "--name", name, "busybox", "sh", "-c",
               'trap "echo got37; exit 0" 37; while :; do sleep 0.1; done')
    try:
        res = daemon.docker("kill", "-s", "99", name)
        assert "does not support signal 99" in res.stderr.decode()
        daemon.out("kill", "-s", "RTMIN+3", name)
        assert daemon.out("wait", name).strip() == "0"
        assert daemon.out("logs", name) == "got37\n"
    finally:
        daemon.docker("rm", "-f", name)


def test_ps_command_quotes_and_dockerenv(daemon, name):
    daemon.docker("run", "--name", name, "busybox", "sh", "-c", "test -f /.dockerenv")
    try:
        assert daemon.out("inspect", "-f", "{{.State.ExitCode}}", name).strip() == "0"
        assert daemon.out("ps", "-a", "--no-trunc", "--filter", f"name={name}", "--format",
                          "{{.Command}}").strip() == "\"sh -c 'test -f /.dockerenv'\""
        assert daemon.out("diff", name) == ""
    finally:
        daemon.docker("rm", name)


def test_wrong_json_types_are_400(client):
    api = client.api
    before = len(api.containers(all=True))
    for body in ({"Image": "busybox", "Tty": "yes"}, {"Image": "busybox", "StopTimeout": "x"},
                 {"Image": "busybox", "HostConfig": {"Memory": "lots"}}):
        res = api._post_json(api._url("/containers/create"), data=body)
        assert res.status_code == 400
        assert res.json()["message"].startswith("invalid JSON: json: cannot unmarshal")
    assert len(api.containers(all=True)) == before


def test_rm_force_thaws_a_cgroup_frozen_behind_our_back(daemon, name):
    from pathlib import Path

    cid = daemon.out("run", "-d", "--name", name, "busybox", "sleep", "300").strip()
    v1 = Path(f"/sys/fs/cgroup/freezer/dockyard/{cid}/freezer.state")
    v2 = Path(f"/sys/fs/cgroup/dockyard/{cid}/cgroup.freeze")
    if v1.exists():
        v1.write_text("FROZEN")
    else:
        v2.write_text("1")
    res = daemon.docker("rm", "-f", name, timeout=30)
    assert res.returncode == 0, res.stderr
    assert daemon.docker("inspect", name).returncode == 1
