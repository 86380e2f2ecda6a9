"""userns-remap decisions without root: subordinate id parsing, range
allocation, id shifting both ways, the spec mappings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.engine.host.userns import (
    IDMapping,
    IDRange,
    UsernsRemap,
    check_traversable,
    next_free_start,
    parse_remap_setting,
    parse_subid,
)
from dockyard.errors import InvalidParameter
from dockyard.util.treecopy import copy_tree

SUBUID = "alice:100000:65536\n# comment\ndockremap:165536:65536\n1001:300000:1000\nbad line\n"


def test_parse_subid_by_name_and_number():
    assert parse_subid(SUBUID, "dockremap", 999) == (IDRange(165536, 65536),)
    assert parse_subid(SUBUID, "bob", 1001) == (IDRange(300000, 1000),)
    assert parse_subid(SUBUID, "carol", 5) == ()


def test_next_free_start_is_above_every_range():
    assert next_free_start("") == 100000
    assert next_free_start(SUBUID, "x:400000:10\n") == 400010


def test_remap_setting_forms():
    assert parse_remap_setting("default") == ("dockremap", "dockremap")
    assert parse_remap_setting("alice") == ("alice", "alice")
    assert parse_remap_setting("alice:staff") == ("alice", "staff")
    with pytest.raises(InvalidParameter):
        parse_remap_setting(" ")


def test_mapping_over_several_ranges():
    m = IDMapping((IDRange(100000, 10), IDRange(200000, 5)), (IDRange(100000, 15),))
    uids, gids = m.spec_maps()
    assert [(x.container_id, x.host_id, x.size) for x in uids] == [(0, 100000, 10),
                                                                  (10, 200000, 5)]
    assert [(x.container_id, x.host_id, x.size) for x in gids] == [(0, 100000, 15)]
    assert m.to_host(12, 3) == (200002, 100003)
    assert m.to_host(99, 0) == (65534, 100000)       # beyond the ranges: nobody
    assert m.shift_back(200002, 100003) == (12, 3)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_shifted_copy_keeps_setuid(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    f = src / "su"
    f.write_text("")
    os.chmod(f, 0o4755)
    (src / "link").symlink_to("su")
    mapping = IDMapping((IDRange(100000, 65536),), (IDRange(100000, 65536),))
    copy_tree(src, tmp_path / "dst", mapping.to_host)
    st = os.stat(tmp_path / "dst" / "su")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (100000, 100000, 0o4755)
    assert os.lstat(tmp_path / "dst" / "link").st_uid == 100000
    assert os.stat(tmp_path / "dst").st_uid == 100000


def test_unreachable_data_root_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    with pytest.raises(InvalidParameter, match="restricts access to the remapped root"):
        check_traversable(locked / "data")


def test_joined_user_namespace_follows_the_joined_container():
    assert UsernsRemap.joined_user_ns({"pid": "/proc/42/ns/pid"}) == "/proc/42/ns/user"
    assert UsernsRemap.joined_user_ns({"network": "/run/x/netns/abc"}) is None


def test_applies_unless_userns_host():
    r = UsernsRemap("default", Path("/x"),
                    IDMapping((IDRange(100000, 65536),), (IDRange(100000, 65536),)))
    assert r.applies({})
    assert not r.applies({"UsernsMode": "host"})
