"""Images against deep trees, hostile archives, departed clients and kill -9:
the daemon answers 4xx (never 500), leaves nothing half made, and starts."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Daemon, start_daemon, stop_daemon
from tests.integration.robustutil import (
    deep_tar,
    kill9,
    leaf_in_tar,
    load_archive,
    many_files_tar,
    read_response,
    send_request,
    staging,
    store_state,
    unpacking_past,
    wait_for,
)

PY_NAMES = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception)\b|Traceback")
TAR = "Error processing tar file(exit status 1): "


@pytest.fixture
def own_daemon() -> Iterator[Daemon]:
    """A daemon of its own; `_restart` starts it again on the same roots."""
    d = start_daemon(Path(tempfile.mkdtemp(prefix="dockyard-it-", dir="/var/tmp")))
    try:
        yield d
    finally:
        stop_daemon(d)


def _restart(d: Daemon) -> Daemon:
    """The daemon started again on d's roots; d follows the new process, so
    the fixture stops that one."""
    nd = start_daemon(d.data_root.parent)
    d.proc = nd.proc
    return nd


def _tar(members: list[tuple[str, bytes, dict[str, str]]]) -> bytes:
    """name ("x/" a directory, "x -> t" a hardlink), data, pax headers."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data, pax in members:
            if " -> " in name:
                name, target = name.split(" -> ")
                ti = tarfile.TarInfo(name)
                ti.type, ti.linkname = tarfile.LNKTYPE, target
            else:
                ti = tarfile.TarInfo(name.rstrip("/"))
                if name.endswith("/"):
                    ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                else:
                    ti.size = len(data)
            ti.pax_headers = pax
            tf.addfile(ti, io.BytesIO(data) if ti.isreg() else None)
    return buf.getvalue()


