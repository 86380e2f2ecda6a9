"""`-v`, `--mount`, `--volumes-from` and anonymous volumes as dockerd parses
and checks them (its texts), before any volume is looked up or made."""

from __future__ import annotations

import pytest

from dockyard.errors import InvalidParameter
from dockyard.oci.mounts import MountPlan, MountSpec, build_mounts
from dockyard.oci.volumespec import (
    anonymous_destinations,
    bind_needs_slave,
    mode_is_rw,
    parse_bind,
    parse_mount,
    parse_requests,
    parse_volumes_from,
    valid_mount_mode,
)


@pytest.mark.parametrize(("mode", "ok"), [
    ("", True), ("ro", True), ("rw,z", True), ("ro,Z,rshared,nocopy", True),
    ("rw,ro", False), ("z,Z", False), ("shared,slave", False), ("bogus", False),
    ("cached", True), ("ro,delegated", True), ("nocopy,nocopy", False),
])
def test_mount_modes(mode, ok):
    assert valid_mount_mode(mode) is ok


def test_bind_specs():
    r = parse_bind("/tmp/host:/h")
    assert (r.type, r.source, r.destination, r.rw, r.mode, r.propagation) == (
        "bind", "/tmp/host", "/h", True, "", "rprivate")
    assert r.create_source and not r.explicit_propagation
    r = parse_bind("/tmp/host/../x/:/h/sub/:ro,rslave")
    assert (r.source, r.destination, r.rw, r.propagation, r.mode) == (
        "/tmp/x", "/h/sub", False, "rslave", "ro,rslave")
    assert r.explicit_propagation


def test_volume_specs():
    r = parse_bind("data:/d")
    assert (r.type, r.source, r.destination, r.copy_data, r.driver) == (
        "volume", "data", "/d", True, "")
    r = parse_bind("data:/d:ro,nocopy", volume_driver="local")
    assert (r.rw, r.copy_data, r.driver) == (False, False, "local")
    r = parse_bind("/anon")
    assert (r.type, r.source, r.destination) == ("volume", "", "/anon")


@pytest.mark.parametrize(("raw", "text"), [
    ("/h:ro", "invalid volume specification: '/h:ro'"),
    (":/h", "invalid volume specification: ':/h'"),
    ("a:b:c:d", "invalid volume specification: 'a:b:c:d'"),
    ("/tmp:/h:bogus", "invalid mode: bogus"),
    ("/tmp:/h:rw,ro", "invalid mode: rw,ro"),
    ("/tmp:relative", ("invalid volume specification: '/tmp:relative': invalid mount config "
                      "for type \"bind\": invalid mount path: 'relative' mount path must be "
                      "absolute")),
    ("x:/", ("invalid volume specification: 'x:/': invalid mount config for type \"volume\": "
            "invalid specification: destination can't be '/'")),
    ("vol:/d:rshared", ("invalid volume specification: 'vol:/d:rshared': invalid mount config "
                       "for type \"volume\": field BindOptions must not be specified")),
    ("/tmp:/d:nocopy", ("invalid volume specification: '/tmp:/d:nocopy': invalid mount config "
                       "for type \"bind\": field VolumeOptions must not be specified")),
])
def test_bad_bind_specs(raw, text):
    with pytest.raises(InvalidParameter) as e:
        parse_bind(raw)
    assert e.value.message == text


def test_mount_entries():
    r = parse_mount({"Type": "bind", "Source": "/srv", "Target": "/s", "ReadOnly": True,
                     "BindOptions": {"Propagation": "rshared", "NonRecursive": True}},
                    lambda p: True)
    assert (r.rw, r.propagation, r.non_recursive, r.create_source) == (
        False, "rshared", True, False)
    r = parse_mount({"Type": "volume", "Source": "v", "Target": "/v", "VolumeOptions": {
        "NoCopy": True, "Labels": {"a": "b"},
        "DriverConfig": {"Name": "local", "Options": {"type": "tmpfs"}}}})
    assert (r.copy_data, r.labels, r.driver, r.driver_opts) == (
        False, {"a": "b"}, "local", {"type": "tmpfs"})
    r = parse_mount({"Type": "tmpfs", "Target": "/run",
                     "TmpfsOptions": {"SizeBytes": 8 << 20, "Mode": 0o1777}})
    assert r.tmpfs_data == "mode=1777,size=8m"


