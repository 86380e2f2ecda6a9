from __future__ import annotations

import pytest

from dockyard.errors import InvalidParameter
from dockyard.oci.sizes import (
    format_tmpfs_size,
    merge_tmpfs_options,
    parse_ram_size,
    tmpfs_data_from_mount,
    tmpfs_mount_options,
)
from dockyard.oci.users import resolve_user

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000::/home/app:/bin/sh

nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
"""
GROUP = """root:x:0:
# comment
daemon:x:1:
wheel:x:10:app,daemon
audio:x:29:app
app:x:1000:
"""


@pytest.mark.parametrize("text,n", [
    ("64m", 64 << 20), ("1g", 1 << 30), ("512k", 512 << 10), ("100", 100),
    ("1.5GiB", 3 << 29), ("2 MB", 2 << 20), ("10b", 10),
])
def test_parse_ram_size(text, n):
    assert parse_ram_size(text) == n


def test_parse_ram_size_invalid():
    with pytest.raises(InvalidParameter, match="invalid size: '12x'"):
        parse_ram_size("12x")


def test_format_tmpfs_size():
    assert format_tmpfs_size(64 << 20) == "64m"
    assert format_tmpfs_size(1 << 30) == "1g"
    assert format_tmpfs_size(1000) == "1000"


def test_merge_tmpfs_options_later_wins():
    assert merge_tmpfs_options(["noexec", "nosuid", "nodev", "rprivate", "exec", "size=1m",
                                "size=2m"]) == ["nosuid", "nodev", "rprivate", "exec", "size=2m"]
    assert merge_tmpfs_options(["rprivate", "shared"]) == ["shared"]
    assert merge_tmpfs_options(["ro", "rw", "defaults"]) == ["rw"]


def test_tmpfs_mount_options_defaults():
    assert tmpfs_mount_options("") == ["noexec", "nosuid", "nodev", "rprivate"]
    assert tmpfs_mount_options("size=64m,mode=1777") == [
        "noexec", "nosuid", "nodev", "rprivate", "size=64m", "mode=1777"]


def test_tmpfs_invalid_option():
    with pytest.raises(InvalidParameter, match='invalid tmpfs option "foo"'):
        tmpfs_mount_options("foo=bar")
    with pytest.raises(InvalidParameter, match='invalid tmpfs option "tmpcopyup"'):
        tmpfs_mount_options("tmpcopyup")


def test_tmpfs_data_from_mount():
    assert tmpfs_data_from_mount({"SizeBytes": 64 << 20, "Mode": 0o1777}, True) == \
        "ro,mode=1777,size=64m"
    assert tmpfs_data_from_mount({"Options": [["exec"]]}, False) == "exec"
    with pytest.raises(InvalidParameter, match="invalid option: nosuid"):
        tmpfs_data_from_mount({"Options": [["nosuid"]]}, False)


def test_resolve_default_root():
    u = resolve_user("", PASSWD, GROUP)
    assert (u.uid, u.gid, u.additional_gids) == (0, 0, (0,))


def test_resolve_named_user_with_supplementary_groups():
    u = resolve_user("app", PASSWD, GROUP)
    assert (u.uid, u.gid, u.additional_gids, u.home) == (1000, 1000, (1000, 10, 29), "/home/app")


def test_resolve_user_and_group():
    u = resolve_user("app:wheel", PASSWD, GROUP)
    assert (u.uid, u.gid, u.additional_gids) == (1000, 10, (10,))
    u = resolve_user("1000:29", PASSWD, GROUP)
    assert (u.uid, u.gid) == (1000, 29)


def test_numeric_uid_without_passwd_entry():
    u = resolve_user("4242", PASSWD, GROUP)
    assert (u.uid, u.gid, u.additional_gids) == (4242, 0, (0,))
    u = resolve_user("4242:4343", None, None)
    assert (u.uid, u.gid) == (4242, 4343)


def test_unknown_user_and_group():
    with pytest.raises(InvalidParameter) as e:
        resolve_user("ghost", PASSWD, GROUP)
    assert e.value.message == "unable to find user ghost: no matching entries in passwd file"
    with pytest.raises(InvalidParameter) as e:
        resolve_user("app:ghosts", PASSWD, GROUP)
    assert e.value.message == "unable to find group ghosts: no matching entries in group file"
    with pytest.raises(InvalidParameter, match="unable to find user app"):
        resolve_user("app", None, None)


def test_group_add():
    u = resolve_user("app", PASSWD, GROUP, ["audio", "5000", "daemon"])
    # audio is app's own supplementary group too: listed once, as Docker does
    assert u.additional_gids == (1000, 10, 29, 5000, 1)
    assert resolve_user("app", PASSWD, GROUP, ["app", "wheel"]).additional_gids == (1000, 10, 29)
    with pytest.raises(InvalidParameter, match="Unable to find group nope: no matching"):
        resolve_user("", PASSWD, GROUP, ["nope"])


def test_uid_out_of_range():
    with pytest.raises(InvalidParameter, match="uids and gids must be in range 0-2147483647"):
        resolve_user("4294967296", PASSWD, GROUP)