SUB = [("sub/", b"", {}), ("sub/keep", b"k", {})]
HOSTILE = {
    "whiteout-dotdot": (SUB + [("sub/.wh...", b"", {})],
                        'failed to mknod("/", S_IFCHR, 0): file exists'),
    "whiteout-dot": (SUB + [("sub/.wh..", b"", {})],
                     'failed to mknod("/sub", S_IFCHR, 0): file exists'),
    "whiteout-empty": (SUB + [("sub/.wh.", b"", {})],
                       'failed to mknod("/sub", S_IFCHR, 0): file exists'),
    "hardlink-missing": ([("a", b"x", {}), ("b -> nothere", b"", {})],
                         "link /nothere /b: no such file or directory"),
    "nul-in-name": ([("a", b"x", {"path": "a\x00b"})], "archive/tar: invalid tar header"),
    "parent-is-file": ([("a", b"x", {}), ("a/b", b"y", {})], "open /a/b: not a directory"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_import_and_load_are_client_errors(daemon: Daemon, client, case: str) -> None:
    import docker

    members, text = HOSTILE[case]
    layer = _tar(members)
    before = store_state(daemon.data_root)
    res = daemon.docker("import", "-", f"hostile-{case}", input=layer)
    err = res.stderr.decode()
    assert res.returncode == 1
    assert err.strip() == f"Error response from daemon: {TAR}{text}"
    with pytest.raises(docker.errors.APIError) as ei:
        client.api.import_image_from_data(layer, repository=f"hostile-{case}")
    assert ei.value.status_code == 400
    # load: the same words, as the last record of a 200 stream (dockerd's way)
    res = daemon.docker("load", input=load_archive(layer, f"hostile-{case}:1"))
    assert res.returncode == 1
    assert res.stderr.decode().strip() == TAR + text
    assert not PY_NAMES.search(err + res.stderr.decode())
    assert store_state(daemon.data_root) == before
    assert daemon.docker("image", "inspect", f"hostile-{case}").returncode != 0


def test_dotdot_names_stay_in_the_image(daemon: Daemon) -> None:
    """As dockerd (which unpacks chrooted): `..` stops at the image's root."""
    layer = _tar([("../../escape", b"inside", {}), ("sub/", b"", {}),
                  ("sub/../../../also", b"too", {})])
    ref = "dotdot-names:1"
    daemon.out("import", "-", ref, input=layer)
    try:
        cid = daemon.out("create", ref, "x").strip()
        out = daemon.docker("export", cid).stdout
        daemon.docker("rm", cid)
        assert leaf_in_tar(out, "escape") == b"inside"
        assert leaf_in_tar(out, "also") == b"too"
    finally:
        daemon.docker("rmi", ref)


@pytest.mark.parametrize("body", [b"this is no image archive", b""])
def test_load_of_a_non_archive(daemon: Daemon, client, body: bytes) -> None:
    import docker

    res = daemon.docker("load", input=body)
    assert res.returncode == 1
    assert "Error response from daemon" not in res.stderr.decode()
    assert not PY_NAMES.search(res.stderr.decode())
    if body:
        assert res.stderr.decode().strip() == TAR + "unexpected EOF"
        with pytest.raises(docker.errors.ImageLoadError, match="unexpected EOF"):
            client.images.load(body)
    s = send_request(daemon.socket, "POST", "/v1.47/images/load?quiet=1", body)
    status, data = read_response(s)
    s.close()
    assert status == 200
    last = json.loads(data.splitlines()[-1])
    assert last["error"] == last["errorDetail"]["message"]


@pytest.mark.parametrize("op", ["import", "load"])
def test_client_leaving_mid_upload_leaves_nothing(own_daemon: Daemon, op: str) -> None:
    import socket

    d = own_daemon
    before = store_state(d.data_root)
    body = many_files_tar(20000)
    target = ("/v1.47/images/create?fromSrc=-&repo=half&tag=1" if op == "import"
              else "/v1.47/images/load?quiet=1")
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.socket)
    s.sendall(f"POST {target} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/x-tar\r\n"
              f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:len(body) // 2])
    wait_for(lambda: staging(d.data_root, op), what="the upload being spooled")
    s.close()
    wait_for(lambda: store_state(d.data_root) == before, 60, "the store as it was")
    assert d.docker("image", "inspect", "half:1").returncode != 0


def test_deep_image_tree_import_rmi_and_restart(own_daemon: Daemon) -> None:
    d = own_daemon
    before = store_state(d.data_root)
    leaf = os.urandom(4096)
    layer = deep_tar(2000, leaf)
    image_id = d.out("import", "-", "deep:1", input=layer).strip()
    cid = d.out("create", "deep:1", "x").strip()
    exported = d.docker("export", cid, timeout=120).stdout
    assert hashlib.sha256(leaf_in_tar(exported)).digest() == hashlib.sha256(leaf).digest()
    d.out("rm", cid)
    res = d.docker("rmi", "deep:1")
    assert res.returncode == 0, res.stderr
    assert f"Deleted: {image_id}" in res.stdout.decode()
    assert store_state(d.data_root) == before
    # kept across a restart, removed after it
    d.out("import", "-", "deep:2", input=layer)
    stop_daemon(d, cleanup=False)
    d2 = _restart(d)
    try:
        assert d2.out("images", "-q", "deep:2").strip()
        d2.out("rmi", "deep:2")
        assert store_state(d2.data_root) == before
    finally:
        stop_daemon(d2, cleanup=False)


@pytest.mark.parametrize("op", ["import", "load"])
def test_client_leaving_cancels_the_unpacking(own_daemon: Daemon, op: str) -> None:
    daemon = own_daemon
    layer = many_files_tar(40000)
    tag = f"gone-{op}:1"
    before = store_state(daemon.data_root)
    if op == "import":
        s = send_request(daemon.socket, "POST",
                         "/v1.47/images/create?fromSrc=-&repo=gone-import&tag=1", layer)
    else:
        s = send_request(daemon.socket, "POST", "/v1.47/images/load?quiet=1",
                         load_archive(layer, tag))
    # the upload is in and the layer is being unpacked: the client goes
    wait_for(lambda: staging(daemon.data_root, "layer"), what="unpacking")
    s.close()
    wait_for(lambda: store_state(daemon.data_root) == before, 60, "the store as it was")
    assert daemon.docker("image", "inspect", tag).returncode != 0
    assert "the client left; its request was cancelled" in daemon.log()


@pytest.mark.parametrize("op", ["import", "load", "rmi"])
def test_kill_dash_nine_mid_operation_then_start(own_daemon: Daemon, op: str) -> None:
    """The half made layer (or the half deleted one) is 1,500 directories deep."""
    d = own_daemon
    layer = many_files_tar(8000, depth=1500)
    past_the_deep_part = lambda: unpacking_past(d.data_root, "d0")
    before = store_state(d.data_root)
    images_before = d.out("images", "-q", "--no-trunc")
    if op == "import":
        s = send_request(d.socket, "POST", "/v1.47/images/create?fromSrc=-&repo=killed&tag=1",
                         layer)
        wait_for(past_the_deep_part, what="unpacking past the deep part")
    elif op == "load":
        s = send_request(d.socket, "POST", "/v1.47/images/load?quiet=1",
                         load_archive(layer, "killed:1"))
        wait_for(past_the_deep_part, what="unpacking past the deep part")
    else:
        d.out("import", "-", "killed:1", input=layer)
        s = send_request(d.socket, "DELETE", "/v1.47/images/killed:1")
        wait_for(lambda: staging(d.data_root, "trash"), what="the layer being deleted")
    kill9(d)
    s.close()
    d2 = _restart(d)
    assert d2.out("images", "-q", "--no-trunc") == images_before
    assert d2.docker("image", "inspect", "killed:1").returncode != 0
    assert store_state(d2.data_root) == before
    # and the store works
    d2.out("import", "-", "after:1", input=many_files_tar(10))
    d2.out("rmi", "after:1")
