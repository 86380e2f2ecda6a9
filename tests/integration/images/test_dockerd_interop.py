"""Interop with a real Docker Engine (Debian's docker.io): save/load both ways.

Starts a private dockerd on a temporary socket and data root (no network:
nothing is pulled), makes images there with `docker import` and a classic
`docker build` that only COPYs (no container runs), and checks:
* dockerd's `docker save` loads into our store with the same image IDs and
  layers whose contents match;
* our save loads into dockerd with the same image IDs.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dockyard.images.service import ImageService
from tests.integration.refengine import reference_dockerd
from tests.integration.robustutil import read_response, send_request

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(shutil.which("dockerd") is None, reason="dockerd (docker.io) not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="dockerd needs root"),
    pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="no busybox-static"),
]


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    with reference_dockerd(tmp_path_factory.mktemp("refdocker")) as cli:
        if cli is None:
            pytest.skip("dockerd did not start")
        yield cli


def docker(cli: list[str], *args: str, input: bytes | None = None) -> str:
    r = subprocess.run([*cli, *args], input=input, capture_output=True, check=False)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode().strip()


def rootfs_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.add("/bin/busybox", "bin/busybox")
        ti = tarfile.TarInfo("bin/sh")
        ti.type, ti.linkname = tarfile.SYMTYPE, "busybox"
        tf.addfile(ti)
        data = b"root:x:0:0:root:/root:/bin/sh\n"
        ti = tarfile.TarInfo("etc/passwd")
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    data = await asyncio.to_thread(path.read_bytes)
    for i in range(0, len(data), 1 << 16):
        yield data[i:i + (1 << 16)]


def test_save_load_both_ways(dockerd: list[str], tmp_path: Path) -> None:
    cli = dockerd
    base_id = docker(cli, "import", "-c", 'CMD ["sh"]', "-c", "ENV FOO=bar", "-",
                     "interop/base:1", input=rootfs_tar())
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "hello.txt").write_text("hello from dockerd\n")
    (ctx / "Dockerfile").write_text(
        "FROM interop/base:1\nCOPY hello.txt /srv/hello.txt\nENV X=1\nLABEL k=v\n")
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    r = subprocess.run([*cli, "build", "-q", "-t", "interop/built:2", str(ctx)],
                       capture_output=True, env=env, check=False)
    assert r.returncode == 0, r.stderr.decode()
    built_id = docker(cli, "image", "inspect", "-f", "{{.Id}}", "interop/built:2")
    their_save = tmp_path / "theirs.tar"
    docker(cli, "save", "-o", str(their_save), "interop/base:1", "interop/built:2")

    events: list[tuple[str, str, dict[str, str]]] = []
    svc = ImageService(tmp_path / "ours", lambda a, i, at: events.append((a, i, at)),
                       lambda _id: [])

    async def ours() -> tuple[list[dict[str, str]], bytes]:
        msgs = [m async for m in svc.load(_chunks(their_save))]
        await svc.ensure_default_busybox()
        data = b"".join([c async for c in svc.save(["interop/built:2", "busybox:latest"])])
        return msgs, data

    msgs, our_save = asyncio.run(ours())
    assert {"stream": "Loaded image: interop/built:2\n"} in msgs
    assert svc.get("interop/base:1").id == base_id
    built = svc.get("interop/built:2")
    assert built.id == built_id
    top = Path(svc.lower_dirs(built.id)[0])
    assert (top / "srv/hello.txt").read_text() == "hello from dockerd\n"
    assert svc.inspect("interop/built:2")["Config"]["Labels"] == {"k": "v"}
    their_size = int(docker(cli, "image", "inspect", "-f", "{{.Size}}", "interop/built:2"))
    assert svc.inspect("interop/built:2")["Size"] == their_size
    busybox_id = svc.get("busybox").id

    docker(cli, "rmi", "interop/built:2", "interop/base:1")
    out = docker(cli, "load", input=our_save)
    assert "Loaded image: interop/built:2" in out and "Loaded image: busybox:latest" in out
    assert docker(cli, "image", "inspect", "-f", "{{.Id}}", "interop/built:2") == built_id
    assert docker(cli, "image", "inspect", "-f", "{{.Id}}", "busybox:latest") == busybox_id
    # the embedded busybox is a working root filesystem for real Docker too
    r = subprocess.run([*cli, "run", "--rm", "--network", "none", "busybox",
                        "sh", "-c", "echo ok; ls -ld /tmp"], capture_output=True, check=False)
    if r.returncode == 0:
        assert r.stdout.decode().startswith("ok\ndrwxrwxrwt")


@pytest.mark.parametrize("quiet", ["1", "0"])
def test_load_of_a_non_archive_answers_as_dockerd(dockerd: list[str], daemon, quiet: str) -> None:
    """Both answer 200 and put the error in the stream's last record."""
    answers = []
    for sock in (dockerd[-1].removeprefix("unix://"), daemon.socket):
        s = send_request(sock, "POST", f"/v1.41/images/load?quiet={quiet}",
                         b"this is no image archive")
        status, body = read_response(s)
        s.close()
        answers.append((status, [json.loads(line) for line in body.splitlines()]))
    assert answers[0] == answers[1]
    assert answers[1][0] == 200
