"""Issue 5 items 6-9: export, diff, cp and commit through the real CLI and docker-py."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import time
import uuid
from pathlib import Path

import pytest

SCRIPT = "touch /tmp/new; rm /etc/group; echo x >> /etc/passwd; sleep 300"
EXPECTED_DIFF = ["C /etc", "D /etc/group", "C /etc/passwd", "C /tmp", "A /tmp/new"]


@pytest.fixture
def changed(daemon, name):
    """The acceptance container: running, its changes made."""
    daemon.out("run", "-d", "--name", name, "busybox", "sh", "-c", SCRIPT)
    deadline = time.time() + 10
    while time.time() < deadline:
        if daemon.docker("exec", name, "test", "-e", "/tmp/new").returncode == 0:
            break
        time.sleep(0.1)
    yield name
    daemon.docker("rm", "-f", name)


@pytest.fixture(params=["running", "stopped"])
def state_changed(request, daemon, changed):
    if request.param == "stopped":
        daemon.out("stop", "-t", "1", changed)
    return changed


@pytest.fixture
def images_to_remove(daemon):
    made: list[str] = []
    yield made
    for ref in made:
        daemon.docker("rmi", "-f", ref)


def _tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in members:
            if data is not None:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            else:
                tf.addfile(ti)
    return buf.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.mode = 0o644
    return ti, data


def _link(name: str, target: str, hard: bool = False) -> tuple[tarfile.TarInfo, None]:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    ti.linkname = target
    return ti, None


# -- diff ---------------------------------------------------------------------------

def test_diff_acceptance(daemon, state_changed):
    lines = daemon.out("diff", state_changed).splitlines()
    assert lines == EXPECTED_DIFF       # nothing for /etc/hosts, /proc, /dev ...


def test_diff_api_shape(client, changed):
    out = client.api.diff(changed)
    assert out == [{"Path": "/etc", "Kind": 0}, {"Path": "/etc/group", "Kind": 2},
                   {"Path": "/etc/passwd", "Kind": 0}, {"Path": "/tmp", "Kind": 0},
                   {"Path": "/tmp/new", "Kind": 1}]


def test_diff_unchanged_container_is_null(client, name):
    c = client.containers.run("busybox", "true", name=name, detach=True)
    try:
        c.wait(timeout=30)
        assert client.api.diff(name) is None
    finally:
        c.remove(force=True)


def test_diff_opaque_directory(daemon, name):
    # rm -rf then mkdir: overlay makes /var an opaque dir hiding the image's entries
    daemon.out("run", "--name", name, "busybox", "sh", "-c",
               "rm -rf /usr && mkdir /usr && touch /usr/x")
    try:
        lines = daemon.out("diff", name).splitlines()
        assert "C /usr" in lines
        assert "A /usr/x" in lines
        assert "D /usr/bin" in lines and "D /usr/sbin" in lines
        assert not any(x.startswith(("A /usr/bin", "C /usr/bin")) for x in lines)
    finally:
        daemon.docker("rm", "-f", name)


# -- export --------------------------------------------------------------------------

def test_export_lists_the_merged_filesystem(daemon, state_changed):
    res = daemon.docker("export", state_changed)
    assert res.returncode == 0, res.stderr
    with tarfile.open(fileobj=io.BytesIO(res.stdout)) as tf:
        names = tf.getnames()
        assert "tmp/new" in names and "bin/busybox" in names and "etc/passwd" in names
        assert "etc/group" not in names
        assert tf.extractfile("etc/passwd").read().endswith(b"x\n")
        # the engine's bind-mounted files never leak their host content
        hosts = tf.getmember("etc/hosts") if "etc/hosts" in names else None
        assert hosts is None or hosts.size == 0
        assert not any(n.startswith("proc/") and n != "proc/" for n in names)


def test_export_init_layer_files_and_owner_names(daemon, changed):
    # Docker's init layer holds the bind-mount targets as empty 0755 files;
    # owners are named from the container's passwd and group, as dockerd 20.10
    # names them (see the README for Docker 24's archives without names)
    res = daemon.docker("export", changed)
    assert res.returncode == 0, res.stderr
    with tarfile.open(fileobj=io.BytesIO(res.stdout)) as tf:
        for name in ("etc/hosts", "etc/hostname", "etc/resolv.conf", ".dockerenv"):
            m = tf.getmember(name)
            assert m.isreg() and m.size == 0, name
            assert oct(m.mode) == "0o755", name
        assert oct(tf.getmember("etc/passwd").mode) == "0o644"
        # the container removed its /etc/group: no group has a name
        assert all((m.uname, m.gname) == ("root", "") for m in tf.getmembers()
                   if (m.uid, m.gid) == (0, 0))


def test_diff_reports_every_ancestor(daemon, name):
    daemon.out("run", "--name", name, "busybox", "mkdir", "-p", "/var/spool/newdir")
    try:
        lines = daemon.out("diff", name).splitlines()
        assert lines == ["C /var", "C /var/spool", "A /var/spool/newdir"]
    finally:
        daemon.docker("rm", "-f", name)


def test_sizes_count_hardlinks_once(client, name):
    c = client.containers.run("busybox", "sh -c 'head -c 1000 /dev/zero > /f; ln /f /g'",
                              name=name, detach=True)
    try:
        c.wait(timeout=30)
        attrs = client.api._result(client.api._get(
            client.api._url("/containers/{0}/json", name), params={"size": 1}), True)
        assert attrs["SizeRw"] == 1000
        busybox = client.images.get("busybox").attrs["Size"]
        assert abs(attrs["SizeRootFs"] - (busybox + 1000)) < 64 * 1024
        assert busybox < 5_000_000                  # busybox's hardlinks once: ~2MB
    finally:
        c.remove(force=True)


def test_commit_message_author_and_cmd_with_entrypoint(client, daemon, changed,
                                                       images_to_remove):
    img = f"img-{uuid.uuid4().hex[:8]}"
    images_to_remove.append(img)
    daemon.out("commit", "-m", "my commit", "-a", "QA <qa@x>", "-c", 'CMD ["a"]',
               "-c", 'ENTRYPOINT ["b"]', changed, img)
    out = daemon.out("image", "inspect", img, "-f",
                     "{{.Comment}}|{{.Author}}|{{json .Config.Cmd}}|{{json .Config.Entrypoint}}")
    assert out.strip() == 'my commit|QA <qa@x>|["a"]|["b"]'


def test_export_pipe_to_tar_t(daemon, changed):
    p = subprocess.run(f"docker export {changed} | tar -t", shell=True, env=daemon.env(),
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "tmp/new" in p.stdout.decode().splitlines()


# -- cp ----------------------------------------------------------------------------------

def test_cp_from_container(daemon, state_changed, tmp_path):
    daemon.out("cp", f"{state_changed}:/etc/passwd", str(tmp_path) + "/")
    assert (tmp_path / "passwd").read_bytes().endswith(b"x\n")
    daemon.out("cp", f"{state_changed}:/etc", str(tmp_path / "etccopy"))
    assert (tmp_path / "etccopy" / "passwd").exists()
    assert not (tmp_path / "etccopy" / "group").exists()
    daemon.out("cp", f"{state_changed}:/etc/.", str(tmp_path / "dotcopy"))
    assert (tmp_path / "dotcopy" / "passwd").exists()


def test_cp_to_container(daemon, state_changed, tmp_path):
    f = tmp_path / "file"
    f.write_text("hello\n")
    daemon.out("cp", str(f), f"{state_changed}:/tmp/")
    d = tmp_path / "tree"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "a").write_text("a\n")
    daemon.out("cp", str(d), f"{state_changed}:/tmp/tree")
    out = tmp_path / "back"
    daemon.out("cp", f"{state_changed}:/tmp/file", str(out))
    assert out.read_text() == "hello\n"
    daemon.out("cp", f"{state_changed}:/tmp/tree/sub/a", str(tmp_path / "a"))
    assert (tmp_path / "a").read_text() == "a\n"


def test_cp_running_visible_inside(daemon, changed, tmp_path):
    f = tmp_path / "file"
    f.write_text("inside\n")
    daemon.out("cp", str(f), f"{changed}:/tmp/")
    assert daemon.out("exec", changed, "cat", "/tmp/file") == "inside\n"
    assert "A /tmp/file" in daemon.out("diff", changed).splitlines()


def test_cp_errors(daemon, changed, tmp_path):
    res = daemon.docker("cp", f"{changed}:/nonexist", str(tmp_path))
    assert res.returncode != 0
    assert f"Could not find the file /nonexist in container {changed}" in res.stderr.decode()
    f = tmp_path / "f"
    f.write_text("x")
    res = daemon.docker("cp", str(f), f"{changed}:/no/such/dir/f")
    assert res.returncode != 0
    assert "Could not find the file /no/such/dir in container" in res.stderr.decode()
    # a file where a directory is: refused (noOverwriteDirNonDir from the CLI)
    d = tmp_path / "tmp"
    d.write_text("not a dir")
    res = daemon.docker("cp", str(d), f"{changed}:/")
    assert res.returncode != 0
    assert daemon.out("exec", changed, "test", "-d", "/tmp") == ""


def test_archive_stat_header(client, changed):
    # HEAD: Docker's path stat, mode in Go's FileMode bits
    c = client.containers.get(changed)
    st = client.api.get_archive(c.id, "/etc")[1]
    assert st["name"] == "etc"
    assert st["mode"] & (1 << 31) and st["mode"] & 0o777 == 0o755
    client.api.exec_start(client.api.exec_create(c.id, ["ln", "-s", "/etc/passwd", "/tmp/pw"]))
    strm, st = client.api.get_archive(c.id, "/tmp/pw")
    assert st["mode"] & (1 << 27) and st["linkTarget"] == "/etc/passwd"
    with tarfile.open(fileobj=io.BytesIO(b"".join(strm))) as tf:
        (m,) = tf.getmembers()
        assert m.issym() and m.name == "pw" and m.linkname == "/etc/passwd"
    resp = client.api.head(client.api._url("/containers/{0}/archive", c.id),
                           params={"path": "/etc/passwd"})
    assert resp.status_code == 200
    import base64
    import json
    st = json.loads(base64.b64decode(resp.headers["X-Docker-Container-Path-Stat"]))
    assert st["name"] == "passwd" and st["mode"] == 0o644 and st["size"] > 0


def test_cp_follow_link(daemon, client, changed, tmp_path):
    client.api.exec_start(client.api.exec_create(changed, ["ln", "-s", "/etc", "/tmp/etcl"]))
    daemon.out("cp", "-L", f"{changed}:/tmp/etcl", str(tmp_path / "out"))
    assert (tmp_path / "out" / "passwd").exists()
    f = tmp_path / "via"
    f.write_text("v")
    daemon.out("cp", str(f), f"{changed}:/tmp/etcl")       # into the link's directory
    assert daemon.out("exec", changed, "cat", "/etc/via") == "v"


def test_cp_image_without_tar(daemon, name, tmp_path):
    # busybox here has tar, but the engine never runs anything in the container:
    # a stopped container with /bin removed still copies both ways
    daemon.out("run", "--name", name, "busybox", "sh", "-c", "rm -rf /bin/tar /bin/sh")
    try:
        f = tmp_path / "f"
        f.write_text("ok")
        daemon.out("cp", str(f), f"{name}:/f")
        daemon.out("cp", f"{name}:/f", str(tmp_path / "g"))
        assert (tmp_path / "g").read_text() == "ok"
    finally:
        daemon.docker("rm", "-f", name)


# -- hostile archives ------------------------------------------------------------------

@pytest.fixture
def host_dir():
    d = Path("/tmp") / f"dockyard-hostile-{uuid.uuid4().hex[:8]}"
    d.mkdir()
    (d / "secret").write_text("host secret\n")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _put(client, cid: str, path: str, data: bytes) -> Exception | None:
    try:
        client.api.put_archive(cid, path, data)
    except Exception as e:  # noqa: BLE001 - the error is what the test looks at
        return e
    return None


@pytest.mark.parametrize("stopped", [False, True])
def test_hostile_tar_never_writes_outside(daemon, client, name, host_dir, stopped):
    cid = daemon.out("run", "-d", "--name", name, "busybox", "sh", "-c",
                     f"ln -s {host_dir} /tmp/abs; "
                     f"ln -s ../../../../../../../../../..{host_dir} /tmp/rel; sleep 300"
                     ).strip()
    try:
        time.sleep(0.5)
        if stopped:
            daemon.out("stop", "-t", "1", name)
        cdir = daemon.data_root / "containers" / cid
        dotdot = "../" * 12
        # `..` out of the destination: refused
        err = _put(client, cid, "/tmp", _tar(_file("../escape", b"x")))
        assert err is not None
        err = _put(client, cid, "/", _tar(_file(f"{dotdot}{host_dir.relative_to('/')}/p1",
                                                b"x")))
        assert err is not None
        # an absolute symlink in the archive, then a file through it
        _put(client, cid, "/tmp", _tar(_link("evil", str(host_dir)), _file("evil/p2", b"x")))
        # a relative symlink climbing out of the destination: refused
        err = _put(client, cid, "/tmp", _tar(_link("up", "../../../../../../.."),
                                             _file("up/p3", b"x")))
        assert err is not None
        # the container's own symlinks as extraction point and as parent
        _put(client, cid, "/tmp/abs", _tar(_file("p4", b"x")))
        _put(client, cid, "/tmp", _tar(_file("rel/p5", b"x")))
        # hardlinks to files outside the destination or the root: refused
        err = _put(client, cid, "/tmp", _tar(_link("hl", f"{dotdot}etc/shadow", hard=True)))
        assert err is not None
        err = _put(client, cid, "/tmp", _tar(_link("hl2", str(host_dir / "secret"),
                                                   hard=True)))
        assert err is not None
        assert sorted(os.listdir(host_dir)) == ["secret"]
        assert not (cdir / "escape").exists()
        assert not (cdir.parent / "escape").exists()
        # what went through symlinks landed inside the container's root
        out = subprocess.run(f"docker export {name} | tar -t", shell=True, env=daemon.env(),
                             capture_output=True, timeout=60).stdout.decode().splitlines()
        inside = str(host_dir).lstrip("/")
        assert f"{inside}/p2" in out and f"{inside}/p4" in out and f"{inside}/p5" in out
    finally:
        daemon.docker("rm", "-f", name)


def test_hostile_path_never_reads_outside(client, daemon, name, host_dir):
    cid = daemon.out("run", "-d", "--name", name, "busybox", "sh", "-c",
                     f"ln -s {host_dir} /tmp/abs; ln -s ../../../../../..{host_dir} /tmp/rel; "
                     "sleep 300").strip()
    try:
        time.sleep(0.5)
        for p in ("/tmp/abs/secret", "/tmp/rel/secret", f"/../../../..{host_dir}/secret",
                  "/tmp/abs/"):
            with pytest.raises(Exception) as ei:
                strm, _ = client.api.get_archive(cid, p)
                b"".join(strm)
            assert "Could not find the file" in str(ei.value)
    finally:
        daemon.docker("rm", "-f", name)


# -- commit ------------------------------------------------------------------------------

def test_commit_acceptance(daemon, state_changed, images_to_remove):
    img = f"img-{uuid.uuid4().hex[:8]}"
    images_to_remove.append(img)
    daemon.out("commit", state_changed, img)
    res = daemon.docker("run", "--rm", img, "sh", "-c",
                        "ls /tmp/new && tail -1 /etc/passwd && ! test -e /etc/group")
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode().splitlines() == ["/tmp/new", "x"]
    hist = daemon.out("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Size}}", img)
    top = hist.splitlines()[0]
    assert top.startswith("sh -c touch /tmp/new")
    # mount points and engine files are not in the layer
    listing = daemon.out("run", "--rm", img, "ls", "-la", "/etc")
    assert "group" not in listing


def test_commit_options(client, daemon, changed, images_to_remove):
    img = f"img-{uuid.uuid4().hex[:8]}"
    images_to_remove.append(f"{img}:v1")
    daemon.out("commit", "--change", "ENV FOO=bar", "--change", 'CMD ["cat", "/tmp/new"]',
               "-m", "the message", "-a", "someone", changed, f"{img}:v1")
    attrs = client.images.get(f"{img}:v1").attrs
    assert "FOO=bar" in attrs["Config"]["Env"]
    assert attrs["Config"]["Cmd"] == ["cat", "/tmp/new"]
    assert attrs["Author"] == "someone"
    h = client.api.history(f"{img}:v1")[0]
    assert h["Comment"] == "the message"
    assert daemon.docker("run", "--rm", f"{img}:v1").returncode == 0
    # the container is running again after the (default) pause
    assert client.containers.get(changed).status == "running"


def test_commit_events_and_no_pause(client, changed, images_to_remove):
    since = int(time.time()) - 1
    res = client.api.commit(changed, pause=False)
    images_to_remove.append(res["Id"])
    assert res["Id"].startswith("sha256:")
    evs = client.api.events(since=since, until=int(time.time()) + 1, decode=True,
                            filters={"container": changed})
    actions = [e["Action"] for e in evs]
    assert "commit" in actions and "pause" not in actions


def test_commit_invalid_repo(client, changed):
    import docker

    with pytest.raises(docker.errors.APIError) as ei:
        client.api.commit(changed, repository="UPPER")
    assert ei.value.status_code == 400
    assert "must be lowercase" in str(ei.value)
    with pytest.raises(docker.errors.APIError) as ei:
        client.api.commit(changed, repository="ok", tag="bad tag")
    assert ei.value.status_code == 400


def test_commit_unchanged_is_empty_layer(client, name, images_to_remove):
    c = client.containers.run("busybox", "true", name=name, detach=True)
    try:
        c.wait(timeout=30)
        res = client.api.commit(name)
        images_to_remove.append(res["Id"])
        base = client.images.get("busybox").attrs["RootFS"]["Layers"]
        assert client.images.get(res["Id"]).attrs["RootFS"]["Layers"] == base
    finally:
        c.remove(force=True)
