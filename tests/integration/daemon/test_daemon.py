"""Issue 2: the daemon process, API conventions, docker info/version."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.integration.conftest import start_daemon, stop_daemon


def http(sock: str, method: str, path: str, body: bytes = b"") -> tuple[int, dict, bytes]:
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    req = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    if body:
        req += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    s.sendall(req.encode() + b"\r\n" + body)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return status, headers, rest


def test_ping_headers(daemon):
    status, h, body = http(daemon.socket, "GET", "/_ping")
    assert status == 200 and body == b"OK"
    for k in ("api-version", "ostype", "docker-experimental", "builder-version",
              "cache-control", "pragma"):
        assert k in h
    assert h["ostype"] == "linux"
    status, h, body = http(daemon.socket, "HEAD", "/_ping")
    assert status == 200 and h["content-length"] == "0"


def test_version_prefix_rules(daemon):
    assert http(daemon.socket, "GET", "/v1.41/version")[0] == 200
    assert http(daemon.socket, "GET", "/version")[0] == 200
    status, _, body = http(daemon.socket, "GET", "/v1.12/version")
    assert status == 400 and b"too old" in body
    status, _, body = http(daemon.socket, "GET", "/v9.99/version")
    assert status == 400
    assert json.loads(body)["message"] == (
        "client version 9.99 is too new. Maximum supported API version is 1.51")


def test_unknown_route_is_json_404(daemon):
    status, h, body = http(daemon.socket, "GET", "/v1.45/no/such/route")
    assert status == 404
    assert h["content-type"] == "application/json"
    assert json.loads(body) == {"message": "page not found"}


def test_malformed_json_is_400(daemon):
    status, _, body = http(daemon.socket, "POST", "/containers/create", b"{not json")
    assert status == 400
    assert json.loads(body)["message"].startswith("invalid JSON")
    # and the daemon keeps serving
    assert http(daemon.socket, "GET", "/_ping")[0] == 200


def test_not_found_texts(daemon):
    status, _, body = http(daemon.socket, "GET", "/containers/nosuch/json")
    assert status == 404 and json.loads(body)["message"] == "No such container: nosuch"
    status, _, body = http(daemon.socket, "GET", "/images/nosuch/json")
    assert status == 404 and json.loads(body)["message"] == "No such image: nosuch:latest"


def test_cli_version_and_info(daemon):
    out = daemon.out("version", "--format", "{{.Server.APIVersion}} {{.Server.Os}}")
    assert out.strip() == "1.51 linux"
    info = json.loads(daemon.out("info", "--format", "{{json .}}"))
    assert info["Driver"] == "overlay2"
    assert info["CgroupVersion"] in ("1", "2")
    assert info["NCPU"] == os.cpu_count()
    assert info["DockerRootDir"] == str(daemon.data_root)
    assert info["DefaultRuntime"] in info["Runtimes"]
    assert info["OSType"] == "linux"
    assert info["MemTotal"] > 0


def test_runtime_versions_and_commits_come_from_the_runtimes(daemon):
    comps = json.loads(daemon.out("version", "--format", "{{json .Server.Components}}"))
    runtimes = {c["Name"]: c for c in comps if c["Name"] != "Engine"}
    assert runtimes, comps
    for name, comp in runtimes.items():
        text = subprocess.run([name, "--version"], capture_output=True, text=True).stdout
        assert comp["Version"] and comp["Version"] in text.splitlines()[0]
        commit = next(ln.split(":", 1)[1].strip() for ln in text.splitlines()
                      if ln.startswith("commit:"))
        assert comp["Details"]["GitCommit"] == commit
    info = json.loads(daemon.out("info", "--format", "{{json .}}"))
    assert info["RuncCommit"]["ID"] == runtimes[info["DefaultRuntime"]]["Details"]["GitCommit"]


def test_image_inspect_busybox(daemon):
    out = json.loads(daemon.out("image", "inspect", "busybox"))
    assert out[0]["RepoTags"] == ["busybox:latest"]
    assert out[0]["Config"]["Cmd"] == ["sh"]


def test_second_daemon_refuses_same_data_root(daemon):
    res = subprocess.run(
        [sys.executable, "-m", "dockyard.cli", "daemon", "-H",
         f"unix://{daemon.data_root.parent}/other.sock", "--data-root", str(daemon.data_root),
         "--exec-root", "/run/dockyard-test-other"],
        capture_output=True, timeout=30)
    assert res.returncode != 0
    assert b"already using the data root" in res.stderr


def test_sigterm_removes_socket_and_pidfile():
    base = Path(tempfile.mkdtemp(prefix="dockyard-it-", dir="/var/tmp"))
    pidfile = base / "d.pid"
    d = start_daemon(base, ["--pidfile", str(pidfile)])
    try:
        assert pidfile.read_text() == str(d.proc.pid)
        st = os.stat(d.socket)
        assert oct(st.st_mode & 0o777) == "0o660"
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(15) == 0
        assert not os.path.exists(d.socket)
        assert not pidfile.exists()
    finally:
        stop_daemon(d)


def test_config_file_and_flags():
    base = Path(tempfile.mkdtemp(prefix="dockyard-it-", dir="/var/tmp"))
    cfg = base / "daemon.json"
    cfg.write_text(json.dumps({"default-runtime": "runc", "log-level": "warn"}))
    d = start_daemon(base, ["--config-file", str(cfg)])
    try:
        assert d.out("info", "--format", "{{.DefaultRuntime}}").strip() == "runc"
        assert d.out("run", "--rm", "busybox", "echo", "ok").strip() == "ok"
    finally:
        stop_daemon(d)
    with tempfile.TemporaryDirectory(dir="/var/tmp") as other:
        bad = Path(other) / "bad.json"
        bad.write_text(json.dumps({"no-such-key": 1}))
        res = subprocess.run([sys.executable, "-m", "dockyard.cli", "daemon", "--config-file",
                              str(bad), "--data-root", str(Path(other) / "d2")],
                             capture_output=True, timeout=30)
    assert res.returncode != 0
    assert b"no-such-key" in res.stderr


def test_sigterm_while_starting_stops_in_order():
    """A SIGTERM the moment the socket appears (the containers are still
    being picked up, before the daemon says it is ready) stops the daemon
    in order: exit 0, socket and pid file gone.  It killed the daemon
    outright before, leaving both."""
    for i in range(3):
        base = Path(tempfile.mkdtemp(prefix="dockyard-it-", dir="/var/tmp"))
        sock, pidfile = base / "d.sock", base / "d.pid"
        exec_root = f"/run/dockyard-test-early-{os.getpid()}-{i}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "dockyard.cli", "daemon", "-H", f"unix://{sock}",
             "--data-root", str(base / "data"), "--exec-root", exec_root,
             "--pidfile", str(pidfile)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while not sock.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.0005)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
            assert not sock.exists() and not pidfile.exists()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            subprocess.run([sys.executable, "-m", "dockyard.cli", "cleanup", "--data-root",
                            str(base / "data"), "--exec-root", exec_root],
                           capture_output=True, timeout=60)
            subprocess.run(["rm", "-rf", str(base), exec_root], check=False)


@pytest.mark.parametrize(("args", "text"), [
    (("swarm", "leave", "--force"), "This node is not part of a swarm"),
    (("node", "ls"), "This node is not a swarm manager."),
    (("service", "ls"), "This node is not a swarm manager."),
    (("secret", "ls"), "This node is not a swarm manager."),
    (("config", "rm", "x"), "This node is not a swarm manager."),
    (("swarm", "join", "--token", "SWMTKN-1-x-y", "127.0.0.1:2377"),
     "joining a swarm is not supported by dockyard"),
    (("network", "create", "-d", "overlay", "ov"), "This node is not a swarm manager."),
])
def test_swarm_requests_answer_as_a_standalone_engine(daemon, args, text):
    res = daemon.docker(*args)
    assert res.returncode != 0
    assert text in res.stderr.decode()
