"""docker import / load through the real CLI: bad input, --change, progress."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import shutil
import subprocess
import tarfile
import uuid

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _store_files(daemon) -> list[str]:
    root = daemon.data_root / "images"
    return sorted(str(p.relative_to(root)) for d in ("layers", "blobs", "tmp")
                  for p in (root / d).rglob("*"))


def test_import_garbage_is_a_client_error(daemon):
    before = _store_files(daemon)
    res = daemon.docker("import", "-", "garbage-x", input=b"notatar\n")
    assert res.returncode != 0
    err = res.stderr.decode()
    assert "Error processing tar file(exit status 1): unexpected EOF" in err
    assert "LayerError" not in err and "500" not in err
    assert _store_files(daemon) == before
    assert daemon.docker("image", "inspect", "garbage-x").returncode != 0
    res = daemon.docker("load", input=b"this is no archive at all")
    assert res.returncode != 0 and _store_files(daemon) == before


def test_import_api_status(client):
    import docker

    try:
        client.api.import_image_from_data(b"notatar\n", repository="garbage-y")
    except docker.errors.APIError as e:
        assert e.status_code == 400
        assert "unexpected EOF" in str(e)
    else:
        raise AssertionError("import of garbage succeeded")


def test_import_cmd_kept_with_entrypoint(daemon):
    ref = f"imp-{uuid.uuid4().hex[:8]}:1"
    try:
        daemon.out("import", "--change", 'CMD ["echo","imported"]',
                   "--change", 'ENTRYPOINT ["/bin/sh","-c"]', "-", ref,
                   input=_tar({"x": b"1"}))
        out = daemon.out("image", "inspect", ref, "-f",
                         "{{json .Config.Cmd}} {{json .Config.Entrypoint}}")
        assert out.strip() == '["echo","imported"] ["/bin/sh","-c"]'
    finally:
        daemon.docker("rmi", "-f", ref)


def _run_on_tty(daemon, *args: str) -> str:
    """Run the docker CLI with stdout on a pseudo-terminal (it shows progress then)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([DOCKER, *args], env=daemon.env(), stdout=slave,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        r, _, _ = select.select([master], [], [], 60)
        if not r:
            break
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(60)
    os.close(master)
    assert proc.returncode == 0, proc.stderr.read()  # type: ignore[union-attr]
    return b"".join(chunks).decode(errors="replace")


def test_load_shows_layer_progress(daemon, client, tmp_path):
    ref = f"loadme-{uuid.uuid4().hex[:8]}:1"
    daemon.out("import", "-", ref, input=_tar({"big": os.urandom(200_000)}))
    archive = tmp_path / "x.tar"
    daemon.out("save", "-o", str(archive), ref)
    diff_id = client.images.get(ref).attrs["RootFS"]["Layers"][0]
    daemon.out("rmi", ref)
    try:
        out = _run_on_tty(daemon, "load", "-i", str(archive))
        short = diff_id.split(":", 1)[1][:12]
        # (the CLI draws the bar itself, only on terminals wider than 110 columns)
        assert f"{short}: Loading layer  204.8kB/204.8kB" in out
        assert f"Loaded image: {ref}" in out
        daemon.out("rmi", ref)
        # the API: Docker's JSON progress messages, then the stream line
        with open(archive, "rb") as f:
            resp = client.api._post(client.api._url("/images/load"), data=f.read(),
                                    params={"quiet": "0"})
        msgs = [json.loads(line) for line in resp.text.splitlines() if line.strip()]
        prog = [m for m in msgs if m.get("status") == "Loading layer"]
        assert prog and all(m["id"] == short for m in prog)
        total = prog[-1]["progressDetail"]["total"]
        assert prog[-1]["progressDetail"] == {"current": total, "total": total}
        assert prog[-1]["progress"].startswith("[" + "=" * 50 + ">]")
        assert msgs[-1] == {"stream": f"Loaded image: {ref}\n"}
        daemon.out("rmi", ref)
        quiet = daemon.out("load", "-q", "-i", str(archive))
        assert quiet.strip() == f"Loaded image: {ref}"
    finally:
        daemon.docker("rmi", "-f", ref)


def test_container_config_in_image_inspect_at_every_api_version(daemon):
    """dockerd showed Container and a whole ContainerConfig object (a zero
    config for an image without one) until API 1.45; docker-compose v1 reads
    ContainerConfig.Volumes when it recreates a container, at the newest
    version the engine offers, so dockyard keeps both at every version."""
    import docker
    old = docker.APIClient(base_url=f"unix://{daemon.socket}", version="1.38")
    img = old.inspect_image("busybox")
    assert img["Container"] == ""
    assert img["ContainerConfig"]["Volumes"] is None
    assert img["ContainerConfig"]["Hostname"] == ""
    new = docker.APIClient(base_url=f"unix://{daemon.socket}", version="1.51")
    assert new.inspect_image("busybox")["ContainerConfig"]["Volumes"] is None
