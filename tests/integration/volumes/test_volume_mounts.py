"""Volumes, binds and tmpfs mounts on containers, end to end with the docker
CLI: what the container sees, what inspect and ps report, what is refused
(with dockerd's texts) and that a refused create leaves nothing behind."""

from __future__ import annotations

import hashlib
import os
import subprocess
import uuid
from pathlib import Path

import docker
import pytest
from volutil import LISTING, inspect, volume_dirs

SUM = "sha256sum /d/payload | cut -d' ' -f1"


def _run(daemon, *args: str) -> subprocess.CompletedProcess[bytes]:  # type: ignore[no-untyped-def]
    return daemon.docker("run", "--rm", *args)


def test_named_volume_keeps_data_between_containers(daemon, vol, name):
    v = vol()
    daemon.out("volume", "create", v)
    written = daemon.out("run", "--rm", "-v", f"{v}:/d", "busybox", "sh", "-c",
                         f"head -c 4000000 /dev/urandom > /d/payload && echo kept > /d/f && "
                         f"{SUM}").strip()
    assert daemon.out("run", "--rm", "-v", f"{v}:/d", "busybox", "cat", "/d/f") == "kept\n"
    again = daemon.out("run", "--rm", "-v", f"{v}:/d:ro", "busybox", "sh", "-c", SUM).strip()
    assert written == again
    # the bytes are in the volume's directory on the host
    mp = Path(daemon.out("volume", "inspect", "-f", "{{.Mountpoint}}", v).strip())
    assert hashlib.sha256((mp / "payload").read_bytes()).hexdigest() == written
    daemon.out("create", "--name", name, "-v", f"{v}:/d:ro", "busybox", "true")
    mounts = inspect(daemon, name)["Mounts"]
    assert mounts == [{"Type": "volume", "Name": v, "Source": str(mp), "Destination": "/d",
                       "Driver": "local", "Mode": "ro", "RW": False, "Propagation": ""}]
    daemon.out("rm", name)


def test_bind_mounts(daemon, tmp_path, name):
    host = tmp_path / "missing" / "dir"
    res = _run(daemon, "-v", f"{host}:/h", "busybox", "sh", "-c", "touch /h/x && echo ok")
    assert res.stdout == b"ok\n", res.stderr
    assert (host / "x").is_file()                   # -v makes a missing source directory
    # read-only
    res = _run(daemon, "-v", f"{host}:/h:ro", "busybox", "touch", "/h/y")
    assert res.returncode != 0 and b"Read-only file system" in res.stderr
    assert not (host / "y").exists()
    # a single file, both ways
    data = os.urandom(1 << 20)
    f = tmp_path / "one.bin"
    f.write_bytes(data)
    out = daemon.out("run", "--rm", "-v", f"{f}:/etc/one.bin", "busybox", "sh", "-c",
                     "sha256sum /etc/one.bin | cut -d' ' -f1; echo more >> /etc/one.bin")
    assert out.strip() == hashlib.sha256(data).hexdigest()
    assert f.read_bytes() == data + b"more\n"
    # SELinux labels: nothing to relabel on this host, and the create says so
    res = _run(daemon, "-v", f"{host}:/h:z", "busybox", "cat", "/h/x")
    assert res.returncode == 0, res.stderr
    assert b"SELinux is not enabled on this host" in res.stderr
    daemon.out("create", "--name", name, "-v", f"{host}:/h:ro,rslave", "busybox", "true")
    assert inspect(daemon, name)["Mounts"] == [{
        "Type": "bind", "Source": str(host), "Destination": "/h", "Mode": "ro,rslave",
        "RW": False, "Propagation": "rslave"}]
    daemon.out("rm", name)


def test_mount_bind_of_a_missing_source_is_dockers_error(daemon, failed_run):
    code, err = failed_run("--mount", "type=bind,src=/nonexistent-dy,dst=/h")
    assert code == 125
    assert ('invalid mount config for type "bind": bind source path does not exist: '
            "/nonexistent-dy") in err
    assert not os.path.exists("/nonexistent-dy")


