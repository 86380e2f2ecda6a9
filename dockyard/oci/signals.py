"""Signal names as Docker accepts them (StopSignal, kill, stop --signal).

Docker accepts a number, or a name with or without the `SIG` prefix in any
case, including the real-time names `RTMIN+n` / `RTMAX-n`.  The error text is
moby/sys/signal's: `invalid signal: X` (lower case, the raw input).
"""

from __future__ import annotations

import re

from dockyard.errors import InvalidParameter

_SIGRTMIN = 34
_SIGRTMAX = 64

# Linux (x86/arm) numbers.  Aliases (CLD, IOT, POLL) map to the same numbers.
_BASE_SIGNALS: dict[str, int] = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6,
    "BUS": 7, "FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12,
    "PIPE": 13, "ALRM": 14, "TERM": 15, "STKFLT": 16, "CHLD": 17, "CLD": 17,
    "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23,
    "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29,
    "POLL": 29, "PWR": 30, "SYS": 31,
}


def _build_table() -> dict[str, int]:
    table = dict(_BASE_SIGNALS)
    table["RTMIN"] = _SIGRTMIN
    for i in range(1, 16):
        table[f"RTMIN+{i}"] = _SIGRTMIN + i
    for i in range(14, 0, -1):
        table[f"RTMAX-{i}"] = _SIGRTMAX - i
    table["RTMAX"] = _SIGRTMAX
    return table


SIGNALS: dict[str, int] = _build_table()

# Preferred name for each number (aliases lose to the canonical names).
_ALIASES = {"IOT", "CLD", "POLL"}
SIGNAL_NAMES: dict[int, str] = {
    num: name for name, num in SIGNALS.items() if name not in _ALIASES
}

# Go's strconv.Atoi: optional sign, decimal digits, nothing else.
_ATOI = re.compile(r"^[+-]?[0-9]+$")


def parse_signal(raw: str) -> int:
    """Return the signal number for `raw`, or raise InvalidParameter.

    A number is returned as is (Docker does not range-check it here; see
    `valid_signal`), except 0, which is rejected.
    """
    if _ATOI.match(raw):
        num = int(raw)
        if num == 0:
            raise InvalidParameter(f"invalid signal: {raw}")
        return num
    name = raw.upper()
    name = name.removeprefix("SIG")
    try:
        return SIGNALS[name]
    except KeyError:
        raise InvalidParameter(f"invalid signal: {raw}") from None


def valid_signal(num: int) -> bool:
    """True when `num` is a signal Linux knows (kill checks this after parsing)."""
    return num in SIGNAL_NAMES


def check_kill_signal(raw: str) -> int:
    """parse_signal plus the range check of `POST /containers/{id}/kill`."""
    num = parse_signal(raw)
    if not valid_signal(num):
        raise InvalidParameter(f"the linux daemon does not support signal {num}")
    return num


def signal_name(num: int) -> str:
    """`SIGTERM` for 15, `SIGRTMIN+3` for 37; the number as text if unknown."""
    name = SIGNAL_NAMES.get(num)
    return f"SIG{name}" if name else str(num)
