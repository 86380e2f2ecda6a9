"""Chunked request bodies over a real socket, as the docker CLI sends them
(`docker cp`, `docker load`: 32 KiB chunks) and in the odd shapes others
may: every byte arrives, the connection stays usable after the body, and a
broken or abandoned body ends the connection with a 400."""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import time

import pytest
from http_testutil import Server, body_of, message_of, read_to_eof, read_until, status_of

PING = b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n"
UPLOAD = b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"


# nothing a client sends may leave a traceback or an error in the log
pytestmark = pytest.mark.usefixtures("no_tracebacks")


def chunked(payload: bytes, size: int = 32 * 1024) -> bytes:
    return b"".join(b"%x\r\n" % len(payload[i:i + size]) + payload[i:i + size] + b"\r\n"
                    for i in range(0, len(payload), size))


def answer(payload: bytes) -> dict[str, object]:
    return {"size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}


def read_answers(s: socket.socket, count: int, timeout: float = 20) -> list[bytes]:
    """`count` whole responses with a Content-Length, in order."""
    s.settimeout(timeout)
    buf, out = b"", []
    while len(out) < count:
        while b"\r\n\r\n" not in buf:
            data = s.recv(65536)
            assert data, f"EOF after {len(out)} answers: {buf[:300]!r}"
            buf += data
        head, buf = buf.split(b"\r\n\r\n", 1)
        length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
        while len(buf) < length:
            data = s.recv(65536)
            assert data
            buf += data
        out.append(head + b"\r\n\r\n" + buf[:length])
        buf = buf[length:]
    return out


def test_large_bodies_one_after_another_on_one_connection(server: Server):
    rnd = random.Random(7)
    first, second = rnd.randbytes(20 * 1024 * 1024 + 5), rnd.randbytes(3 * 1024 * 1024)
    with server.connect() as s:
        s.sendall(UPLOAD + b"\r\n" + chunked(first) + b"0\r\n\r\n")
        got = read_answers(s, 1)
        assert json.loads(body_of(got[0])) == answer(first)
        # the next body in huge chunks, with a trailer, a request pipelined behind it
        s.sendall(UPLOAD + b"\r\n" + chunked(second, 1024 * 1024 + 3)
                  + b"0\r\nX-Checksum: 1\r\n\r\n" + PING)
        upload, ping = read_answers(s, 2)
        assert json.loads(body_of(upload)) == answer(second)
        assert status_of(ping) == 200 and body_of(ping) == b'"OK"\n'
    # the handler got pieces of at most a read, never the whole body
    assert max(server.seen.body_pieces) <= 1024 * 1024


def test_reads_cut_anywhere(server: Server):
    payload = os.urandom(200)
    body = chunked(payload, 37) + b"0\r\nX-T: 1\r\n\r\n"
    raw = UPLOAD + b"\r\n" + body + PING
    start = len(UPLOAD) + 2
    for pos in range(start, len(raw)):
        with server.connect() as s:
            s.sendall(raw[:pos])
            time.sleep(0.002)         # the server reads what came so far
            s.sendall(raw[pos:])
            upload, ping = read_answers(s, 2)
        assert json.loads(body_of(upload)) == answer(payload), pos
        assert status_of(ping) == 200, pos


def test_many_tiny_chunks(server: Server):
    payload = os.urandom(50000)
    got = server.exchange(UPLOAD + b"Connection: close\r\n\r\n" + chunked(payload, 1)
                          + b"0\r\n\r\n", timeout=20)
    assert json.loads(body_of(got)) == answer(payload)


def test_odd_size_lines_in_the_middle_of_a_body(server: Server):
    # extensions and a 16-digit size after plain chunks; more plain chunks after
    payload = os.urandom(100000)
    body = (chunked(payload[:70000]) + b"10;name=value\r\n" + payload[70000:70016] + b"\r\n"
            + b"0000000000000004\r\n" + payload[70016:70020] + b"\r\n"
            + chunked(payload[70020:]) + b"0\r\n\r\n")
    got = server.exchange(UPLOAD + b"Connection: close\r\n\r\n" + body)
    assert json.loads(body_of(got)) == answer(payload)


def test_expect_100_continue_with_a_chunked_body(server: Server):
    payload = os.urandom(70000)
    with server.connect() as s:
        s.sendall(UPLOAD + b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
        assert read_until(s, b"\r\n\r\n").startswith(b"HTTP/1.1 100 ")
        s.sendall(chunked(payload) + b"0\r\n\r\n")
        got = read_to_eof(s)
    assert json.loads(body_of(got)) == answer(payload)


GOOD = chunked(os.urandom(300 * 1024))


@pytest.mark.parametrize("tail", [
    b"-2\r\n{}\r\n0\r\n\r\n",
    b"0x2\r\n{}\r\n0\r\n\r\n",
    b"00000000000000002\r\n{}\r\n0\r\n\r\n",
    b"10000000000000000\r\n{}\r\n0\r\n\r\n",
    b" 2\r\n{}\r\n0\r\n\r\n",
    b"\r\n{}\r\n0\r\n\r\n",
    b"2\r\n{}XX0\r\n\r\n",
    b"2\r\n{}\n0\r\n\r\n",
    b"1\r\n{}\r\n0\r\n\r\n",
    b"2;" + b"e" * 5000 + b"\r\n{}\r\n0\r\n\r\n",
    b"0\r\n" + b"".join(b"X-T%d: %s\r\n" % (i, b"a" * 1000) for i in range(40)) + b"\r\n",
    b"0\r\nX-T: " + b"a" * 40000,
])
def test_broken_framing_after_good_chunks(server: Server, tail: bytes):
    resp = server.exchange(UPLOAD + b"\r\n" + GOOD + tail + PING)
    assert status_of(resp) == 400, resp[:300]
    assert resp.count(b"HTTP/1.1 ") == 1             # the pipelined ping is not answered
    assert b"Connection: close" in resp
    msg = message_of(resp)
    assert "chunk" in msg or "malformed" in msg
    assert status_of(server.ping()) == 200


def test_client_gone_mid_body(server: Server):
    with server.connect() as s:
        s.sendall(UPLOAD + b"\r\n" + GOOD + b"8000\r\n" + b"a" * 1000)
        s.shutdown(socket.SHUT_WR)
        resp = read_to_eof(s)
    assert status_of(resp) == 400
    assert "incomplete chunked read" in message_of(resp)
    # and one that closes outright: the server lets go of the connection
    with server.connect() as s:
        s.sendall(UPLOAD + b"\r\n" + GOOD + b"8000\r\n" + b"a" * 1000)
    deadline = time.monotonic() + 5
    while server.connections() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.connections() == 0
    assert status_of(server.ping()) == 200
