"""JSON answers: orjson's bytes decode to what the standard library's
would, and what orjson refuses is still answered."""

from __future__ import annotations

import json

import pytest

from dockyard.api.server.jsonbody import json_bytes

SAMPLES = [
    {"Id": "a" * 64, "State": {"Running": True, "Pid": 42, "ExitCode": 0, "Error": ""},
     "Config": {"Env": ["A=1"], "Labels": {"k": "v"}, "Cmd": None}, "Ratio": 0.25},
    [{"Names": ["/web"], "Ports": [], "SizeRw": 9_223_372_036_854_775_807}],
    {"tab": "a\tb", "quote": 'say "hi"', "nul": "x\u0000y", "html": "<a & b>"},
    {"ünïcode": "日本語 ✓", "emoji": "\U0001f433"},
    {"empty": {}, "list": [], "neg": -1, "big": 2 ** 63 - 1},
]


@pytest.mark.parametrize("obj", SAMPLES)
def test_same_document_as_the_standard_library(obj):
    out = json_bytes(obj)
    assert out.endswith(b"\n") and b"\n" not in out[:-1]
    assert json.loads(out) == obj
    if all(ord(ch) < 128 for ch in json.dumps(obj, ensure_ascii=False)):
        assert out == json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def test_non_ascii_is_utf8_as_go_writes_it():
    assert json_bytes({"a": "é"}) == '{"a":"é"}\n'.encode()


@pytest.mark.parametrize("obj", [
    {"name": "bad\udcff bytes"},          # undecodable bytes kept as surrogates
    {"n": 2 ** 70},                        # past 64 bits
    {1: "int key"},
])
def test_what_orjson_refuses_is_still_encoded(obj):
    out = json_bytes(obj)
    assert out == json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def test_other_line_ends():
    assert json_bytes({"status": "x"}, b"\r\n") == b'{"status":"x"}\r\n'
