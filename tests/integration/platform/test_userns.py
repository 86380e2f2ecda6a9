"""Issue 4, user namespaces: `--userns host`, and the daemon option
`userns-remap` (daemon.json), run by a daemon of its own."""

from __future__ import annotations

import io
import json
import pwd
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def test_userns_host_is_accepted(daemon):
    res = daemon.docker("run", "--rm", "--userns", "host", "busybox", "cat",
                        "/proc/self/uid_map")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [b"0", b"0", b"4294967295"]


def test_bad_userns_mode_is_400(daemon):
    res = daemon.docker("run", "--rm", "--userns", "private", "busybox", "true")
    assert res.returncode == 125
    assert b"invalid USER mode" in res.stderr


@pytest.fixture(scope="module")
def dockremap_guard() -> Iterator[None]:
    """`default` creates the dockremap user and its subordinate ids; take
    them away again if this module's daemons made them."""
    try:
        pwd.getpwnam("dockremap")
        existed = True
    except KeyError:
        existed = False
    yield
    if not existed:
        # userdel also drops the user's /etc/subuid and /etc/subgid ranges
        subprocess.run(["userdel", "dockremap"], capture_output=True, check=False)


@pytest.fixture
def remapped(private_daemon, tmp_path, dockremap_guard):  # type: ignore[no-untyped-def]
    cfg = tmp_path / "daemon.json"
    cfg.write_text(json.dumps({"userns-remap": "default"}))
    return private_daemon(["--config-file", str(cfg)])


def _remap_root() -> int:
    for line in open("/etc/subuid"):
        name, start, _ = line.strip().split(":")
        if name == "dockremap":
            return int(start)
    raise AssertionError("no dockremap range in /etc/subuid")


def test_root_in_container_is_a_subordinate_uid_on_host(remapped):
    d = remapped
    res = d.docker("run", "--rm", "busybox", "sh", "-c", "id -u; cat /proc/self/uid_map")
    assert res.returncode == 0, res.stderr.decode() + d.log()
    lines = res.stdout.decode().splitlines()
    root = _remap_root()
    assert lines[0] == "0"
    assert lines[1].split() == ["0", str(root), "65536"]
    assert root >= 100000

    cid = d.out("run", "-d", "busybox", "sleep", "60").strip()
    pid = d.out("inspect", "--format", "{{.State.Pid}}", cid).strip()
    host_uid = subprocess.run(["ps", "-o", "uid=", "-p", pid], capture_output=True,
                              check=True).stdout.decode().strip()
    assert host_uid == str(root)
    # the rootfs and /etc files are the container root's to change
    out = d.out("exec", cid, "sh", "-c",
                "touch /new && mkdir -p /var/x && echo 1 >> /etc/hosts && "
                "stat -c %u:%g /etc/passwd /new && echo ok")
    assert out.split() == ["0:0", "0:0", "ok"]
    d.docker("rm", "-f", cid)


def test_userns_host_opts_out_of_remapping(remapped):
    out = remapped.out("run", "--rm", "--userns", "host", "busybox", "cat", "/proc/self/uid_map")
    assert out.split() == ["0", "0", "4294967295"]


def test_remap_rules(remapped):
    res = remapped.docker("run", "--rm", "--privileged", "busybox", "true")
    assert res.returncode == 125
    assert b"privileged mode is incompatible with user namespaces" in res.stderr
    # net.* sysctls still work: the daemon sets them in the netns it owns
    out = remapped.out("run", "--rm", "--sysctl", "net.ipv4.ip_forward=1", "busybox",
                       "cat", "/proc/sys/net/ipv4/ip_forward")
    assert out == "1\n"


def test_unknown_remap_user_stops_the_daemon(private_daemon, tmp_path):
    cfg = tmp_path / "daemon.json"
    cfg.write_text(json.dumps({"userns-remap": "no-such-user-xyz"}))
    with pytest.raises(RuntimeError) as e:
        private_daemon(["--config-file", str(cfg)])
    assert 'unable to find entry "no-such-user-xyz"' in str(e.value)


def test_data_root_the_remap_root_cannot_reach_stops_the_daemon(private_daemon, tmp_path):
    cfg = tmp_path / "daemon.json"
    cfg.write_text(json.dumps({"userns-remap": "default"}))
    with pytest.raises(RuntimeError) as e:
        private_daemon(["--config-file", str(cfg)], base_mode=0o700)
    assert "restricts access to the remapped root" in str(e.value)


def _busybox_with_app_file(d) -> bytes:  # type: ignore[no-untyped-def]
    """busybox's layer plus /srv/app/f owned by 1234:5678, as a tar."""
    saved = d.docker("save", "busybox", check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(saved)) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
        layer = tf.extractfile(manifest[0]["Layers"][0]).read()  # type: ignore[union-attr]
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(layer)) as src, tarfile.open(fileobj=out,
                                                                      mode="w") as dst:
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m) if m.isfile() else None)
        for name, kind in (("srv", tarfile.DIRTYPE), ("srv/app", tarfile.DIRTYPE),
                           ("srv/app/f", tarfile.REGTYPE)):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode = kind, 0o755 if kind == tarfile.DIRTYPE else 0o644
            if kind == tarfile.REGTYPE:
                ti.uid, ti.gid, ti.size = 1234, 5678, 5
            dst.addfile(ti, io.BytesIO(b"data\n") if kind == tarfile.REGTYPE else None)
    return out.getvalue()


def test_volumes_and_binds_under_remapping(remapped, tmp_path):
    """Volumes belong to the remapped root; a volume filled from the image
    keeps the image's owners as the container sees them; a missing `-v`
    source directory is the container root's; a tmpfs volume works."""
    d = remapped
    root = _remap_root()
    d.docker("import", "--change", "VOLUME /srv/app", "--change", "ENV PATH=/bin", "-",
             "app:v", input=_busybox_with_app_file(d), check=True)
    d.out("volume", "create", "named")
    d.out("volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs",
          "--opt", "o=size=2m", "scratch")
    src = tmp_path / "made" / "here"
    out = d.out("run", "--name", "cv", "-v", "named:/n", "-v", "scratch:/t", "-v", f"{src}:/b",
                "app:v", "sh", "-c",
                "echo w > /n/w && echo t > /t/t && echo b > /b/b && stat -c %u:%g /srv/app/f "
                "/n/w /b/b")
    assert out.split() == ["1234:5678", "0:0", "0:0"]
    mounts = {m["Destination"]: m for m in json.loads(d.out("inspect", "cv"))[0]["Mounts"]}
    anon = Path(mounts["/srv/app"]["Source"])
    named = Path(mounts["/n"]["Source"])
    assert (anon / "f").stat().st_uid == root + 1234
    assert (named / "w").stat().st_uid == root and named.stat().st_uid == root
    assert src.stat().st_uid == root and (src / "b").stat().st_uid == root
    d.out("rm", "-v", "cv")
