"""No option is accepted and then ignored: what is not done yet is refused
at create with a clear 400 (or Docker's 404 for an unknown network), what
is done is shown working here, and bad input is a 4xx, never a 500."""

from __future__ import annotations

import glob
import http.client
import json
import os
import socket
import time
import uuid
from pathlib import Path

import docker
import pytest
from hc_util import traces_of


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=60)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def api(daemon, method: str, url: str, body: bytes | str | None = None  # type: ignore[no-untyped-def]
        ) -> tuple[int, dict | list | None]:
    """A raw request with exactly these body bytes (clients would fix the case
    of field names or reject odd JSON); returns status and decoded body."""
    conn = UnixHTTP(daemon.socket)
    try:
        data = body.encode() if isinstance(body, str) else body
        conn.request(method, url, body=data, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw.strip() else None
    finally:
        conn.close()


def create(daemon, body: dict | str) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    text = body if isinstance(body, str) else json.dumps(body)
    status, out = api(daemon, "POST", "/v1.51/containers/create", text)
    assert isinstance(out, dict)
    if status == 201:
        daemon.docker("rm", "-f", out["Id"])
    return status, out


def _ids(daemon) -> set[str]:  # type: ignore[no-untyped-def]
    return set(daemon.out("ps", "-aq", "--no-trunc").split())


def _no_python(message: str) -> None:
    assert "Error:" not in message and "Traceback" not in message, message


# ---------------------------------------------------------------- cgroup parent

def _cgroup_lines(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        _, ctrls, path = line.split(":", 2)
        for c in ctrls.split(","):
            out[c] = path
    return out


def _drop_cgroup(rel: str) -> None:
    for hier in glob.glob("/sys/fs/cgroup/*/"):
        top = Path(hier, rel)
        for d in sorted(glob.glob(f"{top}/**/", recursive=True), key=len, reverse=True):
            try:
                os.rmdir(d)
            except OSError:
                pass


@pytest.mark.parametrize("form", ["/{p}", "{p}/sub", "../../../{p}"])
def test_cgroup_parent_places_the_container(daemon, client, name, form):
    """--cgroup-parent puts the container's cgroup under that parent (in every
    v1 hierarchy, or the one v2 tree), confined to the cgroup root; stats,
    top, update and removal follow it."""
    top = f"dy-parent-{uuid.uuid4().hex[:8]}"
    parent = form.format(p=top)
    want = "/" + os.path.normpath("/" + parent).lstrip("/")
    try:
        cid = daemon.out("run", "-d", "--name", name, "--cgroup-parent", parent, "busybox",
                         "sh", "-c", "cat /proc/self/cgroup; sleep 300").strip()
        deadline = time.time() + 10
        while not daemon.out("logs", name) and time.time() < deadline:
            time.sleep(0.05)
        lines = _cgroup_lines(daemon.out("logs", name))
        assert lines.get("memory", lines.get("")) == f"{want}/{cid}"
        assert not os.path.exists(f"/{top}") and not os.path.exists(f"/sys/fs/{top}")
        v1 = os.path.isdir("/sys/fs/cgroup/memory")
        mem_dir = Path("/sys/fs/cgroup/memory" if v1 else "/sys/fs/cgroup", want.lstrip("/"),
                       cid)
        assert mem_dir.is_dir()
        # stats and top read the container's own cgroup
        st = client.api.stats(cid, stream=False)
        assert st["memory_stats"].get("usage", 0) > 0 and st["pids_stats"]["current"] >= 1
        top_out = client.api.top(cid)
        assert any("sleep 300" in p[-1] for p in top_out["Processes"])
        # update writes there
        daemon.out("update", "--memory", "64m", "--memory-swap", "128m", name)
        limit = (mem_dir / ("memory.limit_in_bytes" if v1 else "memory.max")).read_text()
        assert limit.strip() == str(64 << 20)
        daemon.out("rm", "-f", name)
        assert not mem_dir.exists()
        assert traces_of(daemon, cid) == []
    finally:
        daemon.docker("rm", "-f", name)
        _drop_cgroup(top)


def test_cgroup_parent_with_a_newline_is_refused(daemon):
    before = _ids(daemon)
    status, out = create(daemon, {"Image": "busybox", "HostConfig": {"CgroupParent": "a\nb"}})
    assert (status, out["message"]) == (
        400, 'invalid cgroup-parent "a\\nb": control characters are not allowed')
    assert _ids(daemon) == before


# ---------------------------------------------------------------- bad input: 4xx

def _no_python(message: str) -> None:
    assert "Error:" not in message and "Traceback" not in message, message


def test_top_with_bad_ps_args_is_a_400(daemon, name):
    cid = daemon.out("run", "-d", "--name", name, "busybox", "sleep", "300").strip()
    try:
        status, out = api(daemon, "GET", f"/v1.51/containers/{cid}/top?ps_args=-ef%00x")
        assert status == 400 and "NUL" in out["message"], out  # type: ignore[index]
        status, out = api(daemon, "GET", f"/v1.51/containers/{cid}/top?ps_args=--no-such-opt")
        assert status == 400 and out["message"].startswith("ps: "), out  # type: ignore[index]
        _no_python(out["message"])  # type: ignore[index]
    finally:
        daemon.docker("rm", "-f", name)


def test_name_filter_that_is_not_a_regexp_matches_nothing(daemon, name):
    daemon.out("create", "--name", name, "busybox", "true")
    try:
        res = daemon.docker("ps", "-a", "--filter", "name=[")
        assert res.returncode == 0, res.stderr
        assert res.stdout.decode().splitlines()[1:] == []
        assert name in daemon.out("ps", "-a", "--filter", f"name={name}")
    finally:
        daemon.docker("rm", "-f", name)


def test_exec_with_bad_detach_keys_is_a_400(daemon, client, name):
    daemon.out("run", "-d", "--name", name, "busybox", "sleep", "300")
    try:
        with pytest.raises(docker.errors.APIError) as e:
            client.api.exec_create(name, ["true"], detach_keys="bogus-keys")
        assert e.value.status_code == 400
        assert "Invalid escape keys (bogus-keys) provided" in str(e.value.explanation)
    finally:
        daemon.docker("rm", "-f", name)
