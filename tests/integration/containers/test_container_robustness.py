"""Containers against deep trees, racing processes, departed clients and
kill -9: diff, export, cp, commit and rm work at any depth, a race is a 4xx
or a success (never a 500, never the host's data), and a start cleans up."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Daemon, start_daemon, stop_daemon
from tests.integration.robustutil import (
    DEEP_NAME,
    kill9,
    leaf_in_tar,
    read_response,
    send_request,
    staging,
    store_state,
    wait_for,
)

DEPTH = 1500
# the container makes /tmp/DEEP_NAME/... DEPTH levels down, far past
# PATH_MAX (a hundred levels per `mkdir -p` and `cd -P`), a random leaf,
# and its checksum
_SEG = (f"seg=; i=0; while [ $i -lt 100 ]; do seg=${{seg}}{DEEP_NAME}/; i=$((i+1)); done; "
        "cd /tmp && i=0 && ")
MAKE_DEEP = (_SEG + f"while [ $i -lt {DEPTH // 100} ]; do mkdir -p $seg && cd -P $seg; "
             "i=$((i+1)); done && head -c 65536 /dev/urandom > leaf && "
             "sha256sum leaf | cut -d' ' -f1 > /tmp/leaf.sha256")
WALK_DOWN = _SEG + f"while [ $i -lt {DEPTH // 100} ]; do cd -P $seg; i=$((i+1)); done"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _ready(d: Daemon, cid: str, marker: str = "/tmp/ready") -> None:
    wait_for(lambda: d.docker("exec", cid, "test", "-e", marker).returncode == 0, 120,
             "the container's tree")


@pytest.fixture
def own_daemon() -> Iterator[Daemon]:
    d = start_daemon(Path(tempfile.mkdtemp(prefix="dockyard-it-", dir="/var/tmp")))
    try:
        yield d
    finally:
        stop_daemon(d)


def _restart(d: Daemon) -> Daemon:
    nd = start_daemon(d.data_root.parent)
    d.proc = nd.proc
    return nd


def test_deep_tree_through_diff_export_cp_commit_and_rm(own_daemon: Daemon) -> None:
    # a daemon of its own: answers of tens of MB (every path is ~16k long)
    # leave the memory of the session's daemon alone
    import docker

    daemon = own_daemon
    client = docker.DockerClient(base_url=daemon.host, version="auto", timeout=120)
    cid = daemon.out("run", "-d", "busybox", "sh", "-c",
                     f"{MAKE_DEEP} && touch /tmp/ready && sleep 600").strip()
    image = "deep-commit:1"
    try:
        _ready(daemon, cid)
        want = daemon.out("exec", cid, "cat", "/tmp/leaf.sha256").strip()
        deepest = "/tmp/" + "/".join([DEEP_NAME] * DEPTH) + "/leaf"
        changes = client.api.diff(cid)
        assert {"Path": deepest, "Kind": 1} in changes
        assert daemon.docker("diff", cid, timeout=120).returncode == 0
        exported = daemon.docker("export", cid, timeout=120)
        assert exported.returncode == 0, exported.stderr
        assert _sha(leaf_in_tar(exported.stdout)) == want
        copied = daemon.docker("cp", f"{cid}:/tmp/{DEEP_NAME}", "-", timeout=120)
        assert copied.returncode == 0, copied.stderr
        assert _sha(leaf_in_tar(copied.stdout)) == want
        res = daemon.docker("commit", cid, image, timeout=120)
        assert res.returncode == 0, res.stderr
        got = daemon.out("run", "--rm", image, "sh", "-c",
                         f"{WALK_DOWN} && sha256sum leaf | cut -d' ' -f1").strip()
        assert got == want
        # a stopped container's tree is read through a temporary view
        daemon.out("stop", "-t", "0", cid)
        copied = daemon.docker("cp", f"{cid}:/tmp/{DEEP_NAME}", "-", timeout=120)
        assert _sha(leaf_in_tar(copied.stdout)) == want
        res = daemon.docker("rm", "-f", cid, timeout=120)
        assert res.returncode == 0, res.stderr
        assert not (daemon.data_root / "containers" / cid).exists()
    finally:
        client.close()
        daemon.docker("rm", "-f", cid, timeout=120)
        daemon.docker("rmi", image)


def test_kill_dash_nine_during_removal_of_a_deep_tree(own_daemon: Daemon) -> None:
    d = own_daemon
    cid = d.out("run", "-d", "busybox", "sh", "-c",
                f"{MAKE_DEEP} && mkdir /tmp/many && cd /tmp/many && seq 1 8000 | xargs touch"
                " && touch /tmp/ready && sleep 600").strip()
    _ready(d, cid)
    d.out("stop", "-t", "0", cid)
    cdir = d.data_root / "containers" / cid
    s = send_request(d.socket, "DELETE", f"/v1.47/containers/{cid}?force=1")
    # the record goes first; kill the daemon while the tree is being removed
    wait_for(lambda: not (cdir / "config.v2.json").exists(), what="the record removed")
    kill9(d)
    s.close()
    assert cdir.exists(), "the removal finished before the kill: nothing was tested"
    d2 = _restart(d)
    assert cid not in d2.out("ps", "-aq", "--no-trunc")
    assert not cdir.exists()
    assert not (d2.exec_root / "bundles" / cid).exists()
    assert d2.out("run", "--rm", "busybox", "echo", "ok").strip() == "ok"


@pytest.mark.parametrize("how", ["client leaves", "kill -9"])
def test_commit_interrupted_leaves_nothing(own_daemon: Daemon, how: str) -> None:
    d = own_daemon
    cid = d.out("run", "-d", "busybox", "sh", "-c",
                "mkdir /tmp/many && cd /tmp/many && seq 1 10000 | xargs touch && "
                "touch /tmp/ready && sleep 600").strip()
    _ready(d, cid)
    before = store_state(d.data_root)
    images = d.out("images", "-aq", "--no-trunc")
    s = send_request(d.socket, "POST", f"/v1.47/commit?container={cid}&repo=interrupted",
                     b"{}", "application/json")
    wait_for(lambda: staging(d.data_root, "commit"), what="the commit under way")
    if how == "kill -9":
        kill9(d)
        s.close()
        d = _restart(d)
        assert d.out("inspect", "-f", "{{.State.Running}}", cid).strip() == "true"
        assert d.out("exec", cid, "sh", "-c", "ls /tmp/many | wc -l").strip() == "10000"
    else:
        s.close()
    wait_for(lambda: store_state(d.data_root) == before, 60, "the store as it was")
    assert d.out("images", "-aq", "--no-trunc") == images
    assert d.docker("image", "inspect", "interrupted").returncode != 0
    # the container is not left paused
    assert d.out("inspect", "-f", "{{.State.Status}}", cid).strip() == "running"


def test_cp_of_device_nodes_and_fifos_gives_headers(daemon: Daemon, name: str) -> None:
    cid = daemon.out("run", "-d", "--name", name, "busybox", "sh", "-c",
                     "mknod /tmp/disk b 8 0 && mknod /tmp/zero c 1 5 && mkfifo /tmp/fifo && "
                     "touch /tmp/ready && sleep 600").strip()
    try:
        _ready(daemon, cid)
        for stopped in (False, True):
            for path, kind in (("/tmp/disk", tarfile.BLKTYPE), ("/tmp/zero", tarfile.CHRTYPE),
                               ("/tmp/fifo", tarfile.FIFOTYPE)):
                res = daemon.docker("cp", f"{cid}:{path}", "-", timeout=30)
                assert res.returncode == 0, res.stderr
                with tarfile.open(fileobj=io.BytesIO(res.stdout)) as tf:
                    (m,) = tf.getmembers()
                assert m.type == kind and m.size == 0
            if not stopped:
                daemon.out("stop", "-t", "0", cid)
    finally:
        daemon.docker("rm", "-f", cid)


SWAP_LOOP = (
    "mkdir -p /tmp/d/etc && echo container > /tmp/d/etc/debian_version && "
    "echo regular > /tmp/r && touch /tmp/ready && "
    "while :; do ln -s / /tmp/x; rm /tmp/x; mv /tmp/d /tmp/x; mv /tmp/x /tmp/d; "
    "mknod /tmp/f c 1 5; rm /tmp/f; cp /tmp/r /tmp/f; rm /tmp/f; done")


def test_cp_racing_a_swapping_container(daemon: Daemon, name: str) -> None:
    """The container keeps swapping /tmp/x between a directory, a symlink to
    / and nothing, and /tmp/f between a file and /dev/zero's device node:
    every copy is a success or a 404, shows only the container's data (the
    host has its own /etc/debian_version), and never a device read as a file."""
    cid = daemon.out("run", "-d", "--name", name, "busybox", "sh", "-c", SWAP_LOOP).strip()
    try:
        _ready(daemon, cid)
        seen: dict[int, int] = {}
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            for target in ("/tmp/x/etc/debian_version", "/tmp/f"):
                s = send_request(daemon.socket, "GET",
                                 f"/v1.47/containers/{cid}/archive?path={target}")
                status, body = read_response(s, 30)
                s.close()
                seen[status] = seen.get(status, 0) + 1
                assert status in (200, 404), (status, body[:300])
                if status != 200:
                    assert "Could not find the file" in json.loads(body)["message"]
                    continue
                with tarfile.open(fileobj=io.BytesIO(body)) as tf:
                    for m in tf.getmembers():
                        if m.isreg():
                            f = tf.extractfile(m)
                            assert f is not None
                            # (empty: caught between cp's create and its write)
                            assert f.read() in (b"container\n", b"regular\n", b""), m.name
                        else:
                            assert m.ischr() and m.size == 0
        assert seen.get(200, 0) > 0
    finally:
        daemon.docker("rm", "-f", cid)
