"""A request head the server has parsed before (same bytes, no body) is
served from what the first parse made of it; every exchange must come out
byte for byte as it does on a server that parses every head anew."""

from __future__ import annotations

import socket

import pytest
from http_testutil import Server, read_to_eof, read_until

from dockyard.api.server import connection

PING = b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n"
INSPECT = b"GET /containers/abc/json?size=1&x=%20y HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n"
HEAD_PING = b"HEAD /_ping HTTP/1.1\r\nHost: x\r\n\r\n"
CLOSE = b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
OLD = b"GET /_ping HTTP/1.0\r\n\r\n"
HIJACK = b"POST /hijack HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
STREAM = b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n"


def script(server: Server) -> list[bytes]:
    """What a client sees for a fixed set of exchanges."""
    seen = []
    # keep-alive, pipelined, repeated heads, ending with a close
    seen.append(server.exchange(PING + INSPECT + HEAD_PING + PING + INSPECT + CLOSE))
    seen.append(server.exchange(OLD))
    seen.append(server.exchange(OLD + PING))          # HTTP/1.0 closes: PING is never read
    with server.connect() as s:                        # a hijack after a kept-alive request
        s.sendall(PING + HIJACK + b"early ")
        got = read_until(s, b"EARLY ")
        s.sendall(b"bytes")
        got += read_until(s, b"BYTES")
        s.shutdown(socket.SHUT_WR)
        seen.append(got + read_to_eof(s))
    with server.connect() as s:                        # a stream: read its head and a tick
        s.sendall(STREAM)
        seen.append(read_until(s, b"tick\n\r\n"))
    return seen


@pytest.mark.parametrize("rounds", [2])
def test_remembered_heads_answer_as_parsed_ones(server: Server, rounds: int,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    first = script(server)                 # parsed anew, and remembered
    assert server.app.server.heads         # something was remembered
    for _ in range(rounds):
        assert script(server) == first     # from what was remembered
    monkeypatch.setattr(connection, "HEAD_CACHE_MAX_BYTES", -1)
    server.app.server.heads.clear()
    assert script(server) == first         # never remembered
    assert not server.app.server.heads


def test_heads_with_a_body_are_not_remembered(server: Server) -> None:
    post = b"POST /echo/a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
    out1 = server.exchange(post + b"{}")
    out2 = server.exchange(post + b"[]")
    assert b'"body":{}' in out1 and b'"body":[]' in out2
    assert not [h for h in server.app.server.heads if h.startswith(b"POST /echo")]


def test_a_malformed_head_is_refused_every_time(server: Server) -> None:
    bad = b"GET /_ping HTTP/9.9\r\nHost: x\r\n\r\n"
    assert server.exchange(bad) == server.exchange(bad)
    assert server.exchange(bad).startswith(b"HTTP/1.1 400")
    assert bad not in server.app.server.heads
