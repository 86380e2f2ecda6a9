"""What dockerd fills in at create time, so `docker inspect` looks the same.

`normalize_host_config` applies, to a copy of the request's HostConfig, the
defaults and host-driven discards dockerd stores (runconfig decode,
containerCreate, verifyPlatformContainerResources, adaptContainerSettings,
createContainerOSSpecificSettings).  Lists the client sent stay as sent
(the CLI sends `[]` for Dns, BlkioWeightDevice, Devices...; docker-py sends
null), because dockerd echoes them; only the fields dockerd itself fills
change.

`merge_image_config` is dockerd's merge of the image's config into the
request's Config (daemon/commit.go merge), and `command_of` the process
command line it yields.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from dockyard.errors import InvalidParameter
from dockyard.oci.host import EngineOptions, HostFacts
from dockyard.oci.resources import default_memory_swap, verify_resources
from dockyard.oci.security import selinux_label_opts_for

# moby's order in daemon/pkg/oci/defaults.go (what inspect shows)
DEFAULT_MASKED_PATHS: tuple[str, ...] = (
    "/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
    "/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware",
)
DEFAULT_READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
)


def default_masked_paths(host: HostFacts) -> list[str]:
    """Docker's masked paths plus each CPU's thermal_throttle dir the host has."""
    return [*DEFAULT_MASKED_PATHS, *host.thermal_throttle_paths]


def default_cgroupns_mode(privileged: bool, host: HostFacts, opts: EngineOptions) -> str:
    """private on cgroup v2; host on v1 (and always host for privileged on v1)."""
    if privileged and host.cgroup_version != 2:
        return "host"
    if opts.default_cgroupns_mode:
        return opts.default_cgroupns_mode
    return "private" if host.cgroup_version == 2 else "host"


def normalize_host_config(host_config: Mapping | None, host: HostFacts,
                          opts: EngineOptions | None = None) -> dict:
    """The HostConfig dockerd would store for this (validated) request."""
    opts = opts or EngineOptions()
    hc = copy.deepcopy(dict(host_config or {}))
    # decode time
    if hc.get("PortBindings") is None:
        hc["PortBindings"] = {}
    if hc.get("NetworkMode") in (None, "", "default"):
        # "default" is stored as is by dockerd but means the default bridge;
        # storing "bridge" is what inspect shows for the CLI's requests.
        hc["NetworkMode"] = "bridge"
    # containerCreate
    rp = dict(hc.get("RestartPolicy") or {})
    rp["Name"] = rp.get("Name") or "no"
    rp.setdefault("MaximumRetryCount", 0)
    hc["RestartPolicy"] = rp
    # postContainersCreate: 0 and any negative mean "unlimited", stored as null
    if hc.get("PidsLimit") is not None and hc["PidsLimit"] <= 0:
        hc["PidsLimit"] = None
    # verifyPlatformContainerResources drops what the host cannot enforce
    _, hc = verify_resources(hc, host)
    if not hc.get("Runtime"):
        hc["Runtime"] = opts.default_runtime
    # adaptContainerSettings
    default_memory_swap(hc)
    if not hc.get("ShmSize"):
        hc["ShmSize"] = opts.default_shm_size
    if not hc.get("IpcMode"):
        hc["IpcMode"] = opts.default_ipc_mode
    if not hc.get("CgroupnsMode"):
        hc["CgroupnsMode"] = default_cgroupns_mode(bool(hc.get("Privileged")), host, opts)
    labels = selinux_label_opts_for(hc)
    if labels:
        hc["SecurityOpt"] = [*(hc.get("SecurityOpt") or []), *labels]
    if hc.get("OomKillDisable") is None:
        hc["OomKillDisable"] = False
    # log config from the daemon defaults
    lc = dict(hc.get("LogConfig") or {})
    if not lc.get("Type"):
        lc["Type"] = opts.log_driver
        lc["Config"] = {**opts.log_opts, **(lc.get("Config") or {})}
    if lc.get("Config") is None:
        lc["Config"] = {}
    hc["LogConfig"] = lc
    # createContainerOSSpecificSettings
    if not hc.get("Privileged"):
        if hc.get("MaskedPaths") is None:
            hc["MaskedPaths"] = default_masked_paths(host)
        if hc.get("ReadonlyPaths") is None:
            hc["ReadonlyPaths"] = list(DEFAULT_READONLY_PATHS)
    if hc.get("ConsoleSize") is None:
        hc["ConsoleSize"] = [0, 0]
    return hc


def merge_image_config(config: Mapping, image_config: Mapping | None) -> dict:
    """Fill a request's Config from the image config (dockerd's merge rules).

    Env merges by key (request wins, image-only keys appended); Cmd comes
    from the image only when neither Entrypoint nor Cmd was given; a
    Healthcheck merges field by field; Labels and Volumes are unions.
    """
    c = copy.deepcopy(dict(config))
    img = image_config or {}
    if not c.get("User"):
        c["User"] = img.get("User") or ""
    if not c.get("ExposedPorts"):
        c["ExposedPorts"] = copy.deepcopy(img.get("ExposedPorts"))
    elif img.get("ExposedPorts"):
        for port in img["ExposedPorts"]:
            c["ExposedPorts"].setdefault(port, {})
    if not c.get("Env"):
        c["Env"] = list(img.get("Env") or [])
    else:
        keys = {e.partition("=")[0] for e in c["Env"]}
        c["Env"] = [*c["Env"], *(e for e in img.get("Env") or []
                                 if e.partition("=")[0] not in keys)]
    labels = dict(c.get("Labels") or {})
    for k, v in (img.get("Labels") or {}).items():
        labels.setdefault(k, v)
    c["Labels"] = labels
    if not c.get("Entrypoint"):
        if not c.get("Cmd"):
            c["Cmd"] = copy.deepcopy(img.get("Cmd"))
        if c.get("Entrypoint") is None:
            c["Entrypoint"] = copy.deepcopy(img.get("Entrypoint"))
    ihc = img.get("Healthcheck")
    if ihc:
        if not c.get("Healthcheck"):
            c["Healthcheck"] = copy.deepcopy(ihc)
        else:
            h = c["Healthcheck"]
            if not h.get("Test"):
                h["Test"] = ihc.get("Test")
            for key in ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
                if not h.get(key):
                    h[key] = ihc.get(key, 0)
    if not c.get("WorkingDir"):
        c["WorkingDir"] = img.get("WorkingDir") or ""
    if not c.get("Volumes"):
        c["Volumes"] = copy.deepcopy(img.get("Volumes"))
    else:
        c["Volumes"].update(img.get("Volumes") or {})
    if not c.get("StopSignal"):
        c["StopSignal"] = img.get("StopSignal") or ""
    # An Entrypoint of [""] means "reset the image's entrypoint"
    if c.get("Entrypoint") == [""]:
        c["Entrypoint"] = None
    return c


def command_of(config: Mapping) -> tuple[str, list[str]]:
    """(Path, Args) as inspect shows them; raise `no command specified`."""
    entrypoint = list(config.get("Entrypoint") or [])
    cmd = list(config.get("Cmd") or [])
    if not entrypoint and not cmd:
        raise InvalidParameter("no command specified")
    if not entrypoint:
        return cmd[0], cmd[1:]
    return entrypoint[0], entrypoint[1:] + cmd
