"""The HTTP layer without root: parsing, chunked bodies, routing, errors."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

import pytest

from dockyard.api.app import App
from dockyard.api.server import (
    Request,
    Router,
    json_response,
    parse_filters,
    stream_response,
)
from dockyard.errors import Conflict, InvalidParameter, NotFound


def test_parse_filters_both_forms():
    # dockerd's Args.Get gives a value whatever its boolean (tried on dockerd 20.10)
    assert parse_filters('{"label":{"a=b":true,"c":false}}') == {"label": ["a=b", "c"]}
    assert parse_filters('{"name":["x","y"]}') == {"name": ["x", "y"]}
    assert parse_filters("") == {}
    with pytest.raises(InvalidParameter):
        parse_filters("{bad")
    with pytest.raises(InvalidParameter):
        parse_filters("[1]")


def make_router() -> Router:
    r = Router()

    async def echo(req: Request):
        return json_response({"body": await req.json(), "v": list(req.api_version),
                              "id": req.params.get("id")})

    async def boom(req: Request):
        raise {"nf": NotFound("No such thing: x"), "cf": Conflict("busy"),
               "bad": InvalidParameter("nope")}[req.params["kind"]]

    async def crash(req: Request):
        raise RuntimeError("bug")

    async def streamer(req: Request):
        async def gen():
            for i in range(3):
                yield f"{i}\n".encode()
        return stream_response(gen(), "text/plain")

    r.add("POST", "/echo/{id}", echo)
    r.add("GET", "/err/{kind}", boom)
    r.add("GET", "/crash", crash)
    r.add("GET", "/stream", streamer)
    return r


async def roundtrip(sock: str, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_unix_connection(sock)
    writer.write(raw)
    await writer.drain()
    data = await reader.read()
    writer.close()
    return data


def run_app(requests: list[bytes]) -> list[bytes]:
    async def main() -> list[bytes]:
        app = App(make_router())
        with tempfile.TemporaryDirectory() as d:
            sock = str(Path(d) / "s.sock")
            await app.listen_unix(sock, group=None)
            try:
                return [await roundtrip(sock, r) for r in requests]
            finally:
                await app.close()

    return asyncio.run(main())


def body_of(resp: bytes) -> bytes:
    return resp.split(b"\r\n\r\n", 1)[1]


def test_chunked_request_body_and_version_prefix():
    body = b'{"a": 1}'
    chunked = b"3\r\n" + body[:3] + b"\r\n" + hex(len(body) - 3)[2:].encode() + b"\r\n" + \
        body[3:] + b"\r\n0\r\n\r\n"
    (resp,) = run_app([b"POST /v1.44/echo/abc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n" + chunked])
    assert resp.startswith(b"HTTP/1.1 200")
    assert json.loads(body_of(resp)) == {"body": {"a": 1}, "v": [1, 44], "id": "abc"}


def test_error_mapping_and_unknown_route():
    reqs = [f"GET /err/{k} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
            for k in ("nf", "cf", "bad")]
    reqs.append(b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    reqs.append(b"GET /crash HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    out = run_app(reqs)
    assert [r.split(b" ")[1] for r in out] == [b"404", b"409", b"400", b"404", b"500"]
    assert json.loads(body_of(out[0])) == {"message": "No such thing: x"}
    assert json.loads(body_of(out[3])) == {"message": "page not found"}
    assert b"Api-Version: 1.51" in out[0]


def test_bad_json_and_trailing_content():
    out = run_app([
        b"POST /echo/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5\r\n\r\n{bad}",
        b"POST /echo/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5\r\n\r\n{} {}",
    ])
    assert json.loads(body_of(out[0]))["message"].startswith("invalid JSON")
    assert json.loads(body_of(out[1]))["message"] == "unexpected content after JSON"


def test_absurd_nesting_is_a_400_not_a_crash():
    deep = b"[" * 100_000
    quoted = b'{"a": "' + b"[" * 5000 + b'"}'     # brackets inside a string do not nest
    nested_ok = b'{"a": ' + b"[" * 100 + b"]" * 100 + b"}"
    out = run_app([
        b"POST /echo/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body
        for body in (deep, quoted, nested_ok, b'{"a": NaN}', b"\xff")])
    assert [r.split(b" ")[1] for r in out] == [b"400", b"200", b"200", b"400", b"400"]
    msgs = [json.loads(body_of(r)).get("message", "") for r in out]
    assert msgs[0] == "invalid JSON: invalid character '[' exceeded max depth"
    assert json.loads(body_of(out[1]))["body"] == {"a": "[" * 5000}
    assert msgs[3].startswith("invalid JSON: invalid character 'N'")
    assert msgs[4].startswith("invalid JSON")
    assert not any("Error" in m for m in msgs)


def test_deeply_nested_filters_are_a_400():
    with pytest.raises(InvalidParameter, match="^invalid filter$"):
        parse_filters("[" * 100_000)


@pytest.mark.parametrize("raw", ["{bad", "[]", '"x"', '{"a":"b"}', '{"a":{"b":1}}',
                                 '{"a":[1]}', '{"a":{"b":true},"c":["d"]}', "{\"a\":[\"\u0000"])
def test_malformed_filters_are_dockerds_invalid_filter(raw):
    with pytest.raises(InvalidParameter) as e:
        parse_filters(raw)
    assert e.value.message == "invalid filter"


def test_filters_in_both_of_dockerds_shapes():
    assert parse_filters('{"a":{"x":true,"y":false},"b":null}') == {"a": ["x", "y"], "b": []}
    assert parse_filters('{"a":["x","y"],"b":[]}') == {"a": ["x", "y"], "b": []}
    assert parse_filters("null") == {}


def test_a_bug_answers_500_without_python_names():
    (resp,) = run_app([b"GET /crash HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"])
    assert json.loads(body_of(resp)) == {"message": "internal error: bug"}


def test_keep_alive_after_stream():
    raw = (b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n"
           b"GET /err/nf HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    (resp,) = run_app([raw])
    assert b"Transfer-Encoding: chunked" in resp
    assert b"2\r\n0\n\r\n" in resp
    assert b"HTTP/1.1 404" in resp  # the pipelined request was served too


def test_version_too_old_and_too_new():
    out = run_app([b"GET /v1.12/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                   b"GET /v2.0/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"])
    assert out[0].startswith(b"HTTP/1.1 400") and b"too old" in out[0]
    assert json.loads(body_of(out[1]))["message"].startswith("client version 2.0 is too new")
