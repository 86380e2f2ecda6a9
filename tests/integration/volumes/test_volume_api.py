"""`docker volume` and `/volumes`: shapes, filters, prune, events, the local
driver's options, and bad input answered with dockerd's texts and statuses
without leaving a half-made volume behind."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from volutil import volume_dirs


def api(daemon, method: str, path: str, body: object = None) -> tuple[int, object]:  # type: ignore[no-untyped-def]
    if "filters=" in path:
        head, _, value = path.partition("filters=")
        path = head + "filters=" + quote(value)
    args = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--unix-socket", daemon.socket,
            "-X", method, f"http://x{path}"]
    if body is not None:
        args += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
    out = subprocess.run(args, capture_output=True, check=True).stdout.decode()
    text, _, status = out.rpartition("\n")
    return int(status), (json.loads(text) if text.strip() else None)


def test_create_inspect_list_remove(daemon, vol):
    v = vol()
    assert daemon.out("volume", "create", "--label", "a=1", "--label", "b", v) == v + "\n"
    got = json.loads(daemon.out("volume", "inspect", v))[0]
    mp = Path(got.pop("Mountpoint"))
    created = got.pop("CreatedAt")
    assert got == {"Driver": "local", "Labels": {"a": "1", "b": ""}, "Name": v,
                   "Options": {}, "Scope": "local"}
    assert mp == daemon.data_root / "volumes" / v / "_data" and mp.is_dir()
    assert created.endswith("Z") and abs(time.mktime(time.strptime(
        created, "%Y-%m-%dT%H:%M:%SZ")) - time.mktime(time.gmtime())) < 60
    assert v in daemon.out("volume", "ls", "-q").split()
    # the same create again is the same volume; other options or labels are a 409
    assert daemon.out("volume", "create", "--label", "a=1", "--label", "b", v) == v + "\n"
    assert daemon.out("volume", "create", v) == v + "\n"    # none asked for: as it is
    res = daemon.docker("volume", "create", "--label", "a=2", v)
    assert res.returncode == 1 and b"already exists with other options or labels" in res.stderr
    res = daemon.docker("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", v)
    assert b"already exists with other options or labels" in res.stderr
    status, _ = api(daemon, "POST", "/v1.44/volumes/create", {"Name": v, "Labels": {"a": "3"}})
    assert status == 409
    daemon.out("volume", "rm", v)
    assert not (daemon.data_root / "volumes" / v).exists()
    res = daemon.docker("volume", "inspect", v)
    assert f"get {v}: no such volume" in res.stderr.decode()
    assert api(daemon, "DELETE", f"/volumes/{v}") == (404, {"message": f"get {v}: no such volume"})
    assert api(daemon, "DELETE", f"/volumes/{v}?force=1") == (204, None)


def test_generated_names_are_anonymous(daemon):
    status, body = api(daemon, "POST", "/volumes/create", {})
    assert status == 201 and isinstance(body, dict)
    assert len(body["Name"]) == 64 and body["Labels"] == {"com.docker.volume.anonymous": ""}
    daemon.out("volume", "rm", body["Name"])


def test_list_filters(daemon, vol, name):
    a, b, c = vol(), vol(), vol()
    daemon.out("volume", "create", "--label", "tier=db", a)
    daemon.out("volume", "create", "--label", "tier=web", b)
    daemon.out("volume", "create", c)
    daemon.out("create", "--name", name, "-v", f"{a}:/a", "busybox", "true")
    try:
        def ls(*f: str) -> set[str]:
            args = ["volume", "ls", "-q"]
            for x in f:
                args += ["--filter", x]
            return set(daemon.out(*args).split()) & {a, b, c}

        assert ls("dangling=true") == {b, c}
        assert ls("dangling=false") == {a}
        assert ls("label=tier") == {a, b}
        assert ls("label=tier=web") == {b}
        assert ls("name=" + c[2:]) == {c}
        assert ls("driver=local") == {a, b, c}
        assert ls("driver=other") == set()
        for bad, text in (("dangling=maybe", "invalid filter 'dangling=[maybe]'"),
                          ("color=red", "invalid filter 'color'")):
            res = daemon.docker("volume", "ls", "--filter", bad)
            assert text in res.stderr.decode()
    finally:
        daemon.out("rm", name)


def test_prune_takes_unused_anonymous_volumes_unless_all(daemon, vol, name):
    named, kept = vol(), vol()
    daemon.out("volume", "create", named)
    daemon.out("volume", "create", "--label", "keep=1", kept)
    anon = json.loads(daemon.out("volume", "inspect", daemon.out(
        "volume", "create").strip()))[0]["Name"]
    daemon.out("create", "--name", name, "-v", "/used", "busybox", "true")
    used = json.loads(daemon.out("inspect", name))[0]["Mounts"][0]["Name"]
    try:
        status, body = api(daemon, "POST", "/v1.44/volumes/prune")
        assert status == 200 and isinstance(body, dict)
        assert anon in body["VolumesDeleted"] and used not in body["VolumesDeleted"]
        left = set(daemon.out("volume", "ls", "-q").split())
        assert {named, kept, used} <= left and anon not in left
        # all=true, with a label! filter keeping one of them
        status, body = api(daemon, "POST", "/v1.44/volumes/prune?filters=" + json.dumps(
            {"all": ["true"], "label!": ["keep"]}))
        assert status == 200 and isinstance(body, dict)
        assert named in body["VolumesDeleted"] and kept not in body["VolumesDeleted"]
        assert used not in body["VolumesDeleted"]
        # before API 1.42 a prune takes named volumes too
        status, body = api(daemon, "POST", "/v1.41/volumes/prune")
        assert status == 200 and isinstance(body, dict) and kept in body["VolumesDeleted"]
        status, body = api(daemon, "POST", "/volumes/prune?filters=" + json.dumps(
            {"all": ["maybe"]}))
        assert status == 400
    finally:
        daemon.out("rm", "-v", name)


def test_volume_events(daemon, vol):
    v = vol()
    since = f"{time.time() - 0.001:.6f}"
    daemon.out("volume", "create", v)
    daemon.out("run", "--rm", "-v", f"{v}:/d:ro", "busybox", "true")
    daemon.out("volume", "rm", v)
    out = daemon.out("events", "--since", since, "--until", f"{time.time():.6f}",
                     "--filter", "type=volume", "--filter", f"volume={v}",
                     "--format", "{{json .}}")
    evs = [json.loads(line) for line in out.splitlines()]
    assert [e["Action"] for e in evs] == ["create", "mount", "unmount", "destroy"]
    mount = evs[1]["Actor"]["Attributes"]
    assert mount["destination"] == "/d" and mount["read/write"] == "false"
    assert mount["driver"] == "local" and len(mount["container"]) == 64
    assert evs[2]["Actor"]["Attributes"]["container"] == mount["container"]


def test_tmpfs_and_bind_volumes_are_mounted_while_used(daemon, vol, tmp_path, name):
    t, b = vol(), vol()
    daemon.out("volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs",
               "--opt", "o=size=3m,mode=0750", t)
    (tmp_path / "f").write_text("host\n")
    daemon.out("volume", "create", "--opt", "type=none", "--opt", f"device={tmp_path}",
               "--opt", "o=bind", b)
    opts = json.loads(daemon.out("volume", "inspect", t))[0]["Options"]
    assert opts == {"type": "tmpfs", "device": "tmpfs", "o": "size=3m,mode=0750"}
    tp = daemon.out("volume", "inspect", "-f", "{{.Mountpoint}}", t).strip()

    def mounted() -> bool:
        return any(line.split()[4] == tp for line in open("/proc/self/mountinfo"))

    assert not mounted()
    daemon.out("run", "-d", "--name", name, "-v", f"{t}:/t", "-v", f"{b}:/b", "busybox",
               "sleep", "60")
    try:
        out = daemon.out("exec", name, "sh", "-c",
                         "df -k /t | tail -1; stat -c %a /t; cat /b/f; echo back > /b/g")
        lines = out.splitlines()
        assert lines[0].split()[1] == "3072" and lines[1] == "750" and lines[2] == "host"
        assert (tmp_path / "g").read_text() == "back\n"
        assert mounted()
        # a second user shares the mount; the last one to stop unmounts it
        assert daemon.out("run", "--rm", "-v", f"{t}:/t", "busybox", "df", "-k", "/t")
        assert mounted()
    finally:
        daemon.out("rm", "-f", name)
    assert not mounted()
    # volumes with options are not pruned (as dockerd)
    status, body = api(daemon, "POST", "/volumes/prune?filters=" + json.dumps(
        {"all": ["true"]}))
    assert status == 200 and isinstance(body, dict) and t not in (body["VolumesDeleted"] or [])


BAD_CREATE = [
    ({"Name": "a"}, 400, ("create a: volume name is too short, names should be at least two "
                         "alphanumeric characters")),
    ({"Name": ".."}, 400, ('create ..: ".." includes invalid characters for a local volume '
                          'name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended '
                          "to pass a host directory, use absolute path")),
    ({"Name": "a/b"}, 400, 'create a/b: "a/b" includes invalid characters'),
    ({"Name": "badopt", "DriverOpts": {"foo": "bar"}}, 400, ('create badopt: invalid option: '
                                                            '"foo"')),
    ({"Name": "badopt", "DriverOpts": {"type": "tmpfs"}}, 400,
     'create badopt: missing required option: "device"'),
    ({"Name": "badopt", "DriverOpts": {"o": "size=1m", "device": "tmpfs"}}, 400,
     'create badopt: missing required option: "type"'),
    ({"Name": "badopt", "DriverOpts": {"size": "10m"}}, 400,
     "create badopt: quota size requested but no quota support"),
    ({"Name": "badopt", "DriverOpts": {"type": "tmpfs", "device": "tmpfs", "o": "nope=1"}}, 400,
     "create badopt: failed to mount local volume: mount tmpfs:"),
    ({"Name": "badopt", "DriverOpts": {"type": "none", "device": "/nonexistent-dy",
                                       "o": "bind"}}, 400,
     "create badopt: failed to mount local volume: mount /nonexistent-dy:"),
    ({"Name": "badopt", "Driver": "weird"}, 404,
     'create badopt: error looking up volume plugin weird: plugin "weird" not found'),
    ({"Name": 5}, 400, "invalid JSON: json: cannot unmarshal number into Go struct field"),
    ({"Name": "x" * 3, "ClusterVolumeSpec": {}}, 409, "cluster volumes"),
]


@pytest.mark.parametrize(("body", "status", "text"), BAD_CREATE,
                         ids=[json.dumps(b) for b, _, _ in BAD_CREATE])
def test_bad_creates(daemon, body, status, text):
    dirs = volume_dirs(daemon)
    got, out = api(daemon, "POST", "/volumes/create", body)
    assert isinstance(out, dict)
    assert (got, out["message"][:len(text)]) == (status, text)
    assert volume_dirs(daemon) == dirs


def test_removal_never_follows_symlinks(daemon, vol, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep me\n")
    v = vol()
    daemon.out("volume", "create", v)
    root = daemon.data_root / "volumes" / v
    (root / "_data").rmdir()
    (root / "_data").symlink_to(victim)
    (root / "extra").symlink_to(victim / "precious")
    daemon.out("volume", "rm", v)
    assert not root.exists()
    assert (victim / "precious").read_text() == "keep me\n"


def test_volume_names_in_urls(daemon):
    name = uuid.uuid4().hex
    assert api(daemon, "GET", f"/volumes/{name}") == (
        404, {"message": f"get {name}: no such volume"})
    status, _ = api(daemon, "GET", "/volumes/..%2F..%2Fetc")
    assert status == 404