def test_mount_flag_types(daemon, vol, tmp_path, name):
    v = vol()
    (tmp_path / "in").write_text("from host\n")
    daemon.out("create", "--name", name,
               "--mount", f"type=volume,src={v},dst=/v,volume-label=color=blue",
               "--mount", f"type=bind,src={tmp_path},dst=/b,readonly,bind-propagation=rslave",
               "--mount", "type=tmpfs,dst=/t,tmpfs-size=2m,tmpfs-mode=1770",
               "busybox", "sh", "-c",
               "echo hi > /v/f && cat /b/in && df -k /t | tail -1 && stat -c %a /t && "
               "touch /b/no 2>/dev/null || echo ro")
    out = daemon.out("start", "-a", name).splitlines()
    assert out[0] == "from host"
    assert out[1].split()[1] == "2048" and out[2] == "1770" and out[3] == "ro"
    assert daemon.out("volume", "inspect", "-f", "{{json .Labels}}", v).strip() == \
        '{"color":"blue"}'
    mounts = {m["Destination"]: m for m in inspect(daemon, name)["Mounts"]}
    assert mounts["/v"]["Mode"] == "z" and mounts["/v"]["RW"] is True
    assert (mounts["/b"]["Type"], mounts["/b"]["RW"], mounts["/b"]["Propagation"]) == (
        "bind", False, "rslave")
    assert mounts["/t"] == {"Type": "tmpfs", "Source": "", "Destination": "/t", "Mode": "",
                            "RW": True, "Propagation": ""}
    daemon.out("rm", name)


def test_tmpfs_size_and_mode(daemon):
    out = daemon.out("run", "--rm", "--tmpfs", "/run:size=8m,mode=1777", "busybox", "sh", "-c",
                     "df -k /run | tail -1; stat -c %a /run; grep ' /run ' /proc/mounts")
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["tmpfs", "8192"]
    assert lines[1] == "1777"
    assert "tmpfs" in lines[2] and "size=8192k" in lines[2]


def test_image_volume_is_filled_from_the_image(daemon, app_image, vol, name):
    tag, listing = app_image
    before = set(daemon.out("volume", "ls", "-q").split())
    daemon.out("create", "--name", name, tag, "sh", "-c", LISTING)
    assert daemon.out("start", "-a", name) == listing
    m = inspect(daemon, name)["Mounts"]
    assert len(m) == 1 and m[0]["Destination"] == "/var/lib/app" and m[0]["Mode"] == ""
    anon = m[0]["Name"]
    assert len(anon) == 64 and anon not in before
    labels = daemon.out("volume", "inspect", "-f", "{{json .Labels}}", anon).strip()
    assert labels == '{"com.docker.volume.anonymous":""}'
    # a named volume over the same path is filled the same way, once
    v = vol()
    out = daemon.out("run", "--rm", "-v", f"{v}:/var/lib/app", tag, "sh", "-c",
                     f"{LISTING} && rm /var/lib/app/payload")
    assert out == listing
    out = daemon.out("run", "--rm", "-v", f"{v}:/var/lib/app", tag, "ls", "/var/lib/app")
    assert "payload" not in out.split()            # not empty: not filled again
    # nocopy
    w = vol()
    out = daemon.out("run", "--rm", "-v", f"{w}:/var/lib/app:nocopy", tag, "ls", "-A",
                     "/var/lib/app")
    assert out == ""
    # rm -v takes the anonymous volume, never the named one
    daemon.out("rm", "-v", name)
    vols = set(daemon.out("volume", "ls", "-q").split())
    assert anon not in vols and v in vols and w in vols


def test_rm_and_autoremove_keep_dockers_volume_rules(daemon, vol, name):
    v = vol()
    daemon.out("run", "--name", name, "-v", "/anon", "-v", f"{v}:/named", "busybox", "true")
    anon = next(m["Name"] for m in inspect(daemon, name)["Mounts"]
                if m["Destination"] == "/anon")
    daemon.out("rm", name)                          # without -v: kept
    assert anon in daemon.out("volume", "ls", "-q").split()
    daemon.out("volume", "rm", anon)
    before = set(daemon.out("volume", "ls", "-q").split())
    daemon.out("run", "--rm", "-v", "/anon", "-v", f"{v}:/named", "busybox", "true")
    after = set(daemon.out("volume", "ls", "-q").split())
    assert after == before and v in after           # --rm takes anonymous volumes only
    # an anonymous volume another container still uses survives rm -v
    daemon.out("create", "--name", name, "-v", "/shared", "busybox", "true")
    anon = inspect(daemon, name)["Mounts"][0]["Name"]
    other = f"{name}-b"
    daemon.out("create", "--name", other, "--volumes-from", name, "busybox", "true")
    daemon.out("rm", "-v", name)
    assert anon in daemon.out("volume", "ls", "-q").split()
    daemon.out("rm", "-v", other)
    assert anon not in daemon.out("volume", "ls", "-q").split()
    # container prune never takes volumes
    label = f"prune-{name}"
    daemon.out("create", "--label", label, "--name", name, "-v", "/pruned", "busybox", "true")
    anon = inspect(daemon, name)["Mounts"][0]["Name"]
    daemon.out("container", "prune", "-f", "--filter", f"label={label}")
    assert name not in daemon.out("ps", "-a", "--format", "{{.Names}}").split()
    assert anon in daemon.out("volume", "ls", "-q").split()
    daemon.out("volume", "rm", anon)


