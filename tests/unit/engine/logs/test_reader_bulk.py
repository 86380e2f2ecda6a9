"""Reading json-file logs: the bulk path for blocks of plain records gives
what the record-by-record path gives, record for record, also when a block
mixes plain records with escaped ones, attributes or a bad line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from dockyard.engine.logs import reader
from dockyard.engine.logs.reader import read_log_batches


def _record(log: str, stream: str = "stdout", **extra: object) -> bytes:
    rec = {"log": log, "stream": stream, "time": "2026-12-06T07:00:00.123456789Z", **extra}
    return json.dumps(rec, separators=(",", ":")).encode() + b"\n"


def _read(path: Path, **kw: bool) -> list[tuple[int, bytes]]:
    async def go() -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        async for batch in read_log_batches([path], **{"stdout": True, "stderr": True, **kw}):
            out += batch
        return out
    return asyncio.run(go())


PLAIN = [_record(f"line {i} of plain text\n", "stderr" if i % 3 == 0 else "stdout")
         for i in range(500)] + [_record("no newline at the end")]
MIXED = [*PLAIN[:100], _record('a "quoted" tab\there\n'), _record("é ünïcode\n"),
         _record("with attrs\n", attrs={"a": "b"}), b"not json at all\n", b"\n",
         *PLAIN[100:]]


@pytest.mark.parametrize("lines", [PLAIN, MIXED], ids=["plain", "mixed"])
@pytest.mark.parametrize("streams", [{}, {"stderr": False}, {"stdout": False}])
@pytest.mark.parametrize("chunk", [1 << 20, 2048], ids=["one-block", "many-blocks"])
def test_bulk_path_gives_the_record_by_record_result(tmp_path, monkeypatch, lines, streams,
                                                      chunk):
    monkeypatch.setattr(reader, "READ_CHUNK", chunk)
    path = tmp_path / "c-json.log"
    path.write_bytes(b"".join(lines))
    fast = _read(path, **streams)
    monkeypatch.setattr(reader._Filter, "_apply_plain", lambda self, block, out: False)
    slow = _read(path, **streams)
    assert fast == slow
    assert len(fast) >= 150          # the records were read at all


def test_plain_block_is_taken_in_bulk_and_exactly(tmp_path, monkeypatch):
    monkeypatch.setattr(reader, "READ_CHUNK", 4096)        # many blocks
    path = tmp_path / "c-json.log"
    path.write_bytes(b"".join(PLAIN))
    got = _read(path)
    assert [d for _, d in got] == [json.loads(r)["log"].encode() for r in PLAIN]
    assert [s for s, _ in got] == [2 if json.loads(r)["stream"] == "stderr" else 1
                                   for r in PLAIN]


@pytest.mark.parametrize("inline", [0, 64 << 10, 1 << 30], ids=["threads", "small", "all"])
def test_reads_give_the_same_records_on_the_loop_or_in_threads(tmp_path, monkeypatch, inline):
    """Small reads (what a follower is woken for) are done on the event
    loop, big ones in a worker thread; both give every record once."""
    monkeypatch.setattr(reader, "READ_CHUNK", 4096)
    monkeypatch.setattr(reader, "INLINE_READ", inline)
    hops: list[object] = []
    real = asyncio.to_thread

    async def counted(fn, /, *args, **kw):
        hops.append(fn)
        return await real(fn, *args, **kw)

    monkeypatch.setattr(reader.asyncio, "to_thread", counted)
    path = tmp_path / "c-json.log"
    path.write_bytes(b"".join(MIXED))
    got = _read(path)
    monkeypatch.setattr(reader._Filter, "_apply_plain", lambda self, block, out: False)
    assert got == _read(path) and len(got) >= 500
    reads = [h for h in hops if h is reader._read_lines]
    if inline >= 1 << 30:
        assert reads == []
    elif inline == 0:
        assert len(reads) > 20
