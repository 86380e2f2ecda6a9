"""ChunkedDecoder on its own: the chunk data it takes out of a chunked body
read in pieces cut anywhere, and where it hands the rest to h11."""

from __future__ import annotations

import itertools
import random

import pytest

from dockyard.api.server.framing import BadRequest, ChunkedDecoder


def encode(payload: bytes, sizes: list[int]) -> bytes:
    """`payload` as chunks of the given sizes (the last one repeats)."""
    out, i, k = [], 0, 0
    while i < len(payload):
        n = min(sizes[min(k, len(sizes) - 1)], len(payload) - i)
        out.append(b"%x\r\n" % n + payload[i:i + n] + b"\r\n")
        i += n
        k += 1
    return b"".join(out)


def run(reads: list[bytes]) -> tuple[bytes, bytes, bool]:
    """Feed the reads as the connection does (an unused tail goes in front of
    the next read); the data, what was left unused, and whether it handed over."""
    dec = ChunkedDecoder()
    data, rest = [], b""
    for k, r in enumerate(reads):
        buf = rest + r
        pieces: list[memoryview] = []
        used = dec.decode(buf, pieces)
        data += [bytes(p) for p in pieces]
        rest = buf[used:]
        if dec.handed_over:
            # nothing of a later read is consumed once handed over
            return b"".join(data), rest + b"".join(reads[k + 1:]), True
    return b"".join(data), rest, False


def cuts(body: bytes, positions: list[int]) -> list[bytes]:
    edges = [0, *positions, len(body)]
    return [body[a:b] for a, b in itertools.pairwise(edges)]


END = b"0\r\nX-Trailer: 1\r\n\r\nGET /next HTTP/1.1\r\n"


def test_every_single_cut():
    payload = bytes(random.Random(1).randrange(256) for _ in range(300))
    body = encode(payload, [1, 2, 3, 17, 0x10, 100]) + END
    for pos in range(len(body) + 1):
        data, rest, handed = run(cuts(body, [pos]))
        assert data == payload, pos
        assert handed and rest == END, pos


def test_every_pair_of_cuts_in_a_small_body():
    payload = b"0123456789abcdefghij"
    body = encode(payload, [3, 0xb, 6]) + END
    for a in range(len(body) + 1):
        for b in range(a, len(body) + 1):
            data, rest, handed = run(cuts(body, [a, b]))
            assert (data, rest, handed) == (payload, END, True), (a, b)


def test_byte_by_byte():
    payload = bytes(range(256)) * 3
    body = encode(payload, [255, 1, 0x200]) + END
    data, rest, handed = run([body[i:i + 1] for i in range(len(body))])
    assert (data, rest, handed) == (payload, END, True)


def test_huge_chunks_in_large_reads():
    rnd = random.Random(2)
    payload = rnd.randbytes(5 * 1024 * 1024 + 3)
    body = encode(payload, [3 * 1024 * 1024, 1024 * 1024 + 1]) + END
    reads = []
    i = 0
    while i < len(body):
        n = rnd.randrange(1, 1 << 20)
        reads.append(body[i:i + n])
        i += n
    data, rest, handed = run(reads)
    assert (data, rest, handed) == (payload, END, True)


def test_many_tiny_chunks_in_one_read():
    payload = random.Random(3).randbytes(20000)
    dec = ChunkedDecoder()
    body = encode(payload, [1]) + END
    pieces: list[memoryview] = []
    used = dec.decode(body, pieces)
    assert b"".join(pieces) == payload and len(pieces) == len(payload)
    assert body[used:] == END and dec.handed_over


def test_a_read_inside_one_chunk_is_one_piece_of_it():
    dec = ChunkedDecoder()
    pieces: list[memoryview] = []
    head = b"100000\r\n"
    assert dec.decode(head + b"a" * 1000, pieces) == len(head) + 1000
    assert [bytes(p) for p in pieces] == [b"a" * 1000]
    pieces.clear()
    data = bytes(range(256)) * 64
    assert dec.decode(data, pieces) == len(data)
    assert len(pieces) == 1 and pieces[0].obj is data and len(pieces[0]) == len(data)


def test_sixteen_digits_are_taken():
    pieces: list[memoryview] = []
    dec = ChunkedDecoder()
    body = b"0000000000000002\r\n{}\r\n" + END
    assert body[dec.decode(body, pieces):] == END
    assert b"".join(pieces) == b"{}"


@pytest.mark.parametrize("line", [
    b"5;name=value\r\n",           # an extension: h11 takes it, we do not look
    b"5 \r\n",                     # spaces after the size
    b" 5\r\n",
    b"5\n",                        # a bare LF
    b"00000000000000005\r\n",      # 17 digits: the guard refuses it
    b"0x5\r\n",
    b"-5\r\n",
    b"+5\r\n",
    b"\r\n",                       # no size at all
    b"5\r\r\n",
    b"g\r\n",
    b"0\r\n",                      # the last chunk: trailers and end are h11's
    b"0;ext\r\n",
])
def test_other_size_lines_are_handed_over_where_they_start(line: bytes):
    before = b"3\r\nabc\r\n"
    after = line + b"hello\r\n0\r\n\r\n"
    for pos in range(len(before + after) + 1):
        data, rest, handed = run(cuts(before + after, [pos]))
        assert (data, rest, handed) == (b"abc", after, True), pos


def test_an_incomplete_size_line_waits_for_more():
    dec = ChunkedDecoder()
    pieces: list[memoryview] = []
    for partial in (b"", b"1", b"ffff", b"a" * 16, b"a" * 16 + b"\r"):
        assert dec.decode(partial, pieces) == 0 and not dec.handed_over, partial
    # one byte more than any plain line can have before its CRLF
    assert dec.decode(b"a" * 17, pieces) == 0 and dec.handed_over
    assert not pieces


@pytest.mark.parametrize("body", [
    b"2\r\n{}XX0\r\n\r\n",        # data not followed by CRLF
    b"2\r\n{}\n0\r\n\r\n",        # ... nor by a bare LF
    b"2\r\n{}\rX0\r\n\r\n",       # a CR, then something else
    b"1\r\n{}\r\n0\r\n\r\n",      # more data than the size said
    b"3\r\n{}\r\n0\r\n\r\n",      # less
])
def test_bad_chunk_ends_are_refused_wherever_the_reads_cut(body: bytes):
    for pos in range(len(body) + 1):
        with pytest.raises(BadRequest, match="malformed chunk footer"):
            run(cuts(body, [pos]))
