"""Request bodies are decoded as Go's encoding/json decodes them into
dockerd's structs: types, integer ranges, field names in any case."""

from __future__ import annotations

from typing import Self

import pytest

from dockyard.errors import InvalidParameter
from dockyard.oci import gojson
from dockyard.oci.schema import (
    CREATE_REQUEST,
    decode_commit_config,
    decode_create_request,
    decode_exec_options,
    decode_exec_start,
    decode_update_config,
)


class Literal(float):
    """A number the API parsed from `text` (what api/server/request.py makes)."""

    def __new__(cls, text: str) -> Self:
        obj = super().__new__(cls, text)
        obj.text = text  # type: ignore[attr-defined]
        return obj


def error_of(decode, body) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidParameter) as e:
        decode(body)
    return e.value.message


@pytest.mark.parametrize(("body", "what", "field", "gotype"), [
    ({"Cmd": 5}, "number", "CreateRequest.Config.Cmd", "string"),
    ({"Tty": "yes"}, "string", "CreateRequest.Config.Tty", "bool"),
    ({"StopTimeout": "x"}, "string", "CreateRequest.Config.StopTimeout", "int"),
    ({"Labels": ["a"]}, "array", "CreateRequest.Config.Labels", "map[string]string"),
    ({"Labels": {"a": 1}}, "number", "CreateRequest.Config.Labels", "string"),
    ({"Env": "A=1"}, "string", "CreateRequest.Config.Env", "[]string"),
    ({"Env": [1]}, "number", "CreateRequest.Config.Env", "string"),
    ({"ExposedPorts": {"80/tcp": 1}}, "number", "CreateRequest.Config.ExposedPorts",
     "struct {}"),
    ({"Healthcheck": {"Retries": "3"}}, "string",
     "HealthcheckConfig.Config.Healthcheck.Retries", "int"),
    ({"HostConfig": {"Memory": "lots"}}, "string", "HostConfig.HostConfig.Resources.Memory",
     "int64"),
    ({"HostConfig": {"Binds": "x"}}, "string", "HostConfig.HostConfig.Binds", "[]string"),
    ({"HostConfig": {"RestartPolicy": "always"}}, "string",
     "HostConfig.HostConfig.RestartPolicy", "container.RestartPolicy"),
    ({"HostConfig": {"RestartPolicy": {"MaximumRetryCount": "3"}}}, "string",
     "RestartPolicy.HostConfig.RestartPolicy.MaximumRetryCount", "int"),
    ({"HostConfig": []}, "array", "CreateRequest.HostConfig", "container.HostConfig"),
    ({"HostConfig": {"Privileged": 1}}, "number", "HostConfig.HostConfig.Privileged", "bool"),
    ({"HostConfig": {"NetworkMode": 1}}, "number", "HostConfig.HostConfig.NetworkMode",
     "container.NetworkMode"),
    ({"HostConfig": {"Ulimits": [{"Name": 5}]}}, "number",
     "Ulimit.HostConfig.Resources.Ulimits.Name", "string"),
    ({"HostConfig": {"BlkioWeightDevice": {}}}, "object",
     "HostConfig.HostConfig.Resources.BlkioWeightDevice", "[]*blkiodev.WeightDevice"),
    ({"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": 80}]}}}, "number",
     "PortBinding.HostConfig.PortBindings.HostPort", "string"),
    ({"HostConfig": {"Mounts": [{"ReadOnly": "yes"}]}}, "string",
     "Mount.HostConfig.Mounts.ReadOnly", "bool"),
    ({"NetworkingConfig": {"EndpointsConfig": {"bridge": {"Aliases": "x"}}}}, "string",
     "EndpointSettings.NetworkingConfig.EndpointsConfig.Aliases", "[]string"),
])
def test_wrong_types_read_like_gos_errors(body, what, field, gotype):
    msg = error_of(decode_create_request, {"Image": "busybox", **body})
    assert msg == (f"invalid JSON: json: cannot unmarshal {what} into Go struct field "
                   f"{field} of type {gotype}")


def test_a_body_that_is_not_an_object():
    assert error_of(decode_create_request, [1]) == (
        "invalid JSON: json: cannot unmarshal array into Go value of type "
        "container.CreateRequest")