def test_volumes_from(daemon, vol, tmp_path, name):
    v = vol()
    (tmp_path / "b").write_text("bound\n")
    daemon.out("create", "--name", name, "-v", f"{v}:/d", "-v", "/anon",
               "-v", f"{tmp_path}:/b", "busybox", "true")
    daemon.out("run", "--rm", "--volumes-from", name, "busybox", "sh", "-c",
               "echo one > /d/f && echo two > /anon/g")
    out = daemon.out("run", "--rm", "--volumes-from", f"{name}:ro", "busybox", "sh", "-c",
                     "cat /d/f /anon/g /b/b; touch /d/x 2>/dev/null || echo read-only")
    assert out == "one\ntwo\nbound\nread-only\n"
    consumer = f"{name}-c"
    daemon.out("create", "--name", consumer, "--volumes-from", f"{name}:ro", "busybox", "true")
    mounts = {m["Destination"]: m for m in inspect(daemon, consumer)["Mounts"]}
    assert set(mounts) == {"/d", "/anon", "/b"}
    assert not any(m["RW"] for m in mounts.values())
    assert mounts["/d"]["Name"] == v
    daemon.out("rm", consumer, name)
    res = daemon.docker("run", "--rm", "--volumes-from", "no-such-container-dy", "busybox",
                        "true")
    assert res.returncode == 125 and b"No such container: no-such-container-dy" in res.stderr
    res = daemon.docker("run", "--rm", "--volumes-from", f"{name}:rshared", "busybox", "true")
    assert b"invalid mode: rshared" in res.stderr


def test_volume_driver_local_and_unknown(daemon, client, vol):
    v = vol()
    assert daemon.out("run", "--rm", "--volume-driver", "local", "-v", f"{v}:/d", "busybox",
                      "sh", "-c", "echo a > /d/a && cat /d/a") == "a\n"
    before, dirs = daemon.out("volume", "ls", "-q"), volume_dirs(daemon)
    w = vol()
    # dockerd's 404 (the CLI then tries to pull the image, as it does with dockerd)
    with pytest.raises(docker.errors.NotFound) as e:
        client.api.create_container("busybox", "true", host_config=client.api.create_host_config(
            binds=[f"{w}:/d"], volume_driver="nope"))
    assert (f'create {w}: error looking up volume plugin nope: plugin "nope" not found'
            in str(e.value))
    res = daemon.docker("volume", "create", "-d", "nope", w)
    assert b'error looking up volume plugin nope: plugin "nope" not found' in res.stderr
    assert daemon.out("volume", "ls", "-q") == before and volume_dirs(daemon) == dirs


BAD = [
    (("-v", "x1:/h", "-v", "/tmp:/h"), "Duplicate mount point: /h"),
    (("--tmpfs", "/run", "-v", "/tmp:/run"), "Duplicate mount point: /run"),
    (("--tmpfs", "/run", "--mount", "type=tmpfs,dst=/run"), "Duplicate mount point: /run"),
    (("-v", "/tmp:/h:bogus"), "invalid mode: bogus"),
    (("-v", "/tmp:relative"), "invalid mount path: 'relative' mount path must be absolute"),
    (("-v", "x2:/"), "invalid specification: destination can't be '/'"),
    (("-v", "a/b:/x"), '"a/b" includes invalid characters for a local volume name'),
    (("--mount", "type=volume,src=_x,dst=/x"), '"_x" includes invalid characters'),
    (("--mount", "type=volume,src=x3,dst=/x,volume-opt=foo=bar"), 'invalid option: "foo"'),
    (("--mount", "type=volume,src=x4,dst=/x,volume-opt=type=tmpfs"),
     'missing required option: "device"'),
    (("--mount", ("type=volume,src=x5,dst=/x,volume-opt=type=tmpfs,volume-opt=device=tmpfs,"
      "volume-opt=o=bogus=1")), "failed to mount local volume"),
    (("--mount", "type=tmpfs,src=x,dst=/t"), "field Source must not be specified"),
]


