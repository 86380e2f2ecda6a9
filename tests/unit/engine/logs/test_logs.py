"""Unit tests for dockyard.engine.logs (no root, plain files)."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dockyard.engine.logs.files import json_log_files
from dockyard.engine.logs.format import (
    CHUNK_SIZE,
    encode_json_record,
    parse_json_file_opts,
    parse_k8s_line,
    parse_since,
    parse_size,
    parse_until,
)
from dockyard.engine.logs.pump import LogPump
from dockyard.engine.logs.reader import read_logs
from dockyard.errors import InvalidParameter
from dockyard.util.timefmt import rfc3339_nano, rfc3339_nano_fixed

T0 = 1_795_000_000_123_456_789  # 2026-11-18T...Z


def k8s(ts: int, stream: str, tag: str, text: bytes | str) -> bytes:
    if isinstance(text, str):
        text = text.encode()
    secs, nanos = divmod(ts, 1_000_000_000)
    stamp = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos:09d}+00:00 {stream} {tag} ".encode() + text + b"\n"


def append(path: Path, *lines: bytes) -> None:
    with open(path, "ab") as f:
        f.write(b"".join(lines))


def records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def all_logs(json_log: Path, max_file: int = 1) -> list[dict]:
    out: list[dict] = []
    for p in json_log_files(json_log, max_file):
        out.extend(records(p))
    return out


def pump_all(pump: LogPump, final: bool = False) -> int:
    return asyncio.run(pump.pump_once(final=final))


@pytest.fixture
def paths(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "ctr.log", tmp_path / "abc-json.log"


def collect(json_logs: list[Path], **kw) -> list[tuple[int, bytes]]:
    async def go() -> list[tuple[int, bytes]]:
        kw.setdefault("stdout", True)
        kw.setdefault("stderr", True)
        return [item async for item in read_logs(json_logs, **kw)]
    return asyncio.run(go())


# ------------------------------------------------------------------ helpers

def test_parse_k8s_line() -> None:
    e = parse_k8s_line(b"2026-11-28T23:01:20.989985462+00:00 stdout F hi there\n")
    assert (e.stream, e.partial, e.data) == ("stdout", False, b"hi there\n")
    assert e.timestamp_ns % 1_000_000_000 == 989985462
    p = parse_k8s_line(b"2026-11-28T23:01:20.989985462+00:00 stderr P abc\n")
    assert (p.stream, p.partial, p.data) == ("stderr", True, b"abc")


def test_parse_since_until() -> None:
    assert parse_since("1732837280.123456789") == 1732837280_123456789
    assert parse_since("1732837280.5") == 1732837280_500000000
    assert parse_since("1732837280") == 1732837280_000000000
    assert parse_since("1732837280.1234567891") == 1732837280_123456789
    assert parse_since("") == 0
    assert parse_until("0") is None and parse_until("") is None
    assert parse_until("10.25") == 10_250_000_000
    for bad in ("abc", "1.+5", "1.", " 1", "1_000"):
        with pytest.raises(InvalidParameter, match='invalid value for "since"'):
            parse_since(bad)


def test_parse_size_and_opts() -> None:
    assert parse_size("10m") == 10 << 20
    assert parse_size("1k") == 1024
    assert parse_size("1KiB") == 1024
    assert parse_size("1.5g") == 3 << 29
    assert parse_size("100") == 100
    for bad in ("", "m", "10x", "-1k"):
        with pytest.raises(InvalidParameter):
            parse_size(bad)
    o = parse_json_file_opts({"max-size": "1k", "max-file": "3", "compress": "true"})
    assert (o.max_size, o.max_file, o.compress) == (1024, 3, True)
    assert parse_json_file_opts(None).max_size is None
    with pytest.raises(InvalidParameter, match="unknown log opt 'foo' for json-file log driver"):
        parse_json_file_opts({"foo": "1"})
    with pytest.raises(InvalidParameter, match="max-file cannot be less than 1"):
        parse_json_file_opts({"max-file": "0"})
    with pytest.raises(InvalidParameter, match="max-size must be a positive number"):
        parse_json_file_opts({"max-size": "0"})
    with pytest.raises(InvalidParameter, match="compress cannot be true"):
        parse_json_file_opts({"compress": "true"})


def test_encode_matches_go_escaping() -> None:
    ns = int(datetime(2026, 11, 28, 23, 1, 20, tzinfo=UTC).timestamp()) * 10**9 + 989985462
    line = encode_json_record("stdout", b'hello\n', ns)
    assert line == (b'{"log":"hello\\n","stream":"stdout",'
                    b'"time":"2026-11-28T23:01:20.989985462Z"}\n')
    odd = encode_json_record("stderr", b'\t<a&b>"\\\r\xff\xe2\x82 \xc3\xa9\n', ns)
    assert odd.startswith(b'{"log":"\\u0009\\u003ca\\u0026b\\u003e\\"\\\\\\r'
                          b'\\ufffd\\ufffd\\ufffd \xc3\xa9\\n","stream":"stderr"')
    assert json.loads(odd)["log"] == '\t<a&b>"\\\r\ufffd\ufffd\ufffd \u00e9\n'
    # `log` is omitempty in moby
    assert encode_json_record("stdout", b"", ns).startswith(b'{"stream":"stdout",')


# ------------------------------------------------------------------ pump

def test_pump_full_and_partial_records(paths: tuple[Path, Path]) -> None:
    conmon, jlog = paths
    append(conmon,
           k8s(T0, "stdout", "F", "one"),
           k8s(T0 + 1, "stdout", "P", "hel"),
           k8s(T0 + 2, "stderr", "F", "err"),
           k8s(T0 + 3, "stdout", "F", "lo"))
    pump = LogPump(conmon, jlog, None, 1)
    assert pump_all(pump) == 3
    got = records(jlog)
    assert [(r["stream"], r["log"]) for r in got] == [
        ("stdout", "one\n"), ("stderr", "err\n"), ("stdout", "hello\n")]
    # A merged line keeps its first piece's time.
    assert got[2]["time"] == rfc3339_nano(T0 + 1)
    # An open line is written (without "\n") only by the final pump.
    append(conmon, k8s(T0 + 4, "stdout", "P", "no newline"))
    assert pump_all(pump) == 0
    assert pump_all(pump, final=True) == 1
    assert records(jlog)[-1]["log"] == "no newline"
    assert pump_all(pump) == 0


def test_pump_missing_conmon_log(paths: tuple[Path, Path]) -> None:
    conmon, jlog = paths
    pump = LogPump(conmon, jlog, None, 1)
    assert pump_all(pump) == 0
    assert not jlog.exists()
    append(conmon, k8s(T0, "stdout", "F", "late"))
    assert pump_all(pump) == 1


def test_pump_16k_split(paths: tuple[Path, Path]) -> None:
    conmon, jlog = paths
    long = b"x" * 40000
    pieces = [long[i:i + 8192] for i in range(0, len(long), 8192)]
    lines = [k8s(T0 + i, "stdout", "P", p) for i, p in enumerate(pieces[:-1])]
    lines.append(k8s(T0 + 9, "stdout", "F", pieces[-1]))
    exact = b"y" * CHUNK_SIZE
    lines += [k8s(T0 + 20, "stderr", "P", exact[:8192]),
              k8s(T0 + 21, "stderr", "F", exact[8192:])]
    append(conmon, *lines)
    pump = LogPump(conmon, jlog, None, 1)
    pump_all(pump)
    got = records(jlog)
    assert [len(r["log"]) for r in got] == [16384, 16384, 40000 - 32768 + 1, 16384, 1]
    assert got[2]["log"].endswith("x\n") and got[4]["log"] == "\n"
    assert {r["time"] for r in got[:3]} == {rfc3339_nano(T0)}
    assert "".join(r["log"] for r in got[:3]) == long.decode() + "\n"


def test_pump_emits_full_chunk_before_line_ends(paths: tuple[Path, Path]) -> None:
    conmon, jlog = paths
    pump = LogPump(conmon, jlog, None, 1)
    append(conmon, k8s(T0, "stdout", "P", b"a" * 8192), k8s(T0 + 1, "stdout", "P", b"a" * 9000))
    assert pump_all(pump) == 1  # 16 KiB buffered: dockerd would log it now
    append(conmon, k8s(T0 + 2, "stdout", "F", b"end"))
    assert pump_all(pump) == 1
    assert [len(r["log"]) for r in records(jlog)] == [16384, 8192 + 9000 - 16384 + 4]


def test_rotation_max_size_max_file(paths: tuple[Path, Path]) -> None:
    conmon, jlog = paths
    append(conmon, *[k8s(T0 + i, "stdout", "F", f"line {i:03d} " + "z" * 80) for i in range(60)])
    pump = LogPump(conmon, jlog, 1024, 3)
    assert pump_all(pump) == 60
    files = json_log_files(jlog, 3)
    assert [p.name for p in files] == ["abc-json.log.2", "abc-json.log.1", "abc-json.log"]
    assert not Path(f"{jlog}.3").exists()
    for p in files[:-1]:
        size = p.stat().st_size
        # rotated before the write that follows reaching max-size
        assert size >= 1024 and size - len(p.read_bytes().splitlines()[-1]) - 1 < 1024
    kept = [r["log"][:8] for r in all_logs(jlog, 3)]
    assert kept == [f"line {i:03d}" for i in range(60 - len(kept), 60)]


def test_rotation_max_file_one_truncates(paths: tuple[Path, Path]) -> None:
    conmon, jlog = paths
    append(conmon, *[k8s(T0 + i, "stdout", "F", "w" * 100) for i in range(30)])
    pump = LogPump(conmon, jlog, 1000, 1)
    pump_all(pump)
    assert not Path(f"{jlog}.1").exists()
    assert jlog.stat().st_size < 1000 + 200


def test_resume_after_restart_no_duplicates(paths: tuple[Path, Path]) -> None:
    conmon, jlog = paths
    append(conmon, k8s(T0, "stdout", "F", "a"), k8s(T0 + 1, "stderr", "F", "b"))
    pump_all(LogPump(conmon, jlog, None, 1))
    # the daemon dies; conmon keeps writing
    append(conmon, k8s(T0 + 2, "stdout", "F", "c"), k8s(T0 + 3, "stderr", "F", "d"))
    assert pump_all(LogPump(conmon, jlog, None, 1)) == 2
    assert [r["log"] for r in records(jlog)] == ["a\n", "b\n", "c\n", "d\n"]
    assert pump_all(LogPump(conmon, jlog, None, 1)) == 0


def test_resume_with_equal_timestamps(paths: tuple[Path, Path]) -> None:
    # conmon stamps all lines of one read with the same time: a crash after
    # writing two of three such lines must resume at the third.
    conmon, jlog = paths
    append(conmon, *[k8s(T0, "stdout", "F", s) for s in ("x", "y", "z")],
           k8s(T0, "stderr", "F", "e"))
    pump_all(LogPump(conmon, jlog, None, 1))
    data = jlog.read_bytes().splitlines(keepends=True)
    jlog.write_bytes(b"".join(data[:2]) + data[2][:10])  # plus a torn half line
    assert pump_all(LogPump(conmon, jlog, None, 1)) == 2
    assert [(r["stream"], r["log"]) for r in records(jlog)] == [
        ("stdout", "x\n"), ("stdout", "y\n"), ("stdout", "z\n"), ("stderr", "e\n")]


def test_resume_inside_a_long_line(paths: tuple[Path, Path]) -> None:
    conmon, jlog = paths
    long = b"q" * 40000
    append(conmon, k8s(T0, "stdout", "P", long[:20000]))
    pump = LogPump(conmon, jlog, None, 1)
    assert pump_all(pump) == 1  # first 16 KiB piece written, rest in memory
    del pump  # crash: the buffered 3616 bytes are gone from memory
    append(conmon, k8s(T0 + 5, "stdout", "F", long[20000:]), k8s(T0 + 6, "stdout", "F", "n"))
    assert pump_all(LogPump(conmon, jlog, None, 1)) == 3
    got = records(jlog)
    assert [len(r["log"]) for r in got] == [16384, 16384, 40000 - 32768 + 1, 2]
    assert "".join(r["log"] for r in got[:3]) == long.decode() + "\n"


def test_resume_across_rotated_files(paths: tuple[Path, Path]) -> None:
    conmon, jlog = paths
    append(conmon, *[k8s(T0 + i, "stdout", "F", "r" * 100) for i in range(20)])
    pump_all(LogPump(conmon, jlog, 500, 3))
    before = all_logs(jlog, 3)
    append(conmon, k8s(T0 + 100, "stdout", "F", "new"))
    assert pump_all(LogPump(conmon, jlog, 500, 3)) == 1
    after = all_logs(jlog, 3)
    assert after[-1]["log"] == "new\n"
    times = [r["time"] for r in after]
    assert len(set(times)) == len(times)  # no record written twice
    assert times[:-1] == [r["time"] for r in before][-(len(after) - 1):]


def test_conmon_log_replaced(paths: tuple[Path, Path]) -> None:
    conmon, jlog = paths
    append(conmon, k8s(T0, "stdout", "F", "old1"))
    pump = LogPump(conmon, jlog, None, 1)
    assert pump_all(pump) == 1
    # conmon --log-size-max: last writes to the old file, then a new file
    # is renamed over the path.
    append(conmon, k8s(T0 + 1, "stdout", "F", "old2"))
    tmp = conmon.with_name("ctr.log.tmp")
    append(tmp, k8s(T0 + 2, "stdout", "F", "new1"))
    os.rename(tmp, conmon)
    assert pump_all(pump) == 2
    append(conmon, k8s(T0 + 3, "stdout", "F", "new2"))
    assert pump_all(pump) == 1
    assert [r["log"] for r in records(jlog)] == ["old1\n", "old2\n", "new1\n", "new2\n"]
    # and a restarted daemon reading only the new file adds nothing twice
    assert pump_all(LogPump(conmon, jlog, None, 1)) == 0


def test_run_loop_final_pump(paths: tuple[Path, Path]) -> None:
    conmon, jlog = paths

    async def go() -> None:
        stop = asyncio.Event()
        pump = LogPump(conmon, jlog, None, 1)
        task = asyncio.create_task(pump.run(stop, interval=0.01))
        append(conmon, k8s(T0, "stdout", "F", "live"))
        for _ in range(200):
            if jlog.exists() and jlog.stat().st_size:
                break
            await asyncio.sleep(0.01)
        append(conmon, k8s(T0 + 1, "stdout", "P", "tail"))
        stop.set()
        await task

    asyncio.run(go())
    assert [r["log"] for r in records(jlog)] == ["live\n", "tail"]


# ------------------------------------------------------------------ reader

def _fill(paths: tuple[Path, Path], n: int, max_size: int | None = None,
          max_file: int = 1) -> list[Path]:
    conmon, jlog = paths
    append(conmon, *[k8s(T0 + i * 1000, "stdout" if i % 3 else "stderr", "F", f"m{i}")
                     for i in range(n)])
    pump_all(LogPump(conmon, jlog, max_size, max_file))
    return json_log_files(jlog, max_file)


def test_read_all_and_stream_selection(paths: tuple[Path, Path]) -> None:
    files = _fill(paths, 6)
    assert collect(files) == [(2, b"m0\n"), (1, b"m1\n"), (1, b"m2\n"),
                              (2, b"m3\n"), (1, b"m4\n"), (1, b"m5\n")]
    assert collect(files, stderr=False) == [(1, b"m1\n"), (1, b"m2\n"), (1, b"m4\n"),
                                            (1, b"m5\n")]
    assert collect(files, stdout=False) == [(2, b"m0\n"), (2, b"m3\n")]
    with pytest.raises(InvalidParameter, match="must specify at least one"):
        collect(files, stdout=False, stderr=False)


def test_tail_across_rotated_files(paths: tuple[Path, Path]) -> None:
    files = _fill(paths, 40, max_size=300, max_file=4)
    assert len(files) == 4
    everything = collect(files)
    assert collect(files, tail=7) == everything[-7:]
    assert collect(files, tail=0) == []
    assert collect(files, tail=10_000) == everything
    assert collect(files, tail=-1) == everything
    # tail counts records before the stream filter, as dockerd does
    assert collect(files, tail=3, stdout=False) == [i for i in everything[-3:] if i[0] == 2]


def test_tail_big_file_backwards(paths: tuple[Path, Path]) -> None:
    conmon, jlog = paths
    append(conmon, *[k8s(T0 + i, "stdout", "F", f"{i:06d}" + "p" * 200) for i in range(3000)])
    pump_all(LogPump(conmon, jlog, None, 1))
    got = collect([jlog], tail=2)
    assert [p[:6] for _, p in got] == [b"002998", b"002999"]


def test_since_until(paths: tuple[Path, Path]) -> None:
    files = _fill(paths, 6)
    assert [p for _, p in collect(files, since_ns=T0 + 2000)] == [b"m2\n", b"m3\n", b"m4\n",
                                                                 b"m5\n"]
    # until is inclusive
    assert [p for _, p in collect(files, until_ns=T0 + 2000)] == [b"m0\n", b"m1\n", b"m2\n"]
    assert [p for _, p in collect(files, since_ns=T0 + 1500, until_ns=T0 + 3500)] == [
        b"m2\n", b"m3\n"]


def test_timestamps_prefix(paths: tuple[Path, Path]) -> None:
    files = _fill(paths, 2)
    got = collect(files, timestamps=True)
    assert got[0] == (2, rfc3339_nano_fixed(T0).encode() + b" m0\n")
    assert got[0][1].startswith(b"2026-11-18T") and got[0][1][29:31] == b"Z "


def test_follow_ends_when_container_stops(paths: tuple[Path, Path]) -> None:
    conmon, jlog = paths
    append(conmon, k8s(T0, "stdout", "F", "before"))
    pump = LogPump(conmon, jlog, None, 1)
    state = {"running": True}

    async def go() -> list[tuple[int, bytes]]:
        out = []
        agen = read_logs([jlog], stdout=True, stderr=True, follow=True,
                         is_running=lambda: state["running"], pump=pump, poll_interval=0.01)
        async for item in agen:
            out.append(item)
            if item[1] == b"before\n":
                append(conmon, k8s(T0 + 1, "stderr", "F", "during"))
            if item[1] == b"during\n":
                append(conmon, k8s(T0 + 2, "stdout", "P", "last words"))
                state["running"] = False
        return out

    got = asyncio.run(asyncio.wait_for(go(), 10))
    assert got == [(1, b"before\n"), (2, b"during\n"), (1, b"last words")]


def test_follow_not_running_is_plain_read(paths: tuple[Path, Path]) -> None:
    files = _fill(paths, 2)
    assert len(collect(files, follow=True, is_running=lambda: False)) == 2


def test_follow_cancelled_by_client(paths: tuple[Path, Path]) -> None:
    conmon, jlog = paths
    append(conmon, k8s(T0, "stdout", "F", "hi"))
    pump = LogPump(conmon, jlog, None, 1)

    async def go() -> None:
        got: list[tuple[int, bytes]] = []

        async def consume() -> None:
            async for item in read_logs([jlog], stdout=True, stderr=True, follow=True,
                                        is_running=lambda: True, pump=pump,
                                        poll_interval=0.01):
                got.append(item)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.2)
        assert got == [(1, b"hi\n")]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # closing early via aclose() works too
        agen = read_logs([jlog], stdout=True, stderr=True, follow=True,
                         is_running=lambda: True, pump=pump, poll_interval=0.01)
        assert await agen.__anext__() == (1, b"hi\n")
        await agen.aclose()
        # the pump is still usable afterwards
        append(conmon, k8s(T0 + 1, "stdout", "F", "more"))
        assert await pump.pump_once() == 1

    asyncio.run(asyncio.wait_for(go(), 10))


def test_follow_across_rotation(paths: tuple[Path, Path]) -> None:
    conmon, jlog = paths
    pump = LogPump(conmon, jlog, 400, 5)
    state = {"n": 0, "running": True}

    async def go() -> list[bytes]:
        out = []
        async for _s, payload in read_logs([jlog], stdout=True, stderr=True, follow=True,
                                           is_running=lambda: state["running"], pump=pump,
                                           poll_interval=0.01):
            out.append(payload)
            if len(out) == 1:
                append(conmon, *[k8s(T0 + i, "stdout", "F", f"r{i:02d}" + "." * 60)
                                 for i in range(1, 15)])
            if len(out) == 15:
                state["running"] = False
        return out

    append(conmon, k8s(T0, "stdout", "F", "r00" + "." * 60))
    got = asyncio.run(asyncio.wait_for(go(), 10))
    assert [p[:3] for p in got] == [f"r{i:02d}".encode() for i in range(15)]
    assert Path(f"{jlog}.1").exists()


def test_iter_lines_backward_small_blocks(tmp_path: Path) -> None:
    import random

    from dockyard.engine.logs.files import iter_lines_backward

    rng = random.Random(7)
    for trial in range(30):
        lines = [b"x" * rng.randrange(0, 40) for _ in range(rng.randrange(0, 12))]
        data = b"".join(ln + b"\n" for ln in lines) + (b"torn" if trial % 2 else b"")
        path = tmp_path / f"f{trial}"
        path.write_bytes(data)
        expect, off = [], 0
        for ln in lines:
            expect.append((off, ln))
            off += len(ln) + 1
        for block in (1, 3, 7, 64):
            got = list(iter_lines_backward(path, block_size=block))
            assert got == expect[::-1], (trial, block)


def test_reader_skips_garbage_lines(paths: tuple[Path, Path]) -> None:
    _conmon, jlog = paths
    jlog.write_bytes(encode_json_record("stdout", b"ok\n", T0) + b"not json\n"
                     + encode_json_record("stderr", b"ok2\n", T0 + 1) + b'{"log":"to')
    assert collect([jlog]) == [(1, b"ok\n"), (2, b"ok2\n")]
    assert collect([jlog], tail=1) == [(2, b"ok2\n")]
