"""Mount points as records and Docker shapes, mountinfo parsing for bind
propagation, and destinations resolved inside a root."""

from __future__ import annotations

import os

import pytest

from dockyard.engine.volumes.points import MountPoint, api_mounts, covers
from dockyard.engine.volumes.propagation import mount_of, needed, parse_mountinfo, satisfied
from dockyard.engine.volumes.targets import make_target, resolve_target
from dockyard.errors import InvalidParameter

MOUNTINFO = """\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 27 0:40 / /srv rw shared:4 - ext4 /dev/vdb rw
31 30 0:41 / /srv/slave\\040dir rw master:4 - tmpfs tmpfs rw
32 27 0:42 / /srv2 rw - tmpfs tmpfs rw
33 30 0:43 / /srv rw shared:9 - tmpfs over rw
"""


def test_records_keep_dockers_fields_and_the_engines():
    p = MountPoint("bind", "/h", source="/srv", mode="ro,rshared", rw=False,
                   propagation="rshared", explicit_propagation=True, create_source=True)
    rec = p.to_record()
    assert MountPoint.from_record(rec) == p
    assert api_mounts([rec]) == [{"Type": "bind", "Source": "/srv", "Destination": "/h",
                                  "Mode": "ro,rshared", "RW": False, "Propagation": "rshared"}]
    v = MountPoint("volume", "/d", source="/x/_data", name="data", driver="local", mode="z")
    assert list(v.api()) == ["Type", "Name", "Source", "Destination", "Driver", "Mode", "RW",
                             "Propagation"]
    assert covers("/d", "/d/x") and covers("/d", "/d") and not covers("/d", "/dx")


def test_mountinfo_and_propagation_needs():
    mounts = parse_mountinfo(MOUNTINFO)
    assert mount_of("/srv/x", mounts).mount_id == 33          # the top of two on /srv
    assert mount_of("/srv/slave dir/a", mounts).slave
    assert mount_of("/srv2", mounts).mount_id == 32
    assert mount_of("/home", mounts).mount_id == 27
    assert needed("rshared") == "shared" and needed("slave") == "slave"
    assert needed("rprivate") == ""
    assert satisfied(mount_of("/srv/x", mounts), "shared")
    assert satisfied(mount_of("/srv/slave dir", mounts), "slave")
    assert not satisfied(mount_of("/srv/slave dir", mounts), "shared")
    assert not satisfied(mount_of("/home", mounts), "slave")


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "var" / "real").mkdir(parents=True)
    (r / "toroot").symlink_to("/")
    (r / "var" / "escape").symlink_to("../../..")
    (r / "inside").symlink_to("/var/real")
    (r / "rel").symlink_to("var/real")
    fd = os.open(r, os.O_RDONLY | os.O_DIRECTORY)
    yield r, fd
    os.close(fd)


def test_destinations_are_resolved_inside_the_root(root):
    r, fd = root
    assert resolve_target(fd, "/inside/x") == ["var", "real", "x"]
    assert resolve_target(fd, "/rel") == ["var", "real"]
    assert resolve_target(fd, "/new/dir") == ["new", "dir"]
    with pytest.raises(InvalidParameter, match="resolves to the container's root"):
        resolve_target(fd, "/toroot")
    with pytest.raises(InvalidParameter, match="leaves the container's root"):
        resolve_target(fd, "/var/escape/etc")
    make_target(fd, ["new", "dir"], True)
    make_target(fd, ["var", "real", "file"], False)
    assert (r / "new" / "dir").is_dir() and (r / "var" / "real" / "file").is_file()