@pytest.mark.parametrize(("m", "text"), [
    ({"Type": "bind", "Source": "/nonexistent", "Target": "/h"},
     'invalid mount config for type "bind": bind source path does not exist: /nonexistent'),
    ({"Type": "bind", "Target": "/h"},
     'invalid mount config for type "bind": field Source must not be empty'),
    ({"Type": "bind", "Source": "rel", "Target": "/h"},
     ("invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be "
     "absolute")),
    ({"Type": "bind", "Source": "/srv", "Target": "/h", "BindOptions": {"Propagation": "x"}},
     'invalid mount config for type "bind": invalid propagation mode: x'),
    ({"Type": "tmpfs", "Source": "x", "Target": "/t"},
     'invalid mount config for type "tmpfs": field Source must not be specified'),
    ({"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"Options": [["suid"]]}},
     'invalid mount config for type "tmpfs": invalid option: suid'),
    ({"Type": "volume", "Target": "/v", "TmpfsOptions": {}},
     'invalid mount config for type "volume": field TmpfsOptions must not be specified'),
    ({"Type": "weird", "Target": "/x"}, ('invalid mount config for type "weird": mount type '
                                        "unknown")),
    ({"Type": "npipe", "Target": "/x"}, ('invalid mount config for type "npipe": mount type '
                                        "unknown")),
    ({"Type": "volume"}, ('invalid mount config for type "volume": field Target must not be '
                         "empty")),
    ({"Type": "volume", "Target": "/v", "VolumeOptions": {"Subpath": "a"}},
     ('invalid mount config for type "volume": must not set Subpath when using anonymous '
     "volumes")),
    ({"Type": "volume", "Source": "v", "Target": "/v", "VolumeOptions": {"Subpath": "../a"}},
     ('invalid mount config for type "volume": subpath must be a relative path within the '
     "volume")),
])
def test_bad_mount_entries(m, text):
    with pytest.raises(InvalidParameter) as e:
        parse_mount(m, lambda p: p != "/nonexistent")
    assert e.value.message == text


@pytest.mark.parametrize("m", [
    {"Type": "image", "Source": "busybox", "Target": "/i"},
    {"Type": "volume", "Source": "v", "Target": "/v", "VolumeOptions": {"Subpath": "a"}},
])
def test_mounts_this_engine_does_not_make_are_refused_clearly(m):
    with pytest.raises(InvalidParameter, match="not supported"):
        parse_mount(m)


@pytest.mark.parametrize(("bo", "ro", "text"), [
    ({"ReadOnlyNonRecursive": True}, False,
     "mount options conflict: !ReadOnly && BindOptions.ReadOnlyNonRecursive"),
    ({"ReadOnlyForceRecursive": True}, False,
     "mount options conflict: !ReadOnly && BindOptions.ReadOnlyForceRecursive"),
    ({"ReadOnlyNonRecursive": True, "ReadOnlyForceRecursive": True}, True,
     "mount options conflict: ReadOnlyNonRecursive && BindOptions.ReadOnlyForceRecursive"),
])
def test_read_only_bind_option_conflicts(bo, ro, text):
    with pytest.raises(InvalidParameter) as e:
        parse_mount({"Type": "bind", "Source": "/srv", "Target": "/s", "ReadOnly": ro,
                     "BindOptions": bo}, lambda p: True)
    assert e.value.message == text


def test_a_missing_source_with_create_mountpoint_is_fine():
    r = parse_mount({"Type": "bind", "Source": "/nonexistent", "Target": "/h",
                     "BindOptions": {"CreateMountpoint": True}}, lambda p: False)
    assert r.create_source


def test_duplicates():
    with pytest.raises(InvalidParameter, match="^Duplicate mount point: /h$"):
        parse_requests({"Binds": ["x:/h", "/tmp:/h/"]})
    with pytest.raises(InvalidParameter, match="^Duplicate mount point: /run/$"):
        parse_requests({"Binds": ["x:/run"], "Mounts": [{"Type": "tmpfs", "Target": "/run/"}]})
    with pytest.raises(InvalidParameter, match="^Duplicate mount point: /run$"):
        parse_requests({"Tmpfs": {"/run": ""}, "Mounts": [{"Type": "tmpfs", "Target": "/run"}]})
    with pytest.raises(InvalidParameter, match="^Duplicate mount point: /run$"):
        parse_requests({"Tmpfs": {"/run": ""}, "Binds": ["/tmp:/run"]})
    reqs = parse_requests({"Binds": ["a:/a"], "Mounts": [{"Type": "tmpfs", "Target": "/b"}]})
    assert [r.destination for r in reqs] == ["/a", "/b"]


def test_anonymous_destinations_skip_what_is_mounted():
    got = anonymous_destinations({"/data/": {}, "/b": {}, "/run": {}, "/c": {}}, ["/b"],
                                 {"/run": ""})
    assert got == ["/c", "/data"]
    with pytest.raises(InvalidParameter, match="must be absolute"):
        anonymous_destinations({"rel": {}}, [], None)


def test_volumes_from():
    assert parse_volumes_from("c1") == ("c1", "rw")
    assert parse_volumes_from("c1:ro") == ("c1", "ro")
    assert not mode_is_rw("ro")
    for bad in ("c1:rshared", "c1:nocopy", "c1:bogus"):
        with pytest.raises(InvalidParameter, match="^invalid mode: "):
            parse_volumes_from(bad)
    with pytest.raises(InvalidParameter, match="cannot be an empty string"):
        parse_volumes_from("")


def test_binds_of_the_data_root_get_rslave():
    root = "/var/lib/dockyard"
    assert bind_needs_slave("/", root, "")
    assert bind_needs_slave("/var/lib/dockyard/volumes/x", root, "")
    assert not bind_needs_slave("/srv", root, "")
    assert not bind_needs_slave("/", root, "rshared")
    with pytest.raises(InvalidParameter, match='must use either propagation mode "rslave"'):
        bind_needs_slave("/", root, "private")


def _plan(*mounts: MountSpec) -> list[dict]:
    out, _ = build_mounts(MountPlan(container_mounts=mounts, shm_size=64 << 20,
                                    ipc_none=False, readonly_rootfs=False, privileged=False,
                                    writable_cgroups=False, rro_supported=True))
    return out


def test_spec_options_of_binds_and_volumes():
    mounts = _plan(MountSpec("/h", "/srv", read_only=True, propagation="rshared",
                             locked_flags=("nosuid", "nodev")),
                   MountSpec("/v", "/var/lib/dockyard/volumes/v/_data", propagation=""),
                   MountSpec("/t", "tmpfs", type="tmpfs", data="size=8m,mode=1777"))
    by = {m["destination"]: m for m in mounts}
    assert by["/h"]["options"] == ["rbind", "rro", "rshared", "nosuid", "nodev"]
    assert by["/v"]["options"] == ["rbind"]
    assert by["/t"]["options"] == ["noexec", "nosuid", "nodev", "rprivate", "size=8m",
                                   "mode=1777"]
