"""Docker's request structs, as data, and the decoding of each request body.

dockerd decodes create, update, exec and commit bodies into these Go
structs (moby v28 api/types), so a value of the wrong JSON type, an integer
out of its type's range or a field name in another case is settled before
any validation runs.  A dict-based engine has to do that explicitly, or a
string where a bool belongs is stored and breaks inspect, a mis-cased field
is silently ignored, and a 2^70 memory limit reaches the runtime.  Every
body goes through `gojson.decode` against its struct here; the result is
what the rest of the engine reads.
"""

from __future__ import annotations

import re
from typing import Any

from dockyard.errors import InvalidParameter
from dockyard.oci.gojson import (
    DURATION,
    INT,
    INT64,
    STRMAP,
    STRS,
    UINT,
    UINT16,
    UINT64,
    Array,
    Bool,
    Empty,
    Field,
    Int,
    Str,
    StrSlice,
    Struct,
    decode,
    fields,
    map_of,
    slice_of,
    struct,
)

BOOL, STR = Bool(), Str()
CONSOLE_SIZE = Array("[2]uint", UINT, 2)

HEALTH_CONFIG = struct(
    "v1.HealthcheckConfig", Field("Test", STRS),
    *fields(DURATION, "Interval", "Timeout", "StartPeriod", "StartInterval"),
    Field("Retries", INT))

CONFIG = struct(
    "container.Config",
    *fields(STR, "Hostname", "Domainname", "User"),
    *fields(BOOL, "AttachStdin", "AttachStdout", "AttachStderr"),
    Field("ExposedPorts", map_of(Empty(), "nat.PortSet")),
    *fields(BOOL, "Tty", "OpenStdin", "StdinOnce"),
    Field("Env", STRS), Field("Cmd", StrSlice()), Field("Healthcheck", HEALTH_CONFIG),
    Field("ArgsEscaped", BOOL), Field("Image", STR),
    Field("Volumes", map_of(Empty())), Field("WorkingDir", STR),
    Field("Entrypoint", StrSlice()), Field("NetworkDisabled", BOOL),
    Field("MacAddress", STR), Field("OnBuild", STRS), Field("Labels", STRMAP),
    Field("StopSignal", STR), Field("StopTimeout", INT), Field("Shell", StrSlice()))

WEIGHT_DEVICE = struct("blkiodev.WeightDevice", Field("Path", STR), Field("Weight", UINT16))
THROTTLE_DEVICE = struct("blkiodev.ThrottleDevice", Field("Path", STR), Field("Rate", UINT64))
DEVICE_MAPPING = struct("container.DeviceMapping",
                        *fields(STR, "PathOnHost", "PathInContainer", "CgroupPermissions"))
DEVICE_REQUEST = struct(
    "container.DeviceRequest", Field("Driver", STR), Field("Count", INT),
    Field("DeviceIDs", STRS), Field("Capabilities", slice_of(STRS)), Field("Options", STRMAP))
ULIMIT = struct("units.Ulimit", Field("Name", STR), *fields(INT64, "Hard", "Soft"))

RESOURCES = struct(
    "container.Resources",
    Field("CpuShares", INT64), Field("Memory", INT64), Field("NanoCpus", INT64),
    Field("CgroupParent", STR), Field("BlkioWeight", UINT16),
    Field("BlkioWeightDevice", slice_of(WEIGHT_DEVICE, "[]*blkiodev.WeightDevice")),
    *fields(slice_of(THROTTLE_DEVICE, "[]*blkiodev.ThrottleDevice"), "BlkioDeviceReadBps",
            "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps"),
    *fields(INT64, "CpuPeriod", "CpuQuota", "CpuRealtimePeriod", "CpuRealtimeRuntime"),
    *fields(STR, "CpusetCpus", "CpusetMems"),
    Field("Devices", slice_of(DEVICE_MAPPING)), Field("DeviceCgroupRules", STRS),
    Field("DeviceRequests", slice_of(DEVICE_REQUEST)),
    *fields(INT64, "KernelMemory", "KernelMemoryTCP", "MemoryReservation", "MemorySwap",
            "MemorySwappiness"),
    Field("OomKillDisable", BOOL), Field("PidsLimit", INT64),
    Field("Ulimits", slice_of(ULIMIT, "[]*units.Ulimit")),
    *fields(INT64, "CpuCount", "CpuPercent"),
    *fields(UINT64, "IOMaximumIOps", "IOMaximumBandwidth"))

