"""Requests the API fuzzer found answered badly (a 500, a Python text, a wedged
container), each answered now as dockerd answers it or with a Docker-like
4xx, and the container left in a state the next command can use."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse

import pytest

from tests.integration.robustutil import UnixHTTP


def api(daemon, method: str, target: str, body: bytes = b"",  # type: ignore[no-untyped-def]
        content_type: str = "application/json") -> tuple[int, bytes]:
    conn = UnixHTTP(daemon.socket, timeout=120)
    try:
        conn.request(method, target, body=body, headers={"Content-Type": content_type})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def message(body: bytes) -> str:
    return json.loads(body)["message"]


@pytest.fixture
def sleeper(daemon, name):  # type: ignore[no-untyped-def]
    cid = daemon.out("run", "-d", "--name", name, "busybox", "sleep", "300").strip()
    yield cid
    daemon.docker("rm", "-f", cid)


# ------------------------------------------------------------------ update
@pytest.mark.parametrize("body, text", [
    ({"RestartPolicy": {"Name": 5}},
     ("json: cannot unmarshal number into Go struct field RestartPolicy.RestartPolicy.Name "
     "of type container.RestartPolicyMode")),
    ({"RestartPolicy": {"MaximumRetryCount": "x"}},
     ("json: cannot unmarshal string into Go struct field "
     "RestartPolicy.RestartPolicy.MaximumRetryCount of type int")),
    ({"RestartPolicy": "always"},
     ("json: cannot unmarshal string into Go struct field UpdateConfig.RestartPolicy of type "
     "container.RestartPolicy")),
    ({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -1}},
     "invalid restart policy: maximum retry count cannot be negative"),
    ({"PidsLimit": 10**23},
     ("json: cannot unmarshal number 100000000000000000000000 into Go struct field "
     "UpdateConfig.Resources.PidsLimit of type int64")),
])
def test_update_with_bad_fields_is_a_400(daemon, sleeper, body, text):
    status, out = api(daemon, "POST", f"/v1.51/containers/{sleeper}/update",
                      json.dumps(body).encode())
    assert status == 400
    assert message(out).removeprefix("invalid JSON: ") == text
    state = json.loads(daemon.out("inspect", sleeper))[0]
    assert state["State"]["Running"] and state["HostConfig"]["RestartPolicy"]["Name"] == "no"


def test_update_with_a_pids_limit_the_kernel_refuses(daemon, sleeper):
    status, out = api(daemon, "POST", f"/v1.51/containers/{sleeper}/update",
                      json.dumps({"PidsLimit": 2**63 - 1}).encode())
    assert 400 <= status < 500, out
    assert message(out).startswith(f"Cannot update container {sleeper}")
    # nothing recorded, and a good update still works
    assert not json.loads(daemon.out("inspect", sleeper))[0]["HostConfig"]["PidsLimit"]
    daemon.out("update", "--pids-limit", "50", sleeper)
    assert daemon.out("exec", sleeper, "cat", "/sys/fs/cgroup/pids/pids.max").strip() == "50"


# ------------------------------------------------------------------ archive paths
@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT"])
def test_nul_in_an_archive_path_is_a_400(daemon, sleeper, method):
    path = urllib.parse.quote("/etc\x00x")
    status, out = api(daemon, method, f"/v1.51/containers/{sleeper}/archive?path={path}",
                      b"\0" * 1024 if method == "PUT" else b"", "application/x-tar")
    assert status == 400
    if method != "HEAD":
        assert message(out) == "lstat /etc\x00x: invalid argument"
    assert daemon.out("exec", sleeper, "echo", "alive") == "alive\n"


# ------------------------------------------------------------------ paused containers
def state_of(daemon, cid: str) -> tuple[str, bool, int]:  # type: ignore[no-untyped-def]
    st = json.loads(daemon.out("inspect", cid))[0]["State"]
    return st["Status"], st["Paused"], st["ExitCode"]


def test_kill_of_a_paused_container_is_immediate(daemon, sleeper):
    daemon.out("pause", sleeper)
    t0 = time.monotonic()
    daemon.out("kill", sleeper)
    assert time.monotonic() - t0 < 5
    assert state_of(daemon, sleeper) == ("exited", False, 137)
    # and it starts again
    daemon.out("start", sleeper)
    assert state_of(daemon, sleeper) == ("running", False, 0)


def test_a_signal_of_a_paused_container_thaws_it(daemon, name):
    # as dockerd: a signal that is not the container's own stop signal
    # leaves it paused; any other (or any, when it has none) thaws it
    cid = daemon.out("run", "-d", "--name", name, "--stop-signal", "USR1", "busybox",
                     "sleep", "300").strip()
    try:
        daemon.out("pause", cid)
        daemon.out("kill", "-s", "TERM", cid)
        assert state_of(daemon, cid) == ("paused", True, 0)
        daemon.out("kill", "-s", "USR1", cid)
        assert state_of(daemon, cid)[:2] in (("running", False), ("exited", False))
    finally:
        daemon.docker("rm", "-f", cid)


def test_force_remove_of_a_paused_container(daemon, sleeper):
    daemon.out("pause", sleeper)
    res = daemon.docker("rm", sleeper)
    assert res.returncode == 1
    assert "container is paused and must be unpaused first" in res.stderr.decode()
    t0 = time.monotonic()
    status, _ = api(daemon, "DELETE", f"/v1.51/containers/{sleeper}?force=1")
    assert status == 204
    assert time.monotonic() - t0 < 5
    assert daemon.docker("inspect", sleeper).returncode == 1


def test_racing_pause_kill_unpause_leave_a_usable_container(daemon, name):
    for round_ in range(3):
        cid = daemon.out("run", "-d", "--name", f"{name}-{round_}", "busybox",
                         "sleep", "300").strip()
        statuses: list[int] = []

        def call(action: str, cid: str = cid, statuses: list[int] = statuses) -> None:
            statuses.append(api(daemon, "POST", f"/v1.51/containers/{cid}/{action}")[0])

        threads = [threading.Thread(target=call, args=(a,)) for a in
                   ["pause", "unpause", "kill?signal=TERM", "pause", "unpause", "pause",
                    "kill"] * 2]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert set(statuses) <= {204, 409}, statuses
        status, paused, _ = state_of(daemon, cid)
        assert paused == (status == "paused")
        status, _ = api(daemon, "DELETE", f"/v1.51/containers/{cid}?force=1")
        assert status == 204
    assert "Traceback" not in daemon.log()


# ------------------------------------------------------------------ /info and filters
def test_info_registry_mirrors_is_an_empty_list(daemon):
    status, out = api(daemon, "GET", "/v1.51/info")
    assert status == 200
    assert json.loads(out)["RegistryConfig"]["Mirrors"] == []


@pytest.mark.parametrize("target", ["/containers/json", "/images/json", "/networks",
                                    "/events?until=1", "/containers/prune",
                                    "/images/prune", "/networks/prune"])
@pytest.mark.parametrize("filters", ["{bad", "", "[]", '{"a":"b"}', '{"a":{"b":1}}'])
def test_bad_filters_are_dockerds_invalid_filter(daemon, target, filters):
    if filters == "":
        filters = "{" * 3
    method = "POST" if target.endswith("prune") else "GET"
    sep = "&" if "?" in target else "?"
    status, out = api(daemon, method,
                      f"/v1.51{target}{sep}filters={urllib.parse.quote(filters)}")
    assert status == 400
    assert message(out) == "invalid filter"
