"""Parsing conmon's k8s-file log lines (pure).

conmon (ctr_logging.c) writes, per newline-terminated piece of output:
    <local RFC3339 time with nanoseconds and ±HH:MM offset> <stream> <F|P> <bytes>
`F` lines carry the container's own newline; a `P` (partial) line is a
piece of output that did not end in a newline (a read ended mid-line, or
the container wrote no newline before exiting) and conmon appends a "\n"
that is not part of the data.  So the exact output is the concatenation
of every entry's `data`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class LogEntry:
    timestamp_ns: int        # nanoseconds since the Unix epoch (UTC)
    stream: str              # "stdout" or "stderr"
    partial: bool
    data: bytes              # exactly what the container wrote



class LogParseError(ValueError):
    pass


def parse_timestamp_ns(text: str) -> int:
    """`2026-11-28T23:01:20.989985462+00:00` (or `Z`) -> ns since the epoch.

    datetime keeps only microseconds, so the fraction is handled apart.
    """
    if "T" not in text:
        raise LogParseError(f"bad timestamp {text!r}")
    if text.endswith("Z"):
        body, offset = text[:-1], "+00:00"
    else:
        body, offset = text[:-6], text[-6:]
        if offset[0] not in "+-" or offset[3] != ":":
            raise LogParseError(f"bad timestamp offset {text!r}")
    whole, _, frac = body.partition(".")
    if frac and not frac.isdigit():
        raise LogParseError(f"bad timestamp fraction {text!r}")
    try:
        dt = datetime.fromisoformat(whole + offset)
    except ValueError as e:
        raise LogParseError(f"bad timestamp {text!r}") from e
    nanos = int((frac + "000000000")[:9]) if frac else 0
    return int(dt.timestamp()) * 1_000_000_000 + nanos


def parse_k8s_log_line(line: bytes) -> LogEntry:
    """One line of a k8s-file log (with or without its trailing newline).

    For an `F` line the newline is the container's and is kept in `data`;
    for a `P` line it was added by conmon and is dropped.
    """
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        raise LogParseError(f"short log line {line[:80]!r}")
    ts_raw, stream_raw, tag = parts[0], parts[1], parts[2]
    content = parts[3] if len(parts) == 4 else b""
    if tag.endswith(b"\n"):              # "TS stdout F\n": an empty F line
        tag, content = tag[:-1], b"\n"
    stream = stream_raw.decode("ascii", errors="replace")
    if stream not in ("stdout", "stderr"):
        raise LogParseError(f"bad stream {stream!r}")
    if tag not in (b"F", b"P"):
        raise LogParseError(f"bad tag {tag!r}")
    partial = tag == b"P"
    if partial:
        content = content.removesuffix(b"\n")
    elif not content.endswith(b"\n"):
        # A reader handed us the line without its newline: F means there was one.
        content += b"\n"
    return LogEntry(parse_timestamp_ns(ts_raw.decode("ascii", errors="replace")),
                    stream, partial, content)


def iter_log_entries(blob: bytes) -> list[LogEntry]:
    """Every complete entry in a chunk of a log file (a trailing fragment
    without its newline is still being written and is left out)."""
    # Split on "\n" only: tty output carries "\r", which splitlines() would
    # wrongly treat as a line end.
    pieces = blob.split(b"\n")
    return [parse_k8s_log_line(raw + b"\n") for raw in pieces[:-1]]
