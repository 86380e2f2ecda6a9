"""Docker's (Go's) text forms of a time, from nanoseconds since the epoch, in UTC.

- `rfc3339_nano`: Go's time.RFC3339Nano, trailing zeros of the fraction
  trimmed (and the dot with them): inspect times, json-file `time`, cp stat.
- `rfc3339`: the same, but a zero time is Go's zero value
  `0001-01-01T00:00:00Z`, as an unset time.Time marshals.
- `rfc3339_nano_fixed`: always nine fraction digits (moby's
  RFC3339NanoFixed): `docker logs -t` prefixes, image `Created`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

ZERO_TIME = "0001-01-01T00:00:00Z"
_NS = 1_000_000_000


def _seconds(secs: int) -> str:
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def rfc3339_nano(ns: int) -> str:
    secs, nanos = divmod(ns, _NS)
    frac = f"{nanos:09d}".rstrip("0")
    return f"{_seconds(secs)}.{frac}Z" if frac else f"{_seconds(secs)}Z"


# a container's times are formatted again at every inspect: the few
# thousand recent ones are kept (log records, each with its own time, use
# rfc3339_nano and are not)
@lru_cache(maxsize=4096)
def rfc3339(ns: int | None) -> str:
    return rfc3339_nano(ns) if ns else ZERO_TIME


def rfc3339_nano_fixed(ns: int) -> str:
    secs, nanos = divmod(ns, _NS)
    return f"{_seconds(secs)}.{nanos:09d}Z"
