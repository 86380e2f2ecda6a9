"""Receiving a context: decompression, the spool, the index (no root needed)."""

from __future__ import annotations

import asyncio
import bz2
import gzip
import io
import lzma
import os
import tarfile

import pytest

from dockyard.build import context as ctx
from dockyard.build.driver.receive import index_spool, spool_body
from dockyard.errors import InvalidParameter


def _tar(files: dict[str, bytes], links: list[tarfile.TarInfo] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o640
            ti.uid, ti.gid = 7, 8
            tf.addfile(ti, io.BytesIO(data))
        for ti in links or []:
            tf.addfile(ti)
    return buf.getvalue()


def _receive(tmp_path, body: bytes, chunk: int = 7000):
    async def chunks():
        for i in range(0, len(body), chunk):
            yield body[i:i + chunk]

    spool = tmp_path / "spool"
    size = asyncio.run(spool_body(chunks(), spool))
    return index_spool(spool, size)


@pytest.mark.parametrize("compress", [lambda b: b, gzip.compress, bz2.compress, lzma.compress,
                                      lambda b: gzip.compress(b[:700]) + gzip.compress(b[700:])])
def test_compressed_and_plain_contexts(tmp_path, compress):
    data = os.urandom(50_000)
    c = _receive(tmp_path, compress(_tar({"Dockerfile": b"FROM x\n", "d/blob": data})))
    blob = c.tree.lookup("d/blob")
    assert blob is not None and (blob.mode, blob.uid, blob.gid, blob.size) == (0o640, 7, 8,
                                                                               50_000)
    assert c.read(blob) == data
    assert c.tree.lookup("d").implicit


def test_a_tar_without_end_blocks_is_read(tmp_path):
    raw = _tar({"a": b"x" * 47, "Dockerfile": b"FROM y\n" * 7})
    cut = raw.rstrip(b"\x00")
    c = _receive(tmp_path, cut)
    assert c.read(c.tree.lookup("Dockerfile")) == b"FROM y\n" * 7


def test_text_body_is_a_dockerfile_alone(tmp_path):
    c = _receive(tmp_path, b"FROM busybox\nRUN true\n")
    assert c.dockerfile_only == b"FROM busybox\nRUN true\n"
    (tmp_path / "e").mkdir()
    empty = _receive(tmp_path / "e", b"")
    assert empty.dockerfile_only is None and not empty.tree.root.children


def test_garbage_and_hostile_members(tmp_path):
    with pytest.raises(InvalidParameter, match="invalid tar header"):
        _receive(tmp_path, b"\x00\x01\x02" * 400)
    hl = tarfile.TarInfo("link")
    hl.type = tarfile.LNKTYPE
    hl.linkname = "missing"
    (tmp_path / "b").mkdir()
    with pytest.raises(InvalidParameter, match="invalid hardlink"):
        _receive(tmp_path / "b", _tar({}, [hl]))
    up = tarfile.TarInfo("../up")
    (tmp_path / "c").mkdir()
    with pytest.raises(ctx.ContextError, match="outside of the build context"):
        _receive(tmp_path / "c", _tar({}, [up]))
    (tmp_path / "d").mkdir()
    with pytest.raises(InvalidParameter, match="zstd"):
        _receive(tmp_path / "d", b"\x28\xb5\x2f\xfd" + b"\x00" * 100)


def test_hardlinks_share_data_and_digest(tmp_path):
    hl = tarfile.TarInfo("copy")
    hl.type = tarfile.LNKTYPE
    hl.linkname = "orig"
    c = _receive(tmp_path, _tar({"orig": b"same bytes"}, [hl]))
    a, b = c.tree.lookup("orig"), c.tree.lookup("copy")
    assert c.read(b) == b"same bytes"
    assert c.digest(a) == c.digest(b)
