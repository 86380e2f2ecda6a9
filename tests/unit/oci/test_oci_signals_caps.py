from __future__ import annotations

import pytest
from oci_testutil import OUR_CAPBND

from dockyard.errors import InvalidParameter
from dockyard.oci.caps import (
    ALL_CAPS,
    DEFAULT_CAPS,
    apply_cap_add_drop,
    caps_from_mask,
    container_caps,
    validate_cap_lists,
)
from dockyard.oci.signals import check_kill_signal, parse_signal, signal_name


@pytest.mark.parametrize("raw,num", [
    ("SIGUSR1", 10), ("USR1", 10), ("usr1", 10), ("sigusr1", 10), ("10", 10),
    ("SIGRTMIN+3", 37), ("RTMIN", 34), ("rtmax-1", 63), ("SIGRTMAX", 64),
    ("TERM", 15), ("KILL", 9), ("SIGCLD", 17), ("+9", 9), ("99", 99),
])
def test_parse_signal(raw, num):
    assert parse_signal(raw) == num


@pytest.mark.parametrize("raw", ["SIGFOO", "0", "", "RTMIN+16", "1.5", " 9"])
def test_parse_signal_invalid(raw):
    with pytest.raises(InvalidParameter) as e:
        parse_signal(raw)
    assert e.value.message == f"invalid signal: {raw}"
    assert e.value.status == 400


def test_kill_signal_range():
    assert check_kill_signal("SIGHUP") == 1
    with pytest.raises(InvalidParameter, match="the linux daemon does not support signal 99"):
        check_kill_signal("99")


def test_signal_name():
    assert signal_name(15) == "SIGTERM"
    assert signal_name(37) == "SIGRTMIN+3"
    assert signal_name(6) == "SIGABRT"
    assert signal_name(200) == "200"


def test_capability_tables():
    assert len(ALL_CAPS) == 41 and len(DEFAULT_CAPS) == 14
    assert "CAP_SYS_RESOURCE" not in OUR_CAPBND and len(OUR_CAPBND) == 40
    assert caps_from_mask(0b101) == {"CAP_CHOWN", "CAP_DAC_READ_SEARCH"}


def test_cap_add_drop_basic():
    caps = apply_cap_add_drop(DEFAULT_CAPS, ["net_admin", "CAP_SYS_PTRACE"], ["chown"])
    assert "CAP_CHOWN" not in caps
    assert caps[-2:] == ["CAP_NET_ADMIN", "CAP_SYS_PTRACE"]
    assert caps[0] == "CAP_DAC_OVERRIDE"


def test_cap_add_duplicate_default_is_not_repeated():
    assert apply_cap_add_drop(DEFAULT_CAPS, ["CHOWN"], None) == list(DEFAULT_CAPS)


def test_cap_add_all_drop_some():
    caps = apply_cap_add_drop(DEFAULT_CAPS, ["ALL"], ["NET_ADMIN"], OUR_CAPBND)
    assert "CAP_NET_ADMIN" not in caps and "CAP_SYS_ADMIN" in caps
    assert "CAP_SYS_RESOURCE" not in caps  # never more than the host has


def test_cap_drop_all_keeps_added_only():
    assert apply_cap_add_drop(DEFAULT_CAPS, ["kill"], ["all"]) == ["CAP_KILL"]
    assert apply_cap_add_drop(DEFAULT_CAPS, None, ["ALL"]) == []


def test_privileged_gets_host_bounding_set_only():
    caps = container_caps(True, None, None, OUR_CAPBND)
    assert len(caps) == 40 and "CAP_SYS_RESOURCE" not in caps
    assert container_caps(True, None, None) == list(ALL_CAPS)


@pytest.mark.parametrize("field,kw", [("CapAdd", "cap_add"), ("CapDrop", "cap_drop")])
def test_unknown_capability(field, kw):
    args = {"cap_add": None, "cap_drop": None, kw: ["foo"]}
    with pytest.raises(InvalidParameter) as e:
        validate_cap_lists(args["cap_add"], args["cap_drop"])
    assert e.value.message == f'invalid {field}: unknown capability: "CAP_FOO"'


def test_capability_missing_from_host():
    with pytest.raises(InvalidParameter) as e:
        validate_cap_lists(["SYS_RESOURCE"], None, OUR_CAPBND)
    assert e.value.message == (
        'invalid CapAdd: capability not supported by your kernel or not available in the '
        'current environment: "CAP_SYS_RESOURCE"')
