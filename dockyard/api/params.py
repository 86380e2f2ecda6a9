"""Query parameters with Docker's parsing rules and error texts."""

from __future__ import annotations

import re

from dockyard.api.server import Request
from dockyard.errors import InvalidParameter

_DIGITS = re.compile(r"[0-9]+")


def resize_size(req: Request) -> tuple[int, int]:
    """The `h` and `w` of a resize request: both required, each an unsigned
    32-bit decimal (dockerd's strconv.ParseUint(v, 10, 32))."""
    out = []
    for key, word in (("h", "height"), ("w", "width")):
        raw = req.query_get(key) or ""
        if not _DIGITS.fullmatch(raw) or int(raw) > 0xFFFFFFFF:
            raise InvalidParameter(f'invalid resize {word} "{raw}"')
        out.append(int(raw))
    return out[0], out[1]


def event_time(value: str | None) -> int | None:
    """Docker's events since/until: Unix seconds with an optional fraction
    (the CLI turns durations and dates into that form before sending)."""
    if value is None or value == "":
        return None
    try:
        if "." in value:
            sec, frac = value.split(".", 1)
            return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])
        return int(value) * 1_000_000_000
    except ValueError:
        raise InvalidParameter(f"invalid timestamp: {value!r}") from None
