"""Go's text forms that Docker's classic builder writes into image history
and error messages: `%q` of strings, string slices and the health-check
struct, `%v` of string slices, and time.ParseDuration / Duration.String.

Pure (no I/O).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from dockyard.errors import InvalidParameter
from dockyard.oci.gojson import go_quote

__all__ = [
    "format_duration",
    "go_list",
    "go_quote",
    "go_quote_list",
    "healthcheck_q",
    "parse_duration",
    "quote_rune",
]

_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
          "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_MAX = (1 << 63) - 1
_NUM = re.compile(r"([0-9]*)(\.[0-9]*)?")
_UNIT = re.compile(r"[^0-9.]*")


def go_quote_list(items: Sequence[str] | None) -> str:
    """`%q` of a []string: `["a" "b"]`; a nil slice is `[]`."""
    return "[" + " ".join(go_quote(s) for s in items or []) + "]"


def go_list(items: Sequence[str] | None) -> str:
    """`%v` of a []string: `[a b]`."""
    return "[" + " ".join(items or []) + "]"


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds, with its error texts."""
    orig = text
    quoted = go_quote(orig)
    neg = False
    if text[:1] in "+-" and text:
        neg = text[0] == "-"
        text = text[1:]
    if text == "0":
        return 0
    if not text:
        raise InvalidParameter(f"time: invalid duration {quoted}")
    total = 0
    while text:
        m = _NUM.match(text)
        assert m is not None
        whole, frac = m.group(1), m.group(2) or ""
        if not whole and len(frac) <= 1:
            raise InvalidParameter(f"time: invalid duration {quoted}")
        text = text[m.end():]
        u = _UNIT.match(text)
        assert u is not None
        unit = u.group(0)
        if not unit:
            raise InvalidParameter(f"time: missing unit in duration {quoted}")
        if unit not in _UNITS:
            raise InvalidParameter(f"time: unknown unit {go_quote(unit)} in duration {quoted}")
        text = text[u.end():]
        scale = _UNITS[unit]
        value = int(whole or "0") * scale
        digits = frac[1:]
        if digits:
            value += int(digits) * scale // 10 ** len(digits)
        total += value
        if total > _MAX + (1 if neg else 0):
            raise InvalidParameter(f"time: invalid duration {quoted}")
    return -total if neg else total


def _frac(value: int, unit: int) -> str:
    whole, rest = divmod(value, unit)
    digits = len(str(unit)) - 1
    tail = f"{rest:0{digits}d}".rstrip("0")
    return f"{whole}.{tail}" if tail else str(whole)


def format_duration(ns: int) -> str:
    """Go's time.Duration.String(): `1h2m3.5s`, `1.5ms`, `0s`."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_frac(ns, 1_000)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_frac(ns, 1_000_000)}ms"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    secs = _frac(rest, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}"
    if minutes:
        return f"{sign}{minutes}m{secs}"
    return f"{sign}{secs}"


def quote_rune(n: int) -> str:
    """`%q` of an int: Go prints it as a quoted character (`'\\x03'`)."""
    if n == 0x27:
        return "'\\''"
    if n == 0x5C:
        return "'\\\\'"
    special = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}
    if n in special:
        return f"'{special[n]}'"
    if n < 0 or n > 0x10FFFF or 0xD800 <= n <= 0xDFFF:
        return "'\\ufffd'" if n >= 0 else "'�'"
    if n < 0x20 or n == 0x7F:
        return f"'\\x{n:02x}'"
    ch = chr(n)
    if ch.isprintable():
        return f"'{ch}'"
    return f"'\\u{n:04x}'" if n < 0x10000 else f"'\\U{n:08x}'"


def healthcheck_q(hc: dict[str, Any]) -> str:
    """`%q` of a *HealthConfig, as the classic builder writes a HEALTHCHECK
    into history: `&{["CMD-SHELL" "true"] "5s" "0s" "0s" "0s" '\\x03'}`."""
    parts = [go_quote_list(hc.get("Test"))]
    for key in ("Interval", "Timeout", "StartPeriod", "StartInterval"):
        parts.append(go_quote(format_duration(int(hc.get(key) or 0))))
    parts.append(quote_rune(int(hc.get("Retries") or 0)))
    return "&{" + " ".join(parts) + "}"
