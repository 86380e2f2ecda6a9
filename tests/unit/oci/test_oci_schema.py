"""JSON types of create bodies are checked before anything is stored."""

from __future__ import annotations

import pytest

from dockyard.errors import InvalidParameter
from dockyard.oci.schema import check_create_body


@pytest.mark.parametrize("body,field,gotype", [
    ({"Cmd": 5}, "CreateRequest.Cmd", "[]string"),
    ({"Tty": "yes"}, "CreateRequest.Tty", "bool"),
    ({"StopTimeout": "x"}, "CreateRequest.StopTimeout", "int64"),
    ({"Labels": ["a"]}, "CreateRequest.Labels", "map[string]string"),
    ({"Env": "A=1"}, "CreateRequest.Env", "[]string"),
    ({"HostConfig": {"Memory": "lots"}}, "CreateRequest.HostConfig.Memory", "int64"),
    ({"HostConfig": {"Binds": "x"}}, "CreateRequest.HostConfig.Binds", "[]string"),
    ({"HostConfig": {"RestartPolicy": "always"}}, "CreateRequest.HostConfig.RestartPolicy",
     "struct"),
    ({"HostConfig": {"RestartPolicy": {"MaximumRetryCount": "3"}}},
     "CreateRequest.HostConfig.RestartPolicy.MaximumRetryCount", "int64"),
    ({"HostConfig": []}, "CreateRequest.HostConfig", "struct"),
    ({"HostConfig": {"Privileged": 1}}, "CreateRequest.HostConfig.Privileged", "bool"),
])
def test_wrong_types(body, field, gotype):
    with pytest.raises(InvalidParameter) as e:
        check_create_body({"Image": "busybox", **body})
    assert e.value.message.startswith("invalid JSON: json: cannot unmarshal ")
    assert f"Go struct field {field} of type {gotype}" in e.value.message


def test_strslice_and_nulls_are_fine():
    body = {"Image": "busybox", "Cmd": "echo hi", "Entrypoint": None, "Env": None,
            "HostConfig": {"CapAdd": "NET_ADMIN", "Memory": None, "MemorySwappiness": None}}
    check_create_body(body)
    assert body["Cmd"] == ["echo hi"]
    assert body["HostConfig"]["CapAdd"] == ["NET_ADMIN"]


def test_ports_and_non_object():
    with pytest.raises(InvalidParameter, match="invalid port specification"):
        check_create_body({"Image": "b", "ExposedPorts": {"abc/tcp": {}}})
    check_create_body({"Image": "b", "ExposedPorts": {"80/tcp": {}, "53/udp": {}}})
    with pytest.raises(InvalidParameter, match="container.CreateRequest"):
        check_create_body([1])
