"""Malformed and hostile requests, as raw bytes over a real socket: each is a
400 with Docker's {"message": ...} body (431 for a huge head) and a closed
connection, nothing reaches a handler it should not reach, the log has no
traceback, and the server goes on serving."""

from __future__ import annotations

import json

import pytest
from http_testutil import Server, body_of, message_of, read_to_eof, status_of

H = b"Host: x\r\n"


# nothing a client sends may leave a traceback or an error in the log
pytestmark = pytest.mark.usefixtures("no_tracebacks")


def refused(server: Server, raw: bytes, status: int = 400) -> str:
    """Send `raw`; assert one error answer and a closed connection; its message."""
    resp = server.exchange(raw)
    assert status_of(resp) == status, resp
    assert resp.count(b"\r\n\r\n") == 1, resp     # one answer: nothing smuggled behind it
    assert b"Connection: close" in resp
    assert b"Content-Type: application/json" in resp
    msg = message_of(resp)
    assert msg
    assert status_of(server.ping()) == 200       # and the next client is served
    return msg


def post(body_headers: bytes, body: bytes, path: bytes = b"/echo/x") -> bytes:
    return b"POST " + path + b" HTTP/1.1\r\n" + H + body_headers + b"\r\n" + body


SMUGGLED = b"GET /containers/smuggled/json HTTP/1.1\r\nHost: x\r\n\r\n"


