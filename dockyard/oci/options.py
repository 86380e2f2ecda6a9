"""What dockyard does with every field of a create request, as data.

Each field of Docker's container.Config, HostConfig (Resources included) and
network.EndpointSettings (schema.py) has one entry in `CREATE_FIELDS`:

- ENFORCED: applied to the container or checked, as dockerd does;
- METADATA: stored and shown by inspect, with no effect on the process,
  exactly as in dockerd (Labels, OnBuild, ...);
- CLIENT: read by the client, not the daemon (ContainerIDFile: the CLI
  writes the file; Attach*: the CLI decides what to attach);
- OUTPUT: filled in by the daemon and shown by inspect; a value sent on
  create is ignored, as dockerd ignores it (EndpointSettings.IPAddress...);
- WARNED: discarded with dockerd's own warning when the host cannot apply
  it (the warning is in resources.py);
- REFUSED: not done (yet): a request that sets it to anything but its zero
  value is refused with `text`.  A None text means Docker's own validation
  already refuses every non-zero value (resources.py, validate.py).

`refuse_unsupported` applies the REFUSED entries and the network rules, so
no option is ever accepted and then ignored.  `UPDATE_FIELDS` does the same
for an update's Resources: what an update cannot change is refused there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dockyard.errors import InvalidParameter
from dockyard.oci.gojson import Struct, is_zero
from dockyard.oci.schema import CONFIG, ENDPOINT_SETTINGS, HOST_CONFIG

ENFORCED, METADATA, CLIENT, OUTPUT, WARNED, REFUSED = (
    "enforced", "metadata", "client", "output", "warned", "refused")


@dataclass(frozen=True)
class Option:
    status: str
    text: str | None = None       # REFUSED: the error for a non-zero value


def _refused(text: str | None) -> Option:
    return Option(REFUSED, text)


_ENDPOINT_REFUSED: dict[str, str | None] = {
    "GwPriority": "gateway priorities (gw-priority) are not supported",
}

CREATE_FIELDS: dict[str, Option] = {
    **{f"Config.{k}": Option(ENFORCED) for k in (
        "Hostname", "Domainname", "User", "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd",
        "Healthcheck", "Image", "WorkingDir", "Entrypoint", "NetworkDisabled", "StopSignal",
        "StopTimeout")},
    **{f"Config.{k}": Option(CLIENT) for k in ("AttachStdin", "AttachStdout", "AttachStderr")},
    # ArgsEscaped is Windows-only; Shell and OnBuild are for builds
    **{f"Config.{k}": Option(METADATA) for k in ("Labels", "OnBuild", "Shell", "ArgsEscaped")},
    # published by -P (PublishAllPorts); shown by inspect and ps
    "Config.ExposedPorts": Option(ENFORCED),
    # volumes, binds and mounts (oci/volumespec.py, engine/volumes/)
    "Config.Volumes": Option(ENFORCED),
    "Config.MacAddress": Option(ENFORCED),

    **{f"HostConfig.{k}": Option(ENFORCED) for k in (
        "LogConfig", "NetworkMode", "RestartPolicy", "AutoRemove", "ConsoleSize",
        "Annotations", "CapAdd", "CapDrop", "CgroupnsMode", "Dns", "DnsOptions", "DnsSearch",
        "ExtraHosts", "GroupAdd", "IpcMode", "OomScoreAdj", "PidMode", "Privileged",
        "ReadonlyRootfs", "SecurityOpt", "Tmpfs", "UTSMode", "UsernsMode", "ShmSize",
        "Sysctls", "Runtime", "Isolation", "MaskedPaths", "ReadonlyPaths", "Init",
        # Resources
        "CpuShares", "Memory", "NanoCpus", "CgroupParent", "BlkioWeight", "BlkioWeightDevice",
        "BlkioDeviceReadBps", "BlkioDeviceWriteBps", "BlkioDeviceReadIOps",
        "BlkioDeviceWriteIOps", "CpuPeriod", "CpuQuota", "CpuRealtimePeriod",
        "CpuRealtimeRuntime", "CpusetCpus", "CpusetMems", "Devices", "DeviceCgroupRules",
        "MemoryReservation", "MemorySwap", "MemorySwappiness", "OomKillDisable", "PidsLimit",
        "Ulimits")},
    "HostConfig.ContainerIDFile": Option(CLIENT),
    **{f"HostConfig.{k}": Option(WARNED) for k in ("KernelMemory", "CpuPercent")},
    **{f"HostConfig.{k}": Option(ENFORCED) for k in ("Binds", "Mounts", "VolumeDriver",
                                                      "VolumesFrom")},
    **{f"HostConfig.{k}": Option(ENFORCED) for k in ("PortBindings", "PublishAllPorts",
                                                      "Links")},
    "HostConfig.StorageOpt": _refused(
        "--storage-opt is supported only for overlay over xfs with 'pquota' mount option"),
    "HostConfig.Cgroup": _refused("HostConfig.Cgroup is not supported: use CgroupnsMode "
                                  "(--cgroupns) or CgroupParent (--cgroup-parent)"),
    "HostConfig.KernelMemoryTCP": _refused(
        "KernelMemoryTCP is not supported: kernel TCP buffer limits are deprecated by the "
        "kernel and not applied by this engine"),
    "HostConfig.CpuCount": _refused("CpuCount is a Windows option: use --cpus (NanoCpus) "
                                    "or --cpuset-cpus on Linux"),
    # Docker's own validation refuses any non-zero value (resources.py, validate.py)
    **{f"HostConfig.{k}": _refused(None) for k in (
        "IOMaximumIOps", "IOMaximumBandwidth", "DeviceRequests")},

    **{f"EndpointSettings.{k}": _refused(t) for k, t in _ENDPOINT_REFUSED.items()},
    **{f"EndpointSettings.{k}": Option(ENFORCED) for k in (
        "IPAMConfig", "Links", "Aliases", "MacAddress", "DriverOpts")},
    **{f"EndpointSettings.{k}": Option(OUTPUT) for k in (
        "NetworkID", "EndpointID", "Gateway", "IPAddress", "IPPrefixLen", "IPv6Gateway",
        "GlobalIPv6Address", "GlobalIPv6PrefixLen", "DNSNames")},
}

# What `docker update` applies (moby container.UpdateContainer, plus the
# block I/O throttles); the rest of Resources only takes effect at create.
UPDATE_FIELDS = frozenset((
    "CpuShares", "Memory", "NanoCpus", "BlkioWeight", "BlkioWeightDevice",
    "BlkioDeviceReadBps", "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps",
    "CpuPeriod", "CpuQuota", "CpuRealtimePeriod", "CpuRealtimeRuntime", "CpusetCpus",
    "CpusetMems", "KernelMemory", "MemoryReservation", "MemorySwap", "PidsLimit", "CpuPercent",
    "IOMaximumIOps", "IOMaximumBandwidth"))

STRUCTS: dict[str, Struct] = {"Config": CONFIG, "HostConfig": HOST_CONFIG,
                               "EndpointSettings": ENDPOINT_SETTINGS}


def _refuse_fields(prefix: str, values: Mapping) -> None:
    types = {f.name: f.type for f in STRUCTS[prefix].fields}
    for key, value in values.items():
        opt = CREATE_FIELDS.get(f"{prefix}.{key}")
        if opt is None or opt.status != REFUSED or is_zero(value, types.get(key)):
            continue
        if opt.text is not None:
            raise InvalidParameter(opt.text)


def check_network(hc: Mapping, networking: Mapping | None) -> None:
    """What an endpoint may ask for; which networks exist is the network
    service's to say (an unknown one is its 404)."""
    for ep in ((networking or {}).get("EndpointsConfig") or {}).values():
        _refuse_fields("EndpointSettings", ep or {})


def refuse_unsupported(config: Mapping, hc: Mapping, networking: Mapping | None) -> None:
    """Refuse a (validated) create request that asks for what is not done.

    `config` is the request's own Config (not merged with the image's)."""
    if hc.get("NetworkMode") == "host":
        # dockerd discards published ports with a warning in host mode
        hc = {k: v for k, v in hc.items() if k not in ("PortBindings", "PublishAllPorts")}
    _refuse_fields("HostConfig", hc)
    _refuse_fields("Config", config)
    check_network(hc, networking)


def refuse_not_updatable(resources: Mapping) -> None:
    """An update changes only UPDATE_FIELDS; a non-zero value of any other
    resource would be ignored, so it is refused."""
    for key, value in resources.items():
        if key in UPDATE_FIELDS or key == "RestartPolicy" or is_zero(value):
            continue
        if key == "MemorySwappiness" and value == -1:
            continue
        raise InvalidParameter(f"{key} cannot be changed by an update: it only takes effect "
                               "when the container is created")
