"""Images of many layers, as Dockerfiles of many steps make them: past the
38 or so whose full paths fit one page of overlay mount options, building,
running, `diff`, `cp`, `export`, `commit` and building on top all work."""

from __future__ import annotations

import io
import tarfile
import uuid
from pathlib import Path

from tests.integration.build.test_build_cli import build

STEPS = 100


def test_an_image_of_a_hundred_layers(daemon, tmp_path: Path) -> None:
    tag = f"many-{uuid.uuid4().hex[:8]}"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM busybox\n" + "".join(f"RUN echo {i} > /f{i}\n" for i in range(1, STEPS + 1)))
    res = build(daemon, ctx, "-q", "-t", tag, timeout=600)
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    names = []
    try:
        layers = int(daemon.out("image", "inspect", "-f", "{{len .RootFS.Layers}}", tag))
        assert layers == STEPS + 1
        assert daemon.out("run", "--rm", tag, "cat", "/f1", f"/f{STEPS}").split() == [
            "1", str(STEPS)]
        name = f"t-{uuid.uuid4().hex[:10]}"
        names.append(name)
        daemon.out("run", "--name", name, tag, "sh", "-c", "echo changed > /f50; echo x > /new")
        assert {"A /new", "C /f50"} <= set(daemon.out("diff", name).splitlines())
        copied = daemon.docker("cp", f"{name}:/f{STEPS}", "-", check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(copied)) as tf:
            member = tf.extractfile(f"f{STEPS}")
            assert member is not None and member.read() == f"{STEPS}\n".encode()
        exported = daemon.docker("export", name, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(exported)) as tf:
            got = {m: tf.extractfile(m).read() for m in ("f1", "f50", "new")}  # type: ignore[union-attr]
        assert got == {"f1": b"1\n", "f50": b"changed\n", "new": b"x\n"}
        daemon.out("commit", name, f"{tag}:committed")
        (ctx / "Dockerfile").write_text(
            f"FROM {tag}:committed\nCOPY Dockerfile /copied\nRUN cat /f50 /new > /both\n")
        res = build(daemon, ctx, "-q", "-t", f"{tag}:top", timeout=300)
        assert res.returncode == 0, res.stderr.decode()[-2000:]
        assert daemon.out("run", "--rm", f"{tag}:top", "cat", "/both") == "changed\nx\n"
    finally:
        for n in names:
            daemon.docker("rm", "-f", n)
        daemon.docker("rmi", "-f", tag, f"{tag}:committed", f"{tag}:top")
