"""`docker cp` into and out of volumes and bind mounts (running and stopped
containers), and diff/export/commit leaving volume contents out, as dockerd."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest


def _tar_members(data: bytes) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for m in tf.getmembers():
            f = tf.extractfile(m) if m.isfile() else None
            out[m.name.rstrip("/")] = f.read() if f else None
    return out


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("running", [False, True], ids=["stopped", "running"])
def test_cp_into_and_out_of_volumes_and_binds(daemon, vol, tmp_path, name, running):
    v = vol()
    bind = tmp_path / "bind"
    bind.mkdir()
    cmd = ("sleep", "120") if running else ("true",)
    daemon.out("create", "--name", name, "-v", f"{v}:/data", "-v", f"{bind}:/srv/b",
               "-v", "/anon", "busybox", *cmd)
    if running:
        daemon.out("start", name)
    try:
        payloads = {}
        for dest in ("/data", "/srv/b", "/anon"):
            data = os.urandom(5 << 20)
            src = tmp_path / f"p{len(payloads)}.bin"
            src.write_bytes(data)
            daemon.out("cp", str(src), f"{name}:{dest}/in.bin")
            payloads[dest] = data
        # where it landed: the volume's directory and the host directory
        mp = Path(daemon.out("volume", "inspect", "-f", "{{.Mountpoint}}", v).strip())
        assert _sha((mp / "in.bin").read_bytes()) == _sha(payloads["/data"])
        assert _sha((bind / "in.bin").read_bytes()) == _sha(payloads["/srv/b"])
        # and back out, a file and whole trees holding the mounts
        for dest, data in payloads.items():
            out = daemon.docker("cp", f"{name}:{dest}/in.bin", "-", check=True).stdout
            assert _sha(_tar_members(out)["in.bin"] or b"") == _sha(data)
        tree = _tar_members(daemon.docker("cp", f"{name}:/srv", "-", check=True).stdout)
        assert _sha(tree["srv/b/in.bin"] or b"") == _sha(payloads["/srv/b"])
        root = _tar_members(daemon.docker("cp", f"{name}:/", "-", check=True).stdout)
        assert _sha(root["data/in.bin"] or b"") == _sha(payloads["/data"])
        if not running:
            daemon.out("start", "-a", name)
        out = daemon.out("exec" if running else "run", *(
            [name] if running else ["--rm", "--volumes-from", name, "busybox"]),
            "sh", "-c", "sha256sum /data/in.bin /srv/b/in.bin /anon/in.bin | cut -d' ' -f1")
        assert out.split() == [_sha(payloads[d]) for d in ("/data", "/srv/b", "/anon")]
    finally:
        daemon.out("rm", "-f", "-v", name)
    assert not any(name in line for line in open("/proc/self/mountinfo"))


def test_cp_respects_read_only_mounts(daemon, vol, tmp_path, name):
    v = vol()
    f = tmp_path / "f"
    f.write_text("x\n")
    daemon.out("create", "--name", name, "--read-only", "-v", f"{v}:/rw",
               "-v", f"{tmp_path}:/ro:ro", "busybox", "true")
    try:
        res = daemon.docker("cp", str(f), f"{name}:/ro/")
        assert res.returncode == 1 and b"mounted volume is marked read-only" in res.stderr
        res = daemon.docker("cp", str(f), f"{name}:/etc/")
        assert b"container rootfs is marked read-only" in res.stderr
        daemon.out("cp", str(f), f"{name}:/rw/")        # a writable volume of a --read-only
        assert daemon.out("run", "--rm", "-v", f"{v}:/v", "busybox", "cat", "/v/f") == "x\n"
    finally:
        daemon.out("rm", name)


def test_diff_export_commit_leave_volumes_out(daemon, vol, tmp_path, name):
    v = vol()
    daemon.out("run", "--name", name, "-v", f"{v}:/data", "-v", "/anon",
               "-v", f"{tmp_path}:/srv/b", "busybox", "sh", "-c",
               "echo v > /data/in-volume && echo a > /anon/in-anon && echo b > /srv/b/in-bind "
               "&& echo r > /in-root")
    try:
        changes = daemon.out("diff", name).split("\n")
        assert "A /in-root" in changes
        assert not any(c.startswith(("A /data", "A /anon", "A /srv/b")) or "/data/" in c
                       or "/anon/" in c or "/srv/b/" in c for c in changes), changes
        exported = _tar_members(daemon.docker("export", name, check=True).stdout)
        assert "in-root" in exported
        assert not {"data/in-volume", "anon/in-anon", "srv/b/in-bind"} & set(exported)
        tag = f"{name}-img:latest"
        daemon.out("commit", name, tag)
        out = daemon.out("run", "--rm", "--entrypoint", "sh", tag, "-c",
                         "ls /in-root; ls -A /data /srv/b 2>&1 | grep -c in- || true")
        assert out.split() == ["/in-root", "0"]
        daemon.out("rmi", tag)
    finally:
        daemon.out("rm", "-v", name)
