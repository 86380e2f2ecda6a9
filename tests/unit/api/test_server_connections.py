"""Connection behaviour over a real socket: keep-alive and pipelining, the
timeouts, the connection cap, a client leaving a streamed response,
hijacked streams with early bytes and half-close, streamed bodies."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time

import pytest
from http_testutil import Server, body_of, read_to_eof, read_until, status_of

PING = b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n"


# nothing a client sends may leave a traceback or an error in the log
pytestmark = pytest.mark.usefixtures("no_tracebacks")


def wait_for(cond, timeout: float = 5) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


def test_pipelined_requests_answered_in_order(server: Server):
    raw = (b"POST /echo/first HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n{\"n\":1}"
           b"POST /echo/second HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"7\r\n{\"n\":2}\r\n0\r\n\r\n"
           b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    resp = server.exchange(raw)
    parts = resp.split(b"HTTP/1.1 200 OK\r\n")
    assert len(parts) == 4, resp
    first, second = (json.loads(body_of(b"x\r\n" + p)) for p in parts[1:3])
    assert first["params"] == {"id": "first"} and first["body"] == {"n": 1}
    assert second["params"] == {"id": "second"} and second["body"] == {"n": 2}


def test_pipelined_request_behind_a_stream(server: Server):
    # the stream ends when the client goes; the request behind it was read
    # ahead while it streamed and must not have been lost or answered early
    with server.connect() as s:
        s.sendall(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n" + PING)
        got = read_until(s, b"tick\n")
        assert b"Transfer-Encoding: chunked" in got
        assert got.count(b"HTTP/1.1") == 1
    assert server.seen.stream_closed.wait(5)


def test_keep_alive_from_one_connection(server: Server):
    with server.connect() as s:
        for _ in range(3):
            s.sendall(PING)
            got = read_until(s, b'"OK"\n')
            assert got.startswith(b"HTTP/1.1 200")


def test_client_leaving_a_stream_is_noticed(server: Server):
    with server.connect() as s:
        s.sendall(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
        read_until(s, b"tick\n")
        assert not server.seen.stream_closed.is_set()
    assert server.seen.stream_closed.wait(2)
    wait_for(lambda: server.connections() == 0)


def test_client_half_closing_during_a_stream_counts_as_gone(server: Server):
    with server.connect() as s:
        s.sendall(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
        read_until(s, b"tick\n")
        s.shutdown(socket.SHUT_WR)
        assert server.seen.stream_closed.wait(2)


def test_client_leaving_during_the_work_cancels_it(server: Server):
    body = b"x" * 200_000
    with server.connect() as s:
        s.sendall(b"POST /work HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
                  + body)
        assert server.seen.work_started.wait(2)
        assert not server.seen.work_cancelled.is_set()
    assert server.seen.work_cancelled.wait(2)
    wait_for(lambda: server.connections() == 0)


def test_client_that_stays_gets_the_answer(server: Server):
    with server.connect() as s:
        s.sendall(b"POST /work?seconds=0.2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n"
                  b"abc" + PING)
        got = read_until(s, b'"OK"\n')
    assert got.startswith(b"HTTP/1.1 200") and b'{"size":3}' in got
    assert not server.seen.work_cancelled.is_set()
    wait_for(lambda: server.connections() == 0)


def test_idle_connection_times_out(server: Server):
    server.limits.idle_timeout = 0.3
    with server.connect() as s:
        t0 = time.monotonic()
        assert read_to_eof(s, 3) == b""
        assert time.monotonic() - t0 < 2
    # and after one request on a kept-alive connection
    with server.connect() as s:
        s.sendall(PING)
        read_until(s, b'"OK"\n')
        t0 = time.monotonic()
        assert read_to_eof(s, 3) == b""
        assert 0.2 < time.monotonic() - t0 < 2


def test_slow_head_is_dropped(server: Server):
    server.limits.head_timeout = 0.5
    server.limits.idle_timeout = 30
    with server.connect() as s:
        t0 = time.monotonic()
        got = b""
        for byte in PING:                 # one byte every 0.1 s: 3 s for the head
            try:
                s.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.1)
            if time.monotonic() - t0 > 2:
                break
        got = read_to_eof(s, 3)
    assert status_of(got) == 408
    assert time.monotonic() - t0 < 2.5
    assert status_of(server.ping()) == 200


def test_connection_cap_evicts_the_longest_idle(server: Server):
    server.limits.max_connections = 5
    idle = [server.connect() for _ in range(5)]
    try:
        wait_for(lambda: server.connections() == 5)
        t0 = time.monotonic()
        assert status_of(server.ping()) == 200
        assert time.monotonic() - t0 < 1
        # the first idle connection made room
        assert read_to_eof(idle[0], 2) == b""
    finally:
        for s in idle:
            s.close()


def test_connection_cap_when_all_are_busy(server: Server):
    server.limits.max_connections = 3
    busy = [server.connect() for _ in range(3)]
    try:
        for s in busy:
            s.sendall(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
            read_until(s, b"tick\n")
        got = server.exchange(PING)
        assert status_of(got) == 503
        assert json.loads(body_of(got)) == {"message": "too many connections"}
    finally:
        for s in busy:
            s.close()
    wait_for(lambda: server.connections() == 0)
    assert status_of(server.ping()) == 200


def test_streamed_request_body(server: Server):
    payload = os.urandom(5 * 1024 * 1024 + 17)
    head = (b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % len(payload))
    got = server.exchange(head + payload, timeout=20)
    assert json.loads(body_of(got)) == {"size": len(payload),
                                        "sha256": hashlib.sha256(payload).hexdigest()}
    # pieces of at most one read, never the whole body at once
    assert max(server.seen.body_pieces) <= 1024 * 1024
    server.seen.body_pieces.clear()
    # chunked, in uneven chunks
    body = b""
    i = 0
    while i < len(payload):
        n = min(len(payload) - i, 1 + (i * 7919) % 300000)
        body += b"%x\r\n" % n + payload[i:i + n] + b"\r\n"
        i += n
    head = b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
    got = server.exchange(head + body + b"0\r\n\r\n", timeout=20)
    assert json.loads(body_of(got))["sha256"] == hashlib.sha256(payload).hexdigest()
    assert max(server.seen.body_pieces) <= 1024 * 1024


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_stream_after_the_body_was_read(server: Server, framing: str):
    head = b"POST /upload-stream HTTP/1.1\r\nHost: x\r\n"
    if framing == "length":
        raw = head + b"Content-Length: 5\r\n\r\nhello"
    else:
        raw = head + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    with server.connect() as s:
        s.sendall(raw + PING)
        got = read_until(s, b'"OK"\n')
    assert b"\r\n2\r\n5\n\r\n0\r\n\r\n" in got and got.count(b"HTTP/1.1 200") == 2


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_stream_after_the_body_was_read_on_a_closing_connection(server: Server, framing: str):
    # a client that says Connection: close is done with its side once its
    # body ended: the stream must be answered, then the connection closed
    # (load and import with such a client hung here, both sides waiting)
    head = b"POST /upload-stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    if framing == "length":
        raw = head + b"Content-Length: 5\r\n\r\nhello"
    else:
        raw = head + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    got = server.exchange(raw, timeout=5)
    assert status_of(got) == 200
    assert got.endswith(b"\r\n2\r\n5\n\r\n0\r\n\r\n")


def test_unread_body_is_dropped_and_connection_kept(server: Server):
    with server.connect() as s:
        s.sendall(b"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" + PING)
        got = read_until(s, b'"OK"\n')
        assert status_of(got) == 404
        assert got.count(b"HTTP/1.1 ") == 2


def test_expect_100_continue(server: Server):
    with server.connect() as s:
        s.sendall(b"POST /echo/x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                  b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
        assert read_until(s, b"\r\n\r\n").startswith(b"HTTP/1.1 100 ")
        s.sendall(b"{}")
        got = read_to_eof(s)
    assert status_of(got) == 200


def test_head_request(server: Server):
    got = server.exchange(b"HEAD /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(got) == 200
    assert b"Content-Length: 5" in got
    assert body_of(got) == b""
    # a stream answers its head only, and its source is closed
    got = server.exchange(b"HEAD /forever HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(got) == 200 and body_of(got) == b""


@pytest.mark.parametrize("upgrade", [True, False])
def test_hijack_early_bytes_and_half_close(server: Server, upgrade: bool):
    head = b"POST /hijack HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
    if upgrade:
        head += b"Connection: Upgrade\r\nUpgrade: tcp\r\n"
    with server.connect() as s:
        # stdin sent in the same write as the request, before any answer
        s.sendall(head + b"\r\n{}" + b"early stdin ")
        got = read_until(s, b"\r\n\r\n")
        if upgrade:
            assert got.startswith(b"HTTP/1.1 101 UPGRADED\r\n")
            assert b"Upgrade: tcp" in got and b"Connection: Upgrade" in got
        else:
            assert got.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"Content-Type: application/vnd.docker.raw-stream" in got
            assert b"Transfer-Encoding" not in got
        assert b"X-Extra: 1" in got
        rest = got.split(b"\r\n\r\n", 1)[1]
        s.sendall(b"later")
        rest += read_until(s, b"LATER") if b"LATER" not in rest else b""
        s.shutdown(socket.SHUT_WR)            # end of stdin: output still comes back
        rest += read_to_eof(s)
    assert rest == b"EARLY STDIN LATER[eof]"
