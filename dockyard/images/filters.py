"""Docker's image list / prune filters.

Keys and error texts follow moby's daemon/images/image_list.go and
image_prune.go: unknown key -> `invalid filter '<key>'`, a bad boolean ->
`invalid filter 'dangling=<v>'`; `until` takes Docker timestamps (Unix
seconds, RFC 3339 dates, or Go durations meaning "ago").
"""

from __future__ import annotations

import re
import time
from datetime import datetime

from dockyard.errors import InvalidParameter
from dockyard.images.changes import parse_go_duration

Filters = dict[str, list[str]]

LIST_KEYS = ("dangling", "label", "label!", "before", "since", "reference", "until")
PRUNE_KEYS = ("dangling", "until", "label", "label!")


def check_keys(filters: Filters, allowed: tuple[str, ...]) -> None:
    for key in filters:
        if key not in allowed:
            raise InvalidParameter(f"invalid filter '{key}'")


def get_bool(filters: Filters, key: str, default: bool) -> bool:
    values = filters.get(key) or []
    if not values:
        return default
    for v in values:
        if v.lower() in ("true", "1"):
            return True
        if v.lower() in ("false", "0"):
            return False
    raise InvalidParameter(f"invalid filter '{key}={values[0]}'")


def parse_timestamp(value: str, now: float | None = None) -> float:
    """Docker's timetypes.GetTimestamp, as Unix seconds."""
    now = time.time() if now is None else now
    try:
        return now - parse_go_duration(value) / 1e9
    except InvalidParameter:
        pass
    if re.fullmatch(r"-?\d+(\.\d+)?", value):
        return float(value)
    v = value.replace("Z", "+00:00") if value.endswith("Z") else value
    try:
        return datetime.fromisoformat(v).timestamp()
    except ValueError:
        pass
    raise InvalidParameter(
        f"failed to parse value as time or duration: \"{value}\"")


def created_ts(created: str) -> float:
    """Parse an image config's RFC 3339 `created` (nanoseconds allowed)."""
    if not created:
        return 0.0
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$", created)
    if not m:
        return 0.0
    base = datetime.fromisoformat(m.group(1) + (
        "+00:00" if m.group(3) in (None, "Z") else m.group(3)))
    frac = float("0" + m.group(2)) if m.group(2) else 0.0
    return base.timestamp() + frac


def labels_match(labels: dict[str, str], filters: Filters) -> bool:
    """label (all must match) and label! (none may match)."""
    def one(expr: str) -> bool:
        k, eq, v = expr.partition("=")
        if k not in labels:
            return False
        return not eq or labels[k] == v

    if not all(one(e) for e in filters.get("label", [])):
        return False
    return not any(one(e) for e in filters.get("label!", []))