LOG_CONFIG = struct("container.LogConfig", Field("Type", STR), Field("Config", STRMAP))
RESTART_POLICY = struct("container.RestartPolicy",
                        Field("Name", Str("container.RestartPolicyMode")),
                        Field("MaximumRetryCount", INT))
PORT_BINDING = struct("nat.PortBinding", *fields(STR, "HostIp", "HostPort"))

MOUNT = struct(
    "mount.Mount", Field("Type", Str("mount.Type")), *fields(STR, "Source", "Target"),
    Field("ReadOnly", BOOL), Field("Consistency", Str("mount.Consistency")),
    Field("BindOptions", struct(
        "mount.BindOptions", Field("Propagation", Str("mount.Propagation")),
        *fields(BOOL, "NonRecursive", "CreateMountpoint", "ReadOnlyNonRecursive",
                "ReadOnlyForceRecursive"))),
    Field("VolumeOptions", struct(
        "mount.VolumeOptions", Field("NoCopy", BOOL), Field("Labels", STRMAP),
        Field("Subpath", STR),
        Field("DriverConfig", struct("mount.Driver", Field("Name", STR),
                                     Field("Options", STRMAP))))),
    Field("ImageOptions", struct("mount.ImageOptions", Field("Subpath", STR))),
    Field("TmpfsOptions", struct(
        "mount.TmpfsOptions", Field("SizeBytes", INT64),
        Field("Mode", Int("fs.FileMode", 0, (1 << 32) - 1)),
        Field("Options", slice_of(STRS)))),
    Field("ClusterOptions", struct("mount.ClusterOptions")))

HOST_CONFIG = struct(
    "container.HostConfig",
    Field("Binds", STRS), Field("ContainerIDFile", STR), Field("LogConfig", LOG_CONFIG),
    Field("NetworkMode", Str("container.NetworkMode")),
    Field("PortBindings", map_of(slice_of(PORT_BINDING), "nat.PortMap")),
    Field("RestartPolicy", RESTART_POLICY), Field("AutoRemove", BOOL),
    Field("VolumeDriver", STR), Field("VolumesFrom", STRS),
    Field("ConsoleSize", CONSOLE_SIZE), Field("Annotations", STRMAP),
    *fields(StrSlice(), "CapAdd", "CapDrop"),
    Field("CgroupnsMode", Str("container.CgroupnsMode")),
    *fields(STRS, "Dns", "DnsOptions", "DnsSearch", "ExtraHosts", "GroupAdd"),
    Field("IpcMode", Str("container.IpcMode")), Field("Cgroup", Str("container.CgroupSpec")),
    Field("Links", STRS), Field("OomScoreAdj", INT), Field("PidMode", Str("container.PidMode")),
    *fields(BOOL, "Privileged", "PublishAllPorts", "ReadonlyRootfs"),
    Field("SecurityOpt", STRS), *fields(STRMAP, "StorageOpt", "Tmpfs"),
    Field("UTSMode", Str("container.UTSMode")), Field("UsernsMode", Str("container.UsernsMode")),
    Field("ShmSize", INT64), Field("Sysctls", STRMAP), Field("Runtime", STR),
    Field("Isolation", Str("container.Isolation")),
    Field("Mounts", slice_of(MOUNT)), *fields(STRS, "MaskedPaths", "ReadonlyPaths"),
    Field("Init", BOOL),
    embed=("Resources", RESOURCES))

ENDPOINT_SETTINGS = struct(
    "network.EndpointSettings",
    Field("IPAMConfig", struct("network.EndpointIPAMConfig",
                               *fields(STR, "IPv4Address", "IPv6Address"),
                               Field("LinkLocalIPs", STRS))),
    *fields(STRS, "Links", "Aliases"), Field("MacAddress", STR), Field("DriverOpts", STRMAP),
    Field("GwPriority", INT), *fields(STR, "NetworkID", "EndpointID", "Gateway", "IPAddress"),
    Field("IPPrefixLen", INT), *fields(STR, "IPv6Gateway", "GlobalIPv6Address"),
    Field("GlobalIPv6PrefixLen", INT), Field("DNSNames", STRS))

NETWORKING_CONFIG = struct(
    "network.NetworkingConfig",
    Field("EndpointsConfig", map_of(ENDPOINT_SETTINGS, "map[string]*network.EndpointSettings")))

