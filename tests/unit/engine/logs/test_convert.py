"""The k8s-file -> json-file converter against a plain reference, and its
resume from a checkpoint at any record after a crash at any record."""

from __future__ import annotations

import random

import pytest
from k8s_testutil import (
    ALPHABET,
    T0,
    boundaries,
    conmon_records,
    convert,
    points_of,
    reference,
    stamp,
)

from dockyard.engine.logs.convert import CHECKPOINT_MARK, Converter
from dockyard.engine.logs.format import JsonEncoder, decode_json_record, encode_json_record


def test_encoder_matches_reference_encoding() -> None:
    rng = random.Random(3)
    enc = JsonEncoder()
    for _ in range(3000):
        payload = b"".join(rng.choice([*ALPHABET, b"plain text", b"\n"])
                           for _ in range(rng.randrange(0, 12)))
        ts = T0 + rng.randrange(3) * 1000
        stream = rng.choice(["stdout", "stderr"])
        assert enc.record(stream, payload, ts) == encode_json_record(stream, payload, ts)
        body = payload.replace(b"\n", b"")
        assert enc.line(stream, body, ts) == encode_json_record(stream, body + b"\n", ts)


@pytest.mark.parametrize("seed", range(8))
def test_converter_matches_reference(seed: int) -> None:
    rng = random.Random(seed)
    data = conmon_records(rng, 150)
    assert convert(Converter(), data, rng) == b"".join(reference(data))


def test_fast_path_yes_flood() -> None:
    # `yes | head`: full 8 KiB reads, each ending in a piece of a line
    line = b"y" * 100 + b"\n"
    flood = line * 3000
    records = []
    for n, off in enumerate(range(0, len(flood), 8192)):
        chunk, hdr = flood[off:off + 8192], stamp(T0 + n) + b" stdout "
        lines = chunk.split(b"\n")
        records += [hdr + b"F " + ln + b"\n" for ln in lines[:-1]]
        if lines[-1]:
            records.append(hdr + b"P " + lines[-1] + b"\n")
    data = b"".join(records)
    got = convert(Converter(), data, random.Random(1))
    assert got == b"".join(reference(data))
    assert got.count(b"\n") == 3000


def test_bad_lines_are_skipped() -> None:
    conv = Converter()
    data = (stamp(T0) + b" stdout F ok\n" + b"garbage\n" + b"x y\n"
            + stamp(T0 + 1) + b" stdnix F no\n" + stamp(T0 + 2) + b" stderr F ok2\n")
    got = convert(conv, data, random.Random(1))
    assert [decode_json_record(x).log for x in got.splitlines()] == [b"ok\n", b"ok2\n"]
    assert conv.bad_lines == 3


@pytest.mark.parametrize("seed", range(40))
def test_resume_from_any_checkpoint_after_a_crash_anywhere(seed: int) -> None:
    rng = random.Random(seed)
    data = conmon_records(rng, rng.choice([20, 60, 150]))
    full = reference(data)
    cuts = boundaries(data)
    r = rng.choice(cuts)
    # the first run converts up to R, writes that, checkpoints at R ...
    first = Converter()
    before = convert(first, data[:r], rng, final=False)
    checkpoint = first.checkpoint()
    assert checkpoint.startswith(CHECKPOINT_MARK) and checkpoint.endswith(b"\n")
    written = before.count(b"\n")
    assert before == b"".join(full[:written])
    # ... goes on and dies after writing some more (any number of records)
    k = rng.randrange(written, len(full) + 1)
    second = Converter()
    second.resume(points_of(full[:k]), checkpoint)
    rest = convert(second, data[r:], rng)
    assert rest == b"".join(full[k:]), (r, written, k)
    # and without a checkpoint, a replay from the start of the run
    third = Converter()
    third.resume(points_of(full[:k]))
    assert convert(third, data, rng) == b"".join(full[k:])


@pytest.mark.parametrize("seed", range(10))
def test_chained_checkpoints(seed: int) -> None:
    """Crash, resume from a checkpoint, checkpoint again, crash again."""
    rng = random.Random(100 + seed)
    data = conmon_records(rng, 120)
    full = reference(data)
    cuts = boundaries(data)
    json: list[bytes] = []
    conv, checkpoint, pos = Converter(), None, 0
    for _ in range(4):
        r = rng.choice([c for c in cuts if c >= pos])
        out = convert(conv, data[pos:r], rng, final=False)
        json += out.splitlines(keepends=True)
        checkpoint, pos = conv.checkpoint(), r
        # dies having written some of what comes next
        ahead = convert(conv, data[pos:rng.choice([c for c in cuts if c >= pos])], rng,
                        final=False)
        json += ahead.splitlines(keepends=True)[:rng.randrange(0, ahead.count(b"\n") + 1)]
        conv = Converter()
        conv.resume(points_of(json), checkpoint)
    json += convert(conv, data[pos:], rng).splitlines(keepends=True)
    assert json == full


def test_reader_gives_back_what_was_written(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Records the reader takes without json.loads (plain text) and the
    others come back as written, with the right times and streams."""
    import asyncio

    from dockyard.engine.logs.reader import read_log_batches
    from dockyard.util.timefmt import rfc3339_nano_fixed

    rng = random.Random(9)
    path = tmp_path / "c-json.log"
    want = []
    lines = []
    for i in range(2000):
        payload = b"".join(rng.choice([*ALPHABET, b"text", b"\n"]) for _ in range(5))
        if rng.random() < 0.5:
            payload = b"plain %d\n" % i
        ts = T0 + (i // 3) * 1000  # runs of equal times, as conmon writes them
        stream = rng.choice(["stdout", "stderr"])
        lines.append(encode_json_record(stream, payload, ts))
        want.append((1 if stream == "stdout" else 2, ts, decode_json_record(
            lines[-1].rstrip(b"\n")).log))
    path.write_bytes(b"".join(lines))

    async def read(**kw):  # type: ignore[no-untyped-def]
        return [r async for b in read_log_batches([path], stdout=True, stderr=True, **kw)
                for r in b]

    assert asyncio.run(read()) == [(s, p) for s, _, p in want]
    stamped = asyncio.run(read(timestamps=True, since_ns=T0 + 100_000))
    expect = [(s, rfc3339_nano_fixed(t).encode() + b" " + p) for s, t, p in want
              if t >= T0 + 100_000]
    assert stamped == expect