def test_content_length_with_transfer_encoding(server: Server):
    chunked = b"0\r\n\r\n"
    raw = post(b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % len(chunked + SMUGGLED),
               chunked + SMUGGLED)
    assert "Content-Length and Transfer-Encoding" in refused(server, raw)
    # the other order too
    raw = post(b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", chunked + SMUGGLED)
    refused(server, raw)


@pytest.mark.parametrize("headers", [
    b"Content-Length: 2\r\nContent-Length: 3\r\n",
    b"Content-Length: 2, 3\r\n",
    b"Content-Length: -1\r\n",
    b"Content-Length: 1_0\r\n",
    b"Content-Length: +2\r\n",
    b"Content-Length: 0x2\r\n",
    b"Content-Length: 123456789012345678901234\r\n",
])
def test_bad_content_length(server: Server, headers: bytes):
    refused(server, post(headers, b"{}"))


def test_space_before_colon(server: Server):
    refused(server, b"GET /_ping HTTP/1.1\r\nHost : x\r\n\r\n")
    refused(server, post(b"Content-Length : 2\r\n", b"{}"))


def test_obs_fold(server: Server):
    msg = refused(server, b"GET /_ping HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\n\r\n")
    assert "folding" in msg
    refused(server, b"GET /_ping HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tfolded\r\n\r\n")


@pytest.mark.parametrize("te", [b"xchunked", b"chunked, identity", b"identity",
                                b"chunked\r\nTransfer-Encoding: chunked", b"gzip, chunked"])
def test_bad_transfer_encoding(server: Server, te: bytes):
    refused(server, post(b"Transfer-Encoding: " + te + b"\r\n", b"2\r\n{}\r\n0\r\n\r\n"))


def chunked_post(body: bytes) -> bytes:
    return post(b"Transfer-Encoding: chunked\r\n", body)


@pytest.mark.parametrize("body", [
    b"-2\r\n{}\r\n0\r\n\r\n",                        # negative size
    b"0x2\r\n{}\r\n0\r\n\r\n",                       # 0x prefix
    b"00000000000000002\r\n{}\r\n0\r\n\r\n",         # 17 hex digits, small value
    b"10000000000000000\r\n{}\r\n0\r\n\r\n",         # 17 hex digits, huge value
    b" 2\r\n{}\r\n0\r\n\r\n",                        # leading space
    b"\r\n{}\r\n0\r\n\r\n",                          # empty size
    b"2\r\n{}XX0\r\n\r\n",                           # data not followed by CRLF
    b"2\r\n{}\n0\r\n\r\n",                           # ... nor by a bare LF
    b"1\r\n{}\r\n0\r\n\r\n",                         # more data than the size said
])
def test_bad_chunks(server: Server, body: bytes):
    msg = refused(server, chunked_post(body))
    assert "chunk" in msg or "malformed" in msg


def test_sixteen_hex_digits_are_fine(server: Server):
    raw = post(b"Connection: close\r\nTransfer-Encoding: chunked\r\n",
               b"0000000000000002\r\n{}\r\n0\r\n\r\n")
    resp = server.exchange(raw)
    assert status_of(resp) == 200
    assert json.loads(body_of(resp))["body"] == {}


def test_unbounded_trailers(server: Server):
    trailer = b"".join(b"X-T%d: %s\r\n" % (i, b"a" * 1000) for i in range(40))
    msg = refused(server, chunked_post(b"2\r\n{}\r\n0\r\n" + trailer + b"\r\n"))
    assert "trailer" in msg
    # one trailer line that never ends
    refused(server, chunked_post(b"2\r\n{}\r\n0\r\nX-T: " + b"a" * 40000))


def test_small_trailers_are_fine(server: Server):
    raw = post(b"Connection: close\r\nTransfer-Encoding: chunked\r\n",
               b"2\r\n{}\r\n0\r\nX-T: 1\r\n\r\n")
    assert status_of(server.exchange(raw)) == 200


@pytest.mark.parametrize("version", [b"HTTP/9.9", b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.2",
                                     b"HTTP/1", b"http/1.1", b"HTTP/1.1 extra"])
def test_unknown_http_version(server: Server, version: bytes):
    refused(server, b"GET /_ping " + version + b"\r\nHost: x\r\n\r\n")


def test_path_is_decoded_once(server: Server):
    resp = server.exchange(b"GET /containers/abc%252Fdef/json HTTP/1.1\r\nHost: x\r\n"
                           b"Connection: close\r\n\r\n")
    out = json.loads(body_of(resp))
    assert out["params"] == {"id": "abc%2Fdef"}
    assert out["path"] == "/containers/abc%2Fdef/json"
    # one decoding of %2F is a slash: another route shape, so no match
    resp = server.exchange(b"GET /containers/abc%2Fdef/json HTTP/1.1\r\nHost: x\r\n"
                           b"Connection: close\r\n\r\n")
    assert status_of(resp) == 404
    # with the version prefix as well
    resp = server.exchange(b"GET /v1.45/containers/a%2525b/json HTTP/1.1\r\nHost: x\r\n"
                           b"Connection: close\r\n\r\n")
    assert json.loads(body_of(resp))["params"] == {"id": "a%25b"}


def test_bad_escape_in_path(server: Server):
    refused(server, b"GET /containers/a%zzb/json HTTP/1.1\r\nHost: x\r\n\r\n")


def test_head_too_large_is_431(server: Server):
    raw = b"GET /_ping HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * (70 * 1024) + b"\r\n\r\n"
    assert "too large" in refused(server, raw, 431)
    # a head that is big only because of many headers
    many = b"".join(b"X-%d: %s\r\n" % (i, b"b" * 100) for i in range(700))
    refused(server, b"GET /_ping HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n", 431)


def test_head_just_under_the_limit_is_served(server: Server):
    raw = (b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: "
           + b"a" * (60 * 1024) + b"\r\n\r\n")
    assert status_of(server.exchange(raw)) == 200


def test_other_malformed_heads(server: Server):
    refused(server, b"GET /_ping HTTP/1.1\r\n\r\n")                       # no Host
    refused(server, b"GET /_ping HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n")  # two Hosts
    refused(server, b"GET  /_ping HTTP/1.1\r\nHost: x\r\n\r\n")           # double space
    refused(server, b"GET /_ping HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n")
    refused(server, b"G\x00T /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
    refused(server, b"GET /_ping HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n")


def test_incomplete_head_at_eof(server: Server):
    with server.connect() as s:
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n")
        s.shutdown(1)
        resp = read_to_eof(s)
    assert status_of(resp) == 400


def test_body_cut_short(server: Server):
    with server.connect() as s:
        s.sendall(post(b"Content-Length: 10\r\n", b"{}"))
        s.shutdown(1)
        resp = read_to_eof(s)
    assert status_of(resp) == 400
    assert "malformed request body" in message_of(resp)
    assert status_of(server.ping()) == 200


def test_error_messages_do_not_echo_a_whole_head(server: Server):
    raw = b"GET /_ping HTTP/1.1\r\nHost: x\r\nX-Big : " + b"a" * 60000 + b"\r\n\r\n"
    msg = refused(server, raw)
    assert len(msg) < 300