@pytest.mark.parametrize(("value", "gotype", "shown"), [
    (2**70, "int64", "1180591620717411303424"),
    (2**63, "int64", "9223372036854775808"),
    (-(2**63) - 1, "int64", "-9223372036854775809"),
    (Literal("1e23"), "int64", "1e23"),
    (Literal("1.5"), "int64", "1.5"),
    (Literal("64.0"), "int64", "64.0"),
])
def test_integers_must_fit_their_go_type(value, gotype, shown):
    for field in ("Memory", "PidsLimit", "MemorySwap", "ShmSize", "CpuQuota", "NanoCpus"):
        path = ("HostConfig.HostConfig." if field == "ShmSize" else
                "HostConfig.HostConfig.Resources.") + field
        msg = error_of(decode_create_request, {"Image": "b", "HostConfig": {field: value}})
        assert msg == (f"invalid JSON: json: cannot unmarshal number {shown} into Go struct "
                       f"field {path} of type {gotype}")
    msg = error_of(decode_update_config, {"PidsLimit": value})
    assert msg == (f"invalid JSON: json: cannot unmarshal number {shown} into Go struct field "
                   f"UpdateConfig.Resources.PidsLimit of type int64")


def test_integer_ranges_edges():
    ok = decode_create_request({"Image": "b", "HostConfig": {
        "Memory": 2**63 - 1, "CpuQuota": -(2**63), "BlkioWeight": 65535,
        "IOMaximumIOps": 2**64 - 1, "OomScoreAdj": -1000}})
    assert ok["HostConfig"]["Memory"] == 2**63 - 1
    for field, value, gotype, prefix in (
            ("BlkioWeight", 65536, "uint16", "Resources."),
            ("BlkioWeight", -1, "uint16", "Resources."),
            ("IOMaximumIOps", 2**64, "uint64", "Resources."),
            ("OomScoreAdj", 2**63, "int", "")):
        msg = error_of(decode_create_request, {"Image": "b", "HostConfig": {field: value}})
        assert msg.endswith(f"number {value} into Go struct field "
                            f"HostConfig.HostConfig.{prefix}{field} of type {gotype}")
    msg = error_of(decode_create_request, {"Image": "b", "HostConfig": {
        "BlkioDeviceReadBps": [{"Path": "/dev/sda", "Rate": -1}]}})
    assert msg.endswith("number -1 into Go struct field "
                        "ThrottleDevice.HostConfig.Resources.BlkioDeviceReadBps.Rate of type "
                        "uint64")


def test_field_names_match_case_insensitively_and_keep_map_keys():
    req = decode_create_request({
        "image": "busybox", "CMD": "echo hi", "labels": {"Com.Example": "X"},
        "exposedports": {"80/TCP": {}},
        "hostconfig": {"memory": 1 << 26, "restartpolicy": {"name": "always"},
                       "sysctls": {"net.ipv4.ip_forward": "1"}, "CAPADD": "NET_ADMIN",
                       "portBindings": {}, "UnknownField": 5},
        "networkingconfig": {"endpointsconfig": {"Bridge": {"aliases": ["a"]}}}})
    assert req == {
        "Image": "busybox", "Cmd": ["echo hi"], "Labels": {"Com.Example": "X"},
        "ExposedPorts": {"80/TCP": {}},
        "HostConfig": {"Memory": 1 << 26, "RestartPolicy": {"Name": "always"},
                       "Sysctls": {"net.ipv4.ip_forward": "1"}, "CapAdd": ["NET_ADMIN"],
                       "PortBindings": {}},
        "NetworkingConfig": {"EndpointsConfig": {"Bridge": {"Aliases": ["a"]}}}}


def test_go_folding_of_the_long_s_and_kelvin_sign():
    assert decode_create_request({"Image": "b", "ſtopSignal": "SIGINT"})["StopSignal"] == \
        "SIGINT"
    assert decode_exec_options({"DetachKeys": "", "detach\u212aeys": "ctrl-x"}) == \
        {"DetachKeys": "ctrl-x"}


