"""The image store opens whatever a crash or an older version left on disk."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

from imgtestutil import chunks_of, simple_layer

from dockyard.images.service import ImageService
from dockyard.images.store import ImageStore


def _chain(top: Path, depth: int) -> None:
    top.mkdir(parents=True)
    fd = os.open(top, os.O_RDONLY)
    for _ in range(depth):
        os.mkdir("level", dir_fd=fd)
        nfd = os.open("level", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    os.close(fd)


def test_store_opens_after_a_crash_and_sweeps(deep_tmp: Path) -> None:
    data = deep_tmp / "data"
    svc = ImageService(data, lambda *a: None, lambda i: [])

    async def imp() -> str:
        async for m in svc.import_image(chunks_of(simple_layer({"f": b"x"})), repo="kept"):
            return str(m["status"])
        raise AssertionError

    image_id = asyncio.run(imp())
    root = data / "images"
    # a crash half way through unpacking, deleting and writing, each deep
    _chain(root / "tmp" / "layer-0123", 1500)
    _chain(root / "tmp" / "trash-4567" / "diff", 1500)
    _chain(root / "layers" / ("f" * 64) / "diff", 1500)       # no layer.json: never committed
    (root / "blobs" / "sha256" / ".tmp-abc-123").write_bytes(b"half")
    (root / "imagedb" / ("e" * 64 + ".json")).write_text("{not json")
    (root / "repositories.json").write_text(json.dumps({"refs": {
        "docker.io/library/kept:latest": image_id, "NOT A REF": image_id}}))
    # and modes an older version left
    for d in (root, root / "blobs", root / "blobs" / "sha256"):
        d.chmod(0o755)
    for blob in (root / "blobs" / "sha256").iterdir():
        blob.chmod(0o644)

    store = ImageStore(root)

    assert list(store.images) == [image_id]
    assert [str(r) for r in store.refs_of(image_id)] == ["docker.io/library/kept:latest"]
    assert list((root / "tmp").iterdir()) == []
    assert not (root / "layers" / ("f" * 64)).exists()
    assert not (root / "blobs" / "sha256" / ".tmp-abc-123").exists()
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    for blob in (root / "blobs" / "sha256").iterdir():
        assert stat.S_IMODE(blob.stat().st_mode) == 0o600
