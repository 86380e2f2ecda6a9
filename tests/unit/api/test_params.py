"""Query parameters parsed with dockerd's rules."""

from __future__ import annotations

import pytest

from dockyard.api.params import resize_size
from dockyard.api.server import Request
from dockyard.errors import InvalidParameter


def req(**query: str) -> Request:
    return Request(method="POST", target="/", path="/", headers={},
                   query={k: [v] for k, v in query.items()})


def test_resize_takes_both_sizes() -> None:
    assert resize_size(req(h="40", w="120")) == (40, 120)
    assert resize_size(req(h="0", w="4294967295")) == (0, 4294967295)


@pytest.mark.parametrize("query", [
    {},                       # dockerd: ParseUint("") fails, a resize needs both
    {"h": "40"},
    {"w": "120"},
    {"h": "", "w": "1"},
    {"h": "+5", "w": "1"},    # ParseUint takes digits only: no sign, no spaces,
    {"h": " 5", "w": "1"},    # no underscores, no other scripts' digits
    {"h": "5_0", "w": "1"},
    {"h": "\u0663", "w": "1"},
    {"h": "-1", "w": "1"},
    {"h": "4294967296", "w": "1"},
])
def test_resize_refuses_what_dockerd_refuses(query: dict[str, str]) -> None:
    with pytest.raises(InvalidParameter, match="invalid resize"):
        resize_size(req(**query))