def test_repeated_fields_later_wins_null_keeps_objects_merge():
    req = decode_create_request({
        "Image": "b", "Cmd": ["a"], "cmd": ["b"], "User": "x", "user": None,
        "HostConfig": {"Memory": 1 << 26}, "hostconfig": {"PidsLimit": 5}})
    assert req["Cmd"] == ["b"] and req["User"] == "x"
    assert req["HostConfig"] == {"Memory": 1 << 26, "PidsLimit": 5}


def test_nulls_strslices_and_fixed_arrays():
    req = decode_create_request({
        "Image": "b", "Entrypoint": None, "Env": ["A=1", None], "Cmd": "echo hi",
        "HostConfig": {"CapAdd": "NET_ADMIN", "Memory": None, "MemorySwappiness": None,
                       "ConsoleSize": [10, 20, 30], "Labels": None}})
    assert req["Entrypoint"] is None and req["Env"] == ["A=1", ""]
    assert req["Cmd"] == ["echo hi"]
    assert req["HostConfig"] == {"CapAdd": ["NET_ADMIN"], "Memory": None,
                                 "MemorySwappiness": None, "ConsoleSize": [10, 20]}
    assert decode_create_request({"Image": "b", "HostConfig": {"ConsoleSize": [5]}})[
        "HostConfig"]["ConsoleSize"] == [5, 0]
    assert error_of(decode_create_request, {"Image": "b", "HostConfig": {
        "ConsoleSize": [-1, 2]}}).endswith(
        "number -1 into Go struct field HostConfig.HostConfig.ConsoleSize of type uint")


def test_ports_are_checked():
    with pytest.raises(InvalidParameter, match="invalid port specification"):
        decode_create_request({"Image": "b", "ExposedPorts": {"abc/tcp": {}}})
    decode_create_request({"Image": "b", "ExposedPorts": {"80/tcp": {}, "53/udp": {}}})


def test_exec_bodies():
    assert decode_exec_options({"cmd": ["sh"], "detachKeys": "ctrl-a", "Container": "x",
                                "tty": True, "consolesize": [24, 80]}) == {
        "Cmd": ["sh"], "DetachKeys": "ctrl-a", "Tty": True, "ConsoleSize": [24, 80]}
    assert decode_exec_options(None) == {}
    assert error_of(decode_exec_options, {"Cmd": "sh"}) == (
        "invalid JSON: json: cannot unmarshal string into Go struct field ExecOptions.Cmd of "
        "type []string")
    assert decode_exec_start({"detach": True, "TTY": False}) == {"Detach": True, "Tty": False}
    assert error_of(decode_exec_start, {"Detach": "yes"}).endswith(
        "ExecStartOptions.Detach of type bool")


def test_update_body():
    assert decode_update_config({"memory": 1 << 27, "restartPolicy": {"name": "always"},
                                 "Foo": 1}) == {"Memory": 1 << 27,
                                                "RestartPolicy": {"Name": "always"}}
    assert error_of(decode_update_config, {"RestartPolicy": "always"}).endswith(
        "UpdateConfig.RestartPolicy of type container.RestartPolicy")


def test_commit_config_is_the_config_part_of_a_create_request():
    assert decode_commit_config(None) is None
    assert decode_commit_config({}) is None
    assert decode_commit_config({"cmd": "sh", "HostConfig": {"Memory": 1}, "env": ["A=1"]}) \
        == {"Cmd": ["sh"], "Env": ["A=1"]}


def test_zero_values():
    t = CREATE_REQUEST.field("NetworkingConfig").type
    assert isinstance(t, gojson.Struct)
    endpoints = t.field("EndpointsConfig").type
    assert isinstance(endpoints, gojson.Map) and isinstance(endpoints.elem, gojson.Struct)
    cli_default = {"IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "",
                   "DriverOpts": None, "GwPriority": 0, "IPPrefixLen": 0, "DNSNames": None}
    assert gojson.is_zero(cli_default, endpoints.elem)
    assert not gojson.is_zero({**cli_default, "Aliases": ["x"]}, endpoints.elem)
    assert gojson.is_zero({"IPAMConfig": {"IPv4Address": ""}}, endpoints.elem)
    assert not gojson.is_zero({"a": ""})          # a map with a key asks for something
    assert all(gojson.is_zero(v) for v in (None, False, 0, "", [], {}))
