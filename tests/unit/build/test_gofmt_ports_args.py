"""Go's text forms in history, EXPOSE port specs and build-arg scoping."""

from __future__ import annotations

import pytest

from dockyard.build.buildargs import BuildArgs
from dockyard.build.gofmt import (
    format_duration,
    go_list,
    go_quote_list,
    healthcheck_q,
    parse_duration,
    quote_rune,
)
from dockyard.build.ports import exposed_ports
from dockyard.errors import InvalidParameter


@pytest.mark.parametrize(("text", "ns"), [
    ("0", 0), ("5s", 5 * 10**9), ("1m30s", 90 * 10**9), ("1.5h", 5400 * 10**9),
    ("300ms", 300 * 10**6), ("1us", 1000), ("1µs", 1000), ("-2s", -2 * 10**9), (".5s", 5 * 10**8),
    ("1h2m3s4ms5us6ns", 3723004005006),
])
def test_parse_duration(text, ns):
    assert parse_duration(text) == ns


@pytest.mark.parametrize(("text", "msg"), [
    ("5", 'time: missing unit in duration "5"'), ("5x", 'time: unknown unit "x" in duration "5x"'),
    ("", 'time: invalid duration ""'), ("s", 'time: invalid duration "s"'),
    (".s", 'time: invalid duration ".s"'), ("-", 'time: invalid duration "-"'),
])
def test_parse_duration_errors(text, msg):
    with pytest.raises(InvalidParameter) as e:
        parse_duration(text)
    assert e.value.message == msg


@pytest.mark.parametrize(("ns", "text"), [
    (0, "0s"), (1, "1ns"), (1500, "1.5µs"), (1_500_000, "1.5ms"), (5 * 10**9, "5s"),
    (90 * 10**9, "1m30s"), (3600 * 10**9, "1h0m0s"), (3723 * 10**9 + 5 * 10**8, "1h2m3.5s"),
    (-(10**9), "-1s"),
])
def test_format_duration(ns, text):
    assert format_duration(ns) == text


def test_lists_and_runes():
    assert go_quote_list(["/bin/sh", "-c", 'echo "hi"\n']) == '["/bin/sh" "-c" "echo \\"hi\\"\\n"]'
    assert go_quote_list(None) == "[]"
    assert go_list(["/a", "/b"]) == "[/a /b]"
    assert quote_rune(0) == "'\\x00'"
    assert quote_rune(3) == "'\\x03'"
    assert quote_rune(65) == "'A'"
    assert quote_rune(10) == "'\\n'"


def test_healthcheck_as_the_classic_builder_writes_it():
    hc = {"Test": ["CMD-SHELL", "curl -f http://localhost/ || exit 1"],
          "Interval": 300 * 10**9, "Timeout": 3 * 10**9, "Retries": 3}
    assert healthcheck_q(hc) == ('&{["CMD-SHELL" "curl -f http://localhost/ || exit 1"] '
                                 '"5m0s" "3s" "0s" "0s" \'\\x03\'}')


@pytest.mark.parametrize(("specs", "want"), [
    (["80"], ["80/tcp"]), (["80/udp", "80"], ["80/udp", "80/tcp"]),
    (["8000-8002"], ["8000/tcp", "8001/tcp", "8002/tcp"]), (["8080:80"], ["80/tcp"]),
    (["127.0.0.1:8080:80/sctp"], ["80/sctp"]), (["80/TCP"], ["80/tcp"]),
    (["[::1]:8080:80"], ["80/tcp"]),
])
def test_exposed_ports(specs, want):
    assert exposed_ports(specs) == want


@pytest.mark.parametrize(("spec", "msg"), [
    ("abc", "invalid containerPort: abc"), ("80/xyz", "invalid proto: xyz"),
    ("/tcp", "no port specified: /tcp<empty>"), ("70000", "invalid containerPort: 70000"),
    ("90-80", "invalid containerPort: 90-80"), ("x:80", "invalid hostPort: x"),
    ("1.2.3:80:80", "invalid IP address: 1.2.3"),
    ("8000-8001:80-82", ("invalid ranges specified for container and host Ports: 80-82 and "
                        "8000-8001")),
])
def test_exposed_port_errors(spec, msg):
    with pytest.raises(InvalidParameter) as e:
        exposed_ports([spec])
    assert e.value.message == msg


def test_build_args_need_a_declaration_except_proxies():
    args = BuildArgs({"X": "1", "HTTP_PROXY": "p", "UNUSED": "u", "NAMED": None})
    assert args.all_allowed() == {"HTTP_PROXY": "p"}
    args.add_arg("X", None)
    args.add_arg("Y", "dflt")
    assert args.all_allowed() == {"X": "1", "Y": "dflt", "HTTP_PROXY": "p"}
    assert args.filter_allowed(["Y=from-env"]) == ["HTTP_PROXY=p", "X=1"]
    assert not args.is_referenced_or_not_builtin("HTTP_PROXY")
    assert args.is_referenced_or_not_builtin("X")
    assert args.unused_warning() == \
        "[Warning] One or more build-args [NAMED UNUSED] were not consumed\n"


def test_meta_args_reach_from_lines_and_declared_stage_args():
    args = BuildArgs({"V": None})
    args.add_meta("V", "3")
    args.add_meta("W", None)
    assert args.all_meta() == {"V": "3"}
    stage = args.clone_for_stage()
    assert stage.all_allowed() == {}
    stage.add_arg("V", None)
    assert stage.all_allowed() == {"V": "3"}
    given = BuildArgs({"V": "9"})
    given.add_meta("V", "3")
    assert given.all_meta() == {"V": "9"}
