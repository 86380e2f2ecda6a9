"""Query parameters with Docker's parsing rules and error texts."""

from __future__ import annotations

from dockyard.api.server import Request
from dockyard.errors import InvalidParameter


def resize_size(req: Request) -> tuple[int, int]:
    """The `h` and `w` of a resize request."""
    out = []
    for key, word in (("h", "height"), ("w", "width")):
        raw = req.query_get(key) or "0"
        try:
            v = int(raw)
            if v < 0 or v > 0xFFFFFFFF:
                raise ValueError
        except ValueError:
            raise InvalidParameter(f'invalid resize {word} "{raw}"') from None
        out.append(v)
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
