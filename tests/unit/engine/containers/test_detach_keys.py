"""Docker's detach key syntax, including keys that are not one byte."""

from __future__ import annotations

import pytest

from dockyard.engine.containers.attach import DEFAULT_DETACH_KEYS, parse_detach_keys
from dockyard.errors import InvalidParameter


def test_default_and_docker_forms() -> None:
    assert parse_detach_keys(None) == DEFAULT_DETACH_KEYS
    assert parse_detach_keys("") == DEFAULT_DETACH_KEYS
    assert parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert parse_detach_keys("a,ctrl-@,ctrl-[") == b"a\x00\x1b"


@pytest.mark.parametrize("spec", ["\u0100", "\U0001f600", "a,\u00e9", "\u00e9", "xx", "ctrl-\u00e9"])
def test_a_key_that_is_not_one_byte_is_refused(spec: str) -> None:
    # Go's term.ToBytes takes a one-byte key as it is and refuses anything
    # longer, so a character outside ASCII (two or more bytes in UTF-8) is
    # an invalid key, never a crash
    with pytest.raises(InvalidParameter):
        parse_detach_keys(spec)
