"""JSON types of the create and update bodies, checked before anything else.

dockerd decodes requests into Go structs, so a value of the wrong JSON type
is an error before any validation runs; a dict-based engine has to check it
explicitly, or a string where a bool belongs is stored and breaks inspect.
Errors read like Go's decoder's, which clients have seen for years.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from dockyard.errors import InvalidParameter

BOOL, INT, STR, STRS, STRMAP, OBJ, ANYMAP = "bool", "int64", "string", "[]string", \
    "map[string]string", "struct", "map[string]struct"
# StrSlice fields take a JSON string too (moby's strslice): "echo hi" -> ["echo hi"]
STRSLICE = "strslice"

CONFIG_FIELDS: dict[str, str] = {
    **dict.fromkeys(("AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin",
                     "StdinOnce", "ArgsEscaped", "NetworkDisabled"), BOOL),
    **dict.fromkeys(("Hostname", "Domainname", "User", "Image", "WorkingDir", "MacAddress",
                     "StopSignal"), STR),
    "StopTimeout": INT,
    "Env": STRS, "OnBuild": STRS,
    "Cmd": STRSLICE, "Entrypoint": STRSLICE, "Shell": STRSLICE,
    "Labels": STRMAP,
    "ExposedPorts": ANYMAP, "Volumes": ANYMAP,
    "Healthcheck": OBJ,
}

RESOURCE_FIELDS: dict[str, str] = {
    **dict.fromkeys(("Memory", "MemoryReservation", "MemorySwap", "MemorySwappiness",
                     "KernelMemory", "KernelMemoryTCP", "NanoCpus", "CpuShares", "CpuPeriod",
                     "CpuQuota", "CpuRealtimePeriod", "CpuRealtimeRuntime", "BlkioWeight",
                     "PidsLimit", "CpuCount", "CpuPercent", "IOMaximumIOps",
                     "IOMaximumBandwidth"), INT),
    **dict.fromkeys(("CpusetCpus", "CpusetMems", "CgroupParent"), STR),
    "OomKillDisable": BOOL, "Init": BOOL,
    **dict.fromkeys(("BlkioWeightDevice", "BlkioDeviceReadBps", "BlkioDeviceWriteBps",
                     "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps", "Devices", "Ulimits",
                     "DeviceRequests"), "[]struct"),
    "DeviceCgroupRules": STRS,
}

HOST_CONFIG_FIELDS: dict[str, str] = {
    **RESOURCE_FIELDS,
    **dict.fromkeys(("Binds", "Dns", "DnsOptions", "DnsSearch", "ExtraHosts", "GroupAdd",
                     "Links", "SecurityOpt", "VolumesFrom", "MaskedPaths", "ReadonlyPaths"),
                    STRS),
    "CapAdd": STRSLICE, "CapDrop": STRSLICE,
    **dict.fromkeys(("ContainerIDFile", "NetworkMode", "IpcMode", "Cgroup", "PidMode",
                     "UTSMode", "UsernsMode", "CgroupnsMode", "Runtime", "VolumeDriver",
                     "Isolation"), STR),
    **dict.fromkeys(("AutoRemove", "Privileged", "PublishAllPorts", "ReadonlyRootfs"), BOOL),
    **dict.fromkeys(("OomScoreAdj", "ShmSize"), INT),
    **dict.fromkeys(("Sysctls", "Tmpfs", "StorageOpt", "Annotations"), STRMAP),
    "PortBindings": ANYMAP,
    "RestartPolicy": OBJ, "LogConfig": OBJ,
    "Mounts": "[]struct",
    "ConsoleSize": "[2]uint",
}

SUB_FIELDS: dict[str, dict[str, str]] = {
    "RestartPolicy": {"Name": STR, "MaximumRetryCount": INT},
    "LogConfig": {"Type": STR, "Config": STRMAP},
    "Healthcheck": {"Test": STRS, "Interval": INT, "Timeout": INT, "StartPeriod": INT,
                    "StartInterval": INT, "Retries": INT},
}

_PORT = re.compile(r"^\d{1,5}(-\d{1,5})?(/[a-zA-Z]+)?$")


def _json_type(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return f"number {v}" if isinstance(v, float) else "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _fail(v: Any, path: str, gotype: str) -> InvalidParameter:
    return InvalidParameter(f"invalid JSON: json: cannot unmarshal {_json_type(v)} into Go "
                            f"struct field {path} of type {gotype}")


def _check(v: Any, kind: str, path: str) -> Any:
    """Return the value (StrSlice strings become lists) or raise."""
    if v is None:
        return v
    if kind == BOOL:
        if not isinstance(v, bool):
            raise _fail(v, path, "bool")
    elif kind == INT:
        if isinstance(v, bool) or not isinstance(v, int):
            if isinstance(v, float) and v.is_integer():
                return int(v)
            raise _fail(v, path, "int64")
    elif kind == STR:
        if not isinstance(v, str):
            raise _fail(v, path, "string")
    elif kind in (STRS, STRSLICE):
        if kind == STRSLICE and isinstance(v, str):
            return [v]
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise _fail(v, path, "[]string")
    elif kind == STRMAP:
        if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
            raise _fail(v, path, "map[string]string")
    elif kind == ANYMAP:
        if not isinstance(v, dict) or not all(x is None or isinstance(x, (dict, list))
                                              for x in v.values()):
            raise _fail(v, path, "map[string]struct {}")
    elif kind == OBJ:
        if not isinstance(v, dict):
            raise _fail(v, path, "struct")
    elif kind == "[]struct":
        if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
            raise _fail(v, path, "[]struct")
    elif kind == "[2]uint" and (not isinstance(v, list) or len(v) != 2 or not all(
            isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v)):
        raise _fail(v, path, "[2]uint")
    return v


def _check_fields(obj: dict[str, Any], table: Mapping[str, str], prefix: str) -> None:
    for key, kind in table.items():
        if key in obj:
            obj[key] = _check(obj[key], kind, f"{prefix}.{key}")
            sub = SUB_FIELDS.get(key)
            if sub and isinstance(obj[key], dict):
                _check_fields(obj[key], sub, f"{prefix}.{key}")


def check_create_body(body: Any) -> None:
    """Check (and normalise in place) the JSON types of a create request."""
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON: json: cannot unmarshal "
                               f"{_json_type(body)} into Go value of type "
                               "container.CreateRequest")
    _check_fields(body, CONFIG_FIELDS, "CreateRequest")
    for key in ("HostConfig", "NetworkingConfig"):
        if body.get(key) is not None and not isinstance(body[key], dict):
            raise _fail(body[key], f"CreateRequest.{key}", "struct")
    if isinstance(body.get("HostConfig"), dict):
        _check_fields(body["HostConfig"], HOST_CONFIG_FIELDS, "CreateRequest.HostConfig")
    for port in body.get("ExposedPorts") or {}:
        if not _PORT.match(port):
            raise InvalidParameter(f'invalid port specification: "{port}"')