IPAM_CONFIG = struct("network.IPAMConfig", *fields(STR, "Subnet", "IPRange", "Gateway"),
                     Field("AuxiliaryAddresses", STRMAP))
NETWORK_CREATE = struct(
    "network.CreateRequest", *fields(STR, "Name", "Driver", "Scope"),
    *fields(BOOL, "EnableIPv4", "EnableIPv6"),
    Field("IPAM", struct("network.IPAM", Field("Driver", STR), Field("Options", STRMAP),
                         Field("Config", slice_of(IPAM_CONFIG)))),
    *fields(BOOL, "Internal", "Attachable", "Ingress", "ConfigOnly"),
    Field("ConfigFrom", struct("network.ConfigReference", Field("Network", STR))),
    *fields(STRMAP, "Options", "Labels"), Field("CheckDuplicate", BOOL))
NETWORK_CONNECT = struct("network.ConnectOptions", Field("Container", STR),
                         Field("EndpointConfig", ENDPOINT_SETTINGS))
NETWORK_DISCONNECT = struct("network.DisconnectOptions", Field("Container", STR),
                            Field("Force", BOOL))

VOLUME_CREATE = struct(
    "volume.CreateOptions", *fields(STR, "Name", "Driver"), *fields(STRMAP, "DriverOpts", "Labels"),
    Field("ClusterVolumeSpec", struct("volume.ClusterVolumeSpec")))

CREATE_REQUEST = struct("container.CreateRequest", Field("HostConfig", HOST_CONFIG),
                        Field("NetworkingConfig", NETWORKING_CONFIG), embed=("Config", CONFIG))

UPDATE_CONFIG = struct("container.UpdateConfig", Field("RestartPolicy", RESTART_POLICY),
                       embed=("Resources", RESOURCES))

EXEC_OPTIONS = struct(
    "container.ExecOptions", Field("User", STR), *fields(BOOL, "Privileged", "Tty"),
    Field("ConsoleSize", CONSOLE_SIZE),
    *fields(BOOL, "AttachStdin", "AttachStderr", "AttachStdout"), Field("DetachKeys", STR),
    Field("Env", STRS), Field("WorkingDir", STR), Field("Cmd", STRS), Field("Detach", BOOL))

EXEC_START_OPTIONS = struct("container.ExecStartOptions", *fields(BOOL, "Detach", "Tty"),
                            Field("ConsoleSize", CONSOLE_SIZE))

_PORT = re.compile(r"^\d{1,5}(-\d{1,5})?(/[a-zA-Z]+)?$")
CONFIG_KEYS = frozenset(f.name for f in CONFIG.fields)


def _decode_body(body: Any, t: Struct) -> dict[str, Any]:
    if body is None:
        return {}
    return decode(body, t)


def decode_create_request(body: Any) -> dict[str, Any]:
    """A create body as dockerd reads it: the Config fields at the top,
    `HostConfig` and `NetworkingConfig` (each None when not sent)."""
    req = decode(body, CREATE_REQUEST)
    for port in req.get("ExposedPorts") or {}:
        if not _PORT.match(port):
            raise InvalidParameter(f'invalid port specification: "{port}"')
    return req


def decode_update_config(body: Any) -> dict[str, Any]:
    return _decode_body(body, UPDATE_CONFIG)


def decode_exec_options(body: Any) -> dict[str, Any]:
    return _decode_body(body, EXEC_OPTIONS)


def decode_exec_start(body: Any) -> dict[str, Any]:
    return _decode_body(body, EXEC_START_OPTIONS)


def decode_commit_config(body: Any) -> dict[str, Any] | None:
    """A commit's config: dockerd decodes the body as a create request and
    keeps its Config part (None when the body has no Config field)."""
    if body is None:
        return None
    req = decode(body, CREATE_REQUEST)
    config = {k: v for k, v in req.items() if k in CONFIG_KEYS}
    return config if config else None


def decode_network_create(body: Any) -> dict[str, Any]:
    return _decode_body(body, NETWORK_CREATE)


def decode_network_connect(body: Any) -> dict[str, Any]:
    return _decode_body(body, NETWORK_CONNECT)


def decode_network_disconnect(body: Any) -> dict[str, Any]:
    return _decode_body(body, NETWORK_DISCONNECT)


def decode_volume_create(body: Any) -> dict[str, Any]:
    return _decode_body(body, VOLUME_CREATE)
