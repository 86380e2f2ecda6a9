"""The local driver without root: names, options, records, removal that
never follows a symlink, and moby's mount option parsing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dockyard.errors import InvalidParameter
from dockyard.volumes.local import LocalDriver, needs_mount, validate_name, validate_options
from dockyard.volumes.mountopts import MS_BIND, MS_NOSUID, MS_RDONLY, MS_REC, parse_options


@pytest.mark.parametrize("name", ["ab", "data", "a.b-c_d", "0x", "A9"])
def test_good_names(name):
    validate_name(name)


@pytest.mark.parametrize(("name", "text"), [
    ("a", "volume name is too short, names should be at least two alphanumeric characters"),
    ("..", ('".." includes invalid characters for a local volume name, only '
           '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
           "directory, use absolute path")),
    ("a/b", '"a/b" includes invalid characters'),
    (".hidden", '".hidden" includes invalid characters'),
    ("ab\n", '"ab\n" includes invalid characters'),
    ("", '"" includes invalid characters'),
])
def test_bad_names(name, text):
    with pytest.raises(InvalidParameter) as e:
        validate_name(name)
    assert e.value.message.startswith(text)


@pytest.mark.parametrize(("opts", "text"), [
    ({"foo": "bar"}, 'invalid option: "foo"'),
    ({"type": "tmpfs"}, 'missing required option: "device"'),
    ({"device": "tmpfs"}, 'missing required option: "type"'),
    ({"o": "size=1m", "type": "tmpfs"}, 'missing required option: "device"'),
    ({"size": "10m"}, "quota size requested but no quota support"),
    ({"size": "lots"}, "invalid size: 'lots'"),
    ({"type": "cifs", "device": "//host:445/share"},
     "port not allowed in CIFS device URL, include 'port' in 'o='"),
])
def test_bad_options(opts, text):
    with pytest.raises(InvalidParameter, match="^" + text.replace("(", r"\(")):
        validate_options(opts)


def test_good_options():
    for opts in ({}, {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"},
                 {"type": "none", "device": "/srv", "o": "bind"}, {"size": "0"}):
        validate_options(opts)
    assert needs_mount({"type": "tmpfs", "device": "tmpfs"}) and not needs_mount({})


def test_mount_option_words_are_flags_or_data():
    assert parse_options("bind,ro") == (MS_BIND | MS_RDONLY, "")
    assert parse_options("rbind,nosuid,size=1m,uid=1000") == (
        MS_BIND | MS_REC | MS_NOSUID, "size=1m,uid=1000")
    assert parse_options("ro,rw") == (0, "")
    assert parse_options("addr=10.0.0.1,nfsvers=4") == (0, "addr=10.0.0.1,nfsvers=4")


def _driver(tmp_path: Path) -> LocalDriver:
    return LocalDriver(tmp_path, (os.getuid(), os.getgid()))


def test_records_and_half_made_volumes(tmp_path):
    drv = _driver(tmp_path)
    vol = drv.create("data", {}, {"a": "b"})
    assert vol.path == tmp_path / "volumes" / "data" / "_data" and vol.path.is_dir()
    assert oct(vol.root.stat().st_mode & 0o777) == "0o701"
    rec = json.loads((vol.root / "volume.json").read_text())
    assert rec["Name"] == "data" and rec["Labels"] == {"a": "b"}
    (tmp_path / "volumes" / "half" / "_data").mkdir(parents=True)   # a crash's leftover
    (tmp_path / "volumes" / "half" / "_data" / "f").write_text("x")
    loaded = drv.load()
    assert [v.name for v in loaded] == ["data"] and loaded[0].labels == {"a": "b"}
    assert not (tmp_path / "volumes" / "half").exists()
    with pytest.raises(InvalidParameter, match="invalid characters"):
        drv.create("../x", {}, {})
    with pytest.raises(InvalidParameter, match="invalid option"):
        drv.create("other", {"bogus": "1"}, {})
    assert sorted(os.listdir(tmp_path / "volumes")) == ["data"]


def test_removal_follows_no_symlink(tmp_path):
    drv = _driver(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    vol = drv.create("data", {}, {})
    (vol.path / "sub").mkdir()
    (vol.path / "sub" / "link").symlink_to(outside)
    (vol.path / "abs").symlink_to(outside / "keep")
    drv.remove(vol)
    assert not vol.root.exists() and (outside / "keep").read_text() == "keep"
    vol = drv.create("data2", {}, {})
    vol.path.rmdir()
    vol.path.symlink_to(outside)        # _data itself replaced by a symlink
    drv.remove(vol)
    assert not vol.root.exists() and (outside / "keep").read_text() == "keep"
