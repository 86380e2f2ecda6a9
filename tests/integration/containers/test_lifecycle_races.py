"""Lifecycle edges: racing clients, removal winning over late writers, failed
starts undoing what they made, restarting containers, binary stdin."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.integration.conftest import start_daemon, stop_daemon


def _api(d, method: str, path: str, body: object | None = None) -> tuple[int, bytes]:
    import http.client
    import socket

    class Unix(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(d.socket)

    c = Unix("localhost", timeout=60)
    data = json.dumps(body).encode() if body is not None else None
    c.request(method, path, body=data,
              headers={"Content-Type": "application/json"} if data else {})
    r = c.getresponse()
    out = r.read()
    c.close()
    return r.status, out


def test_concurrent_creates_with_one_name_give_one_container(daemon, name):
    results: list[int] = []

    def create() -> None:
        st, _ = _api(daemon, "POST", f"/containers/create?name={name}",
                     {"Image": "busybox", "Cmd": ["true"]})
        results.append(st)

    threads = [threading.Thread(target=create) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert sorted(results) == [201] + [409] * 19
        listed = daemon.out("ps", "-a", "--filter", f"name=^{name}$", "--format", "{{.Names}}")
        assert listed.split() == [name]
    finally:
        daemon.docker("rm", "-f", name)


def test_removal_wins_over_a_racing_start():
    """`rm -f` racing a start: the container never comes back, not even
    after a daemon restart, and nothing of it stays on disk."""
    base = Path(tempfile.mkdtemp(prefix="dockyard-it-", dir="/var/tmp"))
    d = start_daemon(base)
    try:
        ids = []
        for _ in range(20):
            st, body = _api(d, "POST", "/containers/create",
                            {"Image": "busybox", "Cmd": ["true"]})
            assert st == 201, body
            cid = json.loads(body)["Id"]
            ids.append(cid)
            starter = threading.Thread(target=_api, args=(d, "POST", f"/containers/{cid}/start"))
            starter.start()
            st, body = _api(d, "DELETE", f"/containers/{cid}?force=1")
            starter.join()
            assert st in (204, 404), body
        time.sleep(1)          # late exit handlers have run by now
        assert d.out("ps", "-aq").split() == []
        containers = d.data_root / "containers"
        assert not [cid for cid in ids if (containers / cid).exists()]
        stop_daemon(d, cleanup=False)
        d = start_daemon(base)
        assert d.out("ps", "-aq").split() == []
    finally:
        stop_daemon(d)


def test_remove_restarting_container_is_refused_unless_forced(daemon, name):
    daemon.out("run", "-d", "--name", name, "--restart", "always", "busybox", "false")
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            status = daemon.out("inspect", "-f", "{{.State.Status}}", name).strip()
            if status == "restarting":
                break
            time.sleep(0.02)
        else:
            pytest.fail("the container never showed as restarting")
        res = daemon.docker("rm", name)
        assert res.returncode != 0
        assert (f'cannot remove container "/{name}": container is restarting: stop the '
                "container before removing or force remove") in res.stderr.decode()
    finally:
        assert daemon.docker("rm", "-f", name).returncode == 0
    assert daemon.docker("inspect", name).returncode != 0


def test_failed_start_undoes_what_it_made(daemon, name):
    cid = daemon.out("create", "--name", name, "busybox", "/nonexistent").strip()
    try:
        res = daemon.docker("start", name)
        assert res.returncode != 0
        assert not (daemon.exec_root / "bundles" / cid).exists()
        assert not (daemon.exec_root / "netns" / cid).exists()
        mounts = Path("/proc/self/mountinfo").read_text()
        assert cid not in mounts
        assert daemon.out("inspect", "-f", "{{.State.Status}}", name).strip() == "created"
    finally:
        daemon.docker("rm", "-f", name)


def test_stopped_container_keeps_no_runtime_state(daemon, name):
    daemon.out("run", "--name", name, "busybox", "true")
    try:
        cid = daemon.out("inspect", "-f", "{{.Id}}", name).strip()
        assert not (daemon.exec_root / "bundles" / cid).exists()
        assert not (daemon.exec_root / "netns" / cid).exists()
        # and it starts again as before
        daemon.out("start", "-a", name)
    finally:
        daemon.docker("rm", "-f", name)


def test_quick_restarts_never_meet_the_last_runs_leftovers(daemon, name):
    # a start that comes while the last run's exit is still being handled
    # waits for it, instead of finding (or losing) the old run's bundle
    daemon.out("run", "-d", "--name", name, "busybox", "sleep", "600")
    try:
        for _ in range(15):
            daemon.out("restart", "-t", "0", name)
            daemon.out("stop", "-t", "0", name)
            daemon.out("start", name)
        assert daemon.out("exec", name, "echo", "alive") == "alive\n"
        assert daemon.out("inspect", "-f", "{{.State.Status}}", name).strip() == "running"
    finally:
        daemon.docker("rm", "-f", name)


def test_detach_keys_are_data_without_a_terminal(daemon):
    res = daemon.docker("run", "--rm", "-i", "busybox", "od", "-An", "-c",
                        input=b"abc\x10\x11def\n")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [b"a", b"b", b"c", b"020", b"021", b"d", b"e", b"f", b"\\n"]


@pytest.fixture(scope="module")
def random_payload(tmp_path_factory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("stdin") / "payload"
    data = secrets.token_bytes(50 * 1024 * 1024)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def test_binary_stdin_through_run_is_byte_exact(daemon, random_payload):
    path, digest = random_payload
    with path.open("rb") as f:
        res = daemon.docker("run", "--rm", "-i", "busybox", "sha256sum", input=f.read(),
                            timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[0].decode() == digest


def test_binary_stdin_through_exec_and_attach_is_byte_exact(daemon, name, random_payload):
    path, digest = random_payload
    data = path.read_bytes()
    daemon.out("run", "-d", "--name", name, "busybox", "sleep", "300")
    try:
        res = daemon.docker("exec", "-i", name, "sha256sum", input=data, timeout=120)
        assert res.returncode == 0, res.stderr
        assert res.stdout.split()[0].decode() == digest
    finally:
        daemon.docker("rm", "-f", name)
    daemon.out("create", "-i", "--name", name, "busybox", "sha256sum")
    try:
        daemon.out("start", name)
        res = daemon.docker("attach", name, input=data, timeout=120)
        assert res.returncode == 0, res.stderr
        assert res.stdout.split()[0].decode() == digest
    finally:
        daemon.docker("rm", "-f", name)


def test_daemon_fds_stay_flat_across_container_lifecycles(daemon):
    def fds() -> dict[str, str]:
        out = {}
        for fd in os.listdir(f"/proc/{daemon.proc.pid}/fd"):
            try:
                out[fd] = os.readlink(f"/proc/{daemon.proc.pid}/fd/{fd}")
            except FileNotFoundError:
                continue
        return out

    def lifecycle() -> None:
        st, body = _api(daemon, "POST", "/containers/create",
                        {"Image": "busybox", "Cmd": ["sh", "-c", "echo out; echo err >&2"]})
        assert st == 201, body
        cid = json.loads(body)["Id"]
        assert _api(daemon, "POST", f"/containers/{cid}/start")[0] == 204
        assert _api(daemon, "POST", f"/containers/{cid}/wait")[0] == 200
        assert _api(daemon, "DELETE", f"/containers/{cid}")[0] == 204

    for _ in range(10):
        lifecycle()
    before = fds()
    for _ in range(200):
        lifecycle()
    # the last run's teardown (its veth, its log pump) may still be finishing
    deadline = time.time() + 10
    while len(after := fds()) > len(before) + 3 and time.time() < deadline:
        time.sleep(0.5)
    new = sorted(t for fd, t in after.items() if before.get(fd) != t)
    assert len(after) <= len(before) + 3, \
        f"{len(after) - len(before)} descriptors more after 200 containers: {new}"
