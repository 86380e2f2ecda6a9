"""Answers with a known length are framed without h11: the bytes must be
exactly the ones h11 writes for the same answer to the same request."""

from __future__ import annotations

import itertools

import h11
import pytest

from dockyard.api.server.responses import whole_response

REQUESTS = {
    "get 1.1": b"GET /x HTTP/1.1\r\nHost: d\r\n\r\n",
    "head 1.1": b"HEAD /x HTTP/1.1\r\nHost: d\r\n\r\n",
    "get 1.1 close": b"GET /x HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n",
    "get 1.1 keep-alive, close": b"GET /x HTTP/1.1\r\nHost: d\r\nConnection: keep-alive, Close\r\n\r\n",
    "get 1.0": b"GET /x HTTP/1.0\r\n\r\n",
    "head 1.0 keep-alive": b"HEAD /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
}

HEADERS = {
    "plain": {"Api-Version": "1.51", "Content-Type": "application/json"},
    "ours close": {"Api-Version": "1.51", "Connection": "close", "Content-Type": "text/plain"},
    "ours upgrade": {"Connection": "Upgrade", "Upgrade": "tcp", "Server": "Docker/x"},
    "ours keep-alive": {"connection": "keep-alive", "Ostype": "linux"},
}

CASES = [(200, b'{"Id":"abc"}\n'), (201, b"{}\n"), (404, b'{"message":"no"}\n'),
         (500, b"x" * 70000), (204, b""), (304, b"")]


def h11_bytes(request: bytes, status: int, headers: dict[str, str], body: bytes
              ) -> tuple[bytes, bool]:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(request)
    ev = conn.next_event()
    assert isinstance(ev, h11.Request)
    assert isinstance(conn.next_event(), h11.EndOfMessage)
    keep = conn._cstate.keep_alive
    out = conn.send(h11.Response(status_code=status, headers=list(headers.items()),
                                 reason=h11_reason(status))) or b""
    if body and ev.method != b"HEAD":
        out += conn.send(h11.Data(data=body)) or b""
    out += conn.send(h11.EndOfMessage()) or b""
    return out, keep


def h11_reason(status: int) -> bytes:
    from http import HTTPStatus
    return HTTPStatus(status).phrase.encode()


@pytest.mark.parametrize(("req", "hdr", "case"), list(itertools.product(
    REQUESTS, HEADERS, range(len(CASES)))))
def test_framed_like_h11(req: str, hdr: str, case: int) -> None:
    status, body = CASES[case]
    headers = dict(HEADERS[hdr])
    if status not in (204, 304):
        headers["Content-Length"] = str(len(body))
    want, keep = h11_bytes(REQUESTS[req], status, headers, body)
    sent = b"" if REQUESTS[req].startswith(b"HEAD") else body
    assert whole_response(status, headers, sent, keep_alive=keep) == want


def test_a_connection_kept_alive_only_for_http_1_1_without_close() -> None:
    keeps = {name: h11_bytes(raw, 200, {"Content-Length": "0"}, b"")[1]
             for name, raw in REQUESTS.items()}
    assert keeps == {"get 1.1": True, "head 1.1": True, "get 1.1 close": False,
                     "get 1.1 keep-alive, close": False, "get 1.0": False,
                     "head 1.0 keep-alive": False}