@pytest.mark.parametrize(("args", "text"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_mounts_are_refused_and_leave_nothing(daemon, failed_run, args, text):
    before, dirs = daemon.out("volume", "ls", "-q"), volume_dirs(daemon)
    code, err = failed_run(*args)
    assert code == 125 and text in err, err
    assert not failed_run.last_ids
    assert daemon.out("volume", "ls", "-q") == before and volume_dirs(daemon) == dirs


def test_destinations_through_the_images_symlinks(daemon, app_image, vol, failed_run):
    tag = app_image[0]
    for dest, text in (("/toroot", "resolves to the container's root"),
                       ("/var/escape/etc", "leaves the container's root")):
        code, err = failed_run("-v", f"{vol()}:{dest}", image=tag, cmd=("true",))
        assert code != 0 and text in err, err
    # a symlink that stays inside: the volume is where the link leads
    v = vol()
    out = daemon.out("run", "--rm", "-v", f"{v}:/inside", tag, "sh", "-c",
                     "echo x > /var/real/f && grep -c ' /var/real ' /proc/mounts")
    assert out == "1\n"
    mp = daemon.out("volume", "inspect", "-f", "{{.Mountpoint}}", v).strip()
    assert Path(mp, "f").read_text() == "x\n"


def test_ps_volume_filter(daemon, vol, tmp_path, name):
    v = vol()
    daemon.out("create", "--name", name, "-v", f"{v}:/data", "-v", f"{tmp_path}:/b",
               "busybox", "true")
    for value in (v, "/data", str(tmp_path), "/b"):
        got = daemon.out("ps", "-a", "--filter", f"volume={value}", "--format", "{{.Names}}")
        assert got.split() == [name], value
    assert daemon.out("ps", "-a", "--filter", f"volume={uuid.uuid4().hex}", "-q") == ""
    names = daemon.out("ps", "-a", "--filter", f"name={name}", "--format", "{{.Mounts}}")
    assert v in names
    daemon.out("rm", name)


def test_volume_in_use(daemon, vol, name):
    v = vol()
    daemon.out("volume", "create", v)
    cid = daemon.out("run", "-d", "--name", name, "-v", f"{v}:/d", "busybox", "sleep",
                     "60").strip()
    for args in (("volume", "rm", v), ("volume", "rm", "-f", v)):
        res = daemon.docker(*args)
        assert res.returncode == 1
        assert f"remove {v}: volume is in use - [{cid}]" in res.stderr.decode()
    daemon.out("rm", "-f", name)
    daemon.out("volume", "rm", v)
    assert v not in daemon.out("volume", "ls", "-q").split()


def _host_mounts_under(path: Path) -> list[str]:
    return [line.split()[4] for line in open("/proc/self/mountinfo")
            if line.split()[4].startswith(str(path))]


@pytest.mark.parametrize("mode", ["rshared", "rslave"])
def test_bind_propagation_reaches_the_host(daemon, tmp_path, name, mode):
    """A private source is made a shared mount point for the run, so mounts
    propagate as asked; nothing of it stays after the container."""
    src = tmp_path / "src"
    (src / "fromhost").mkdir(parents=True)
    daemon.out("run", "-d", "--privileged", "--name", name, "-v", f"{src}:/p:{mode}",
               "busybox", "sleep", "120")
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "hostside",
                        str(src / "fromhost")], check=True)
        (src / "fromhost" / "marker").write_text("host\n")
        assert daemon.out("exec", name, "cat", "/p/fromhost/marker") == "host\n"
        daemon.out("exec", name, "sh", "-c", "mkdir -p /p/fromctr && "
                   "mount -t tmpfs ctrside /p/fromctr && echo ctr > /p/fromctr/m")
        seen = (src / "fromctr" / "m").exists()
        assert seen is (mode == "rshared")
        assert inspect(daemon, name)["Mounts"][0]["Propagation"] == mode
    finally:
        daemon.out("rm", "-f", name)
        for m in sorted(_host_mounts_under(src), reverse=True):
            if m != str(src):
                subprocess.run(["umount", "-l", m], check=False)
    assert _host_mounts_under(src) == []
