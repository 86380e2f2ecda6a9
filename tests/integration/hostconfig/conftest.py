"""Fixtures for the HostConfig integration tests: an image with a non-root
user, and a `docker run` that must fail and leave nothing behind."""

from __future__ import annotations

import io
import json
import tarfile
import time
import uuid

import pytest
from hc_util import traces_of


@pytest.fixture
def failed_run(daemon):  # type: ignore[no-untyped-def]
    """`failed_run(*args)` runs `docker run --rm --name N ARGS busybox true`,
    asserts it failed, checks that the container it may have created left no
    trace, and returns (exit code, stderr); `.last_ids` holds the IDs of the
    containers it created."""

    def go(*args: str, image: str = "busybox", cmd: tuple[str, ...] = ("true",)
           ) -> tuple[int, str]:
        name = f"f-{uuid.uuid4().hex[:10]}"
        since = f"{time.time() - 0.001:.6f}"
        res = daemon.docker("run", "--rm", "--name", name, *args, image, *cmd, timeout=60)
        err = res.stderr.decode()
        assert res.returncode != 0, f"expected failure, got: {res.stdout!r}"
        ids = set(daemon.out("events", "--since", since, "--until", f"{time.time():.6f}",
                             "--filter", f"container={name}",
                             "--format", "{{.Actor.ID}}").split())
        for cid in ids:
            assert traces_of(daemon, cid) == [], f"{args}: left behind"
        go.last_ids = ids  # type: ignore[attr-defined]
        return res.returncode, err

    return go


def _busybox_layer(daemon) -> bytes:  # type: ignore[no-untyped-def]
    """The busybox image's one layer, from `docker save`."""
    saved = daemon.docker("save", "busybox", check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(saved)) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
        layer = manifest[0]["Layers"][0]
        return tf.extractfile(layer).read()  # type: ignore[union-attr]


@pytest.fixture(scope="session")
def app_image(daemon) -> str:  # type: ignore[no-untyped-def]
    """busybox plus a user `app` (1000:1000, extra group `staff2` 1001), made
    the way users do without a Dockerfile: `docker import` of a rootfs tar."""
    tag = "hostconfig-app:latest"
    out = io.BytesIO()
    extra = {
        "etc/passwd": b"app:x:1000:1000:app:/home/app:/bin/sh\n",
        "etc/group": b"app:x:1000:\nstaff2:x:1001:app\n",
    }
    with tarfile.open(fileobj=io.BytesIO(_busybox_layer(daemon))) as src, \
            tarfile.open(fileobj=out, mode="w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            key = member.name.removeprefix("./")
            if key in extra and data is not None:
                data += extra.pop(key)
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
        home = tarfile.TarInfo("home/app")
        home.type, home.mode, home.uid, home.gid = tarfile.DIRTYPE, 0o755, 1000, 1000
        dst.addfile(home)
    assert not extra, f"busybox layer lacks {extra}"
    daemon.docker("import", "-", tag, input=out.getvalue(), check=True)
    return tag

