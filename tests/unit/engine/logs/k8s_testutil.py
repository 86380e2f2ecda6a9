"""Helpers for the log tests: conmon-like k8s-file records and the plain
reference conversion the converter must match."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime

from dockyard.engine.logs.convert import Converter, ResumePoint, TailScan
from dockyard.engine.logs.format import (
    CHUNK_SIZE,
    decode_json_record,
    encode_json_record,
    parse_k8s_line,
)

T0 = 1_795_000_000_000_000_000
ALPHABET = [b"a", b"b", b" ", b"\t", b'"', b"\\", b"<", b"&", b"\xc3\xa9", b"\xff", b"\r",
            b"\x7f", b"\x00", b"\xe2\x80\xa8"]


def stamp(ts: int) -> bytes:
    secs, nanos = divmod(ts, 1_000_000_000)
    text = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{nanos:09d}+00:00".encode()


def conmon_records(rng: random.Random, reads: int) -> bytes:
    """What conmon writes: each read of up to 8 KiB of one stream becomes
    records with the read's time; lines end F, a read's unfinished tail P."""
    out = []
    ts = T0
    for _ in range(reads):
        ts += rng.randrange(1, 5000)
        stream = rng.choice([b"stdout", b"stdout", b"stderr"])
        parts = []
        size = rng.choice([rng.randrange(1, 300), rng.randrange(1, 8193), 8192])
        while sum(map(len, parts)) < size:
            if rng.random() < 0.2:
                parts.append(b"\n")
            elif rng.random() < 0.7:
                parts.append(b"y" * rng.randrange(1, 200))
            else:
                parts.append(rng.choice(ALPHABET))
        data = b"".join(parts)[:size]
        hdr = stamp(ts) + b" " + stream + b" "
        pos = 0
        while pos < len(data):
            nl = data.find(b"\n", pos)
            if nl < 0:
                out.append(hdr + b"P " + data[pos:] + b"\n")
                break
            out.append(hdr + b"F " + data[pos:nl + 1])
            pos = nl + 1
    return b"".join(out)


def reference(data: bytes) -> list[bytes]:
    """The conversion as the json-file driver defines it, line by line."""
    bufs: dict[str, bytes] = {}
    times: dict[str, int] = {}
    out: list[bytes] = []
    for raw in data.split(b"\n")[:-1]:
        e = parse_k8s_line(raw + b"\n")
        times.setdefault(e.stream, e.timestamp_ns)
        buf = bufs.get(e.stream, b"") + e.data
        while len(buf) - (0 if e.partial else 1) >= CHUNK_SIZE:
            out.append(encode_json_record(e.stream, buf[:CHUNK_SIZE], times[e.stream]))
            buf = buf[CHUNK_SIZE:]
        if e.partial:
            bufs[e.stream] = buf
        else:
            out.append(encode_json_record(e.stream, buf, times.pop(e.stream)))
            bufs.pop(e.stream, None)
    for stream in ("stdout", "stderr"):
        if bufs.get(stream):
            out.append(encode_json_record(stream, bufs[stream], times[stream]))
    return out


def convert(conv: Converter, data: bytes, rng: random.Random, final: bool = True) -> bytes:
    out: list[bytes] = []
    rest = data
    while rest:
        used = conv.feed(rest[:rng.randrange(1, 20000)], out)
        if used == 0:
            used = conv.feed(rest, out)
        rest = rest[used:]
    if final:
        conv.finish(out)
    return b"".join(out)


def boundaries(data: bytes) -> list[int]:
    return [0] + [m.end() for m in re.finditer(b"\n", data)]


def points_of(records: list[bytes]) -> dict[str, ResumePoint]:
    scan = TailScan(1 << 30)
    for line in reversed(records):
        if scan.add(decode_json_record(line.rstrip(b"\n")), len(line)):
            break
    return scan.points()
