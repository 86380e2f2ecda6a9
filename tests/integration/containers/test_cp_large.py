"""Large `docker cp` uploads, every byte checked: the CLI's chunked body of
a tar with a 300 MB random file and a tree around it, docker-py's
Content-Length body, and compressed archives, each copied back out."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import docker.errors
import pytest

MB = 1 << 20


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MB):
            h.update(chunk)
    return h.hexdigest()


def random_file(path: Path, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(left, 4 * MB))
            f.write(chunk)
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


@pytest.fixture
def box(daemon, name):
    daemon.out("run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "600")
    yield name
    daemon.docker("rm", "-f", name)


def test_cp_large_file_and_tree_in_and_out(daemon, box, tmp_path):
    src = tmp_path / "src"
    (src / "sub" / "deeper").mkdir(parents=True)
    big = random_file(src / "big", 300 * MB + 4321)
    small = {f"sub/f{i}": os.urandom(i * 517) for i in range(40)}
    for rel, data in small.items():
        (src / rel).write_bytes(data)
    (src / "sub" / "deeper" / "aligned").write_bytes(b"a" * 8192)
    os.symlink("../big", src / "sub" / "link")
    daemon.out("cp", str(src), f"{box}:/data", timeout=300)
    # what the container sees
    inside = daemon.out("exec", box, "sha256sum", "/data/big", timeout=120).split()[0]
    assert inside == big
    assert daemon.out("exec", box, "readlink", "/data/sub/link").strip() == "../big"
    # and back out
    back = tmp_path / "back"
    daemon.out("cp", f"{box}:/data", str(back), timeout=300)
    assert sha256_file(back / "big") == big
    for rel, data in small.items():
        assert (back / rel).read_bytes() == data, rel
    assert (back / "sub" / "deeper" / "aligned").read_bytes() == b"a" * 8192


def _archive(files: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:xz"])
def test_put_archive_with_content_length(client, box, mode):
    files = {"one": os.urandom(24 * MB + 5), "two": os.urandom(1000), "three": b""}
    if mode == "w:xz":
        files["one"] = files["one"][:2 * MB]             # xz is slow to make
    c = client.containers.get(box)
    assert c.put_archive("/tmp", _archive(files, mode))   # bytes: a Content-Length body
    stream, _stat = c.get_archive("/tmp/.")
    got = {}
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream)), mode="r|") as tf:
        for ti in tf:
            if ti.isreg():
                f = tf.extractfile(ti)
                assert f is not None
                got[ti.name.removeprefix("./")] = f.read()
    for name, data in files.items():
        assert hashlib.sha256(got[name]).digest() == hashlib.sha256(data).digest(), name


def test_put_archive_cut_short_is_refused(client, box):
    data = _archive({"f": os.urandom(3 * MB)})
    c = client.containers.get(box)
    with pytest.raises(docker.errors.APIError) as ei:
        c.put_archive("/tmp", data[:2 * MB])
    assert ei.value.status_code == 400
    assert "unexpected end of data" in str(ei.value)
