"""Docker's create-time validation with its exact error texts.

`validate_create(config, host_config, networking_config, host, opts)` runs the
checks in dockerd's order (runconfig decode checks, then
daemon.verifyContainerSettings: config, host config, platform resources and
settings, then networking config) and returns the warnings dockerd would put
in the create response.  It raises InvalidParameter (400) on the first
error.  Inputs are the Docker-shaped JSON dicts as received (field names as
in the API); nothing is modified.

Beyond dockerd (which leaves these to the runtime or the CLI) it also checks
Sysctls against the namespaces the container owns, Ulimits against the
host's ceilings, Devices / DeviceCgroupRules syntax, DeviceRequests against
the known CDI devices, and the image platform.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping

from dockyard.errors import InvalidParameter
from dockyard.oci import modes
from dockyard.oci.caps import validate_cap_lists
from dockyard.oci.cgroupparent import validate_cgroup_parent
from dockyard.oci.etcfiles import check_word, parse_extra_host, parse_ip
from dockyard.oci.gojson import go_quote
from dockyard.oci.host import EngineOptions, HostFacts
from dockyard.oci.resources import verify_resources
from dockyard.oci.security import parse_security_opt
from dockyard.oci.signals import parse_signal

MAX_HOSTNAME_LEN = 64
MIN_HEALTH_DURATION_NS = 1_000_000  # 1ms

ULIMIT_NAMES = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
                "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")

# Sysctls that belong to the IPC namespace (runc's list, plus fs.mqueue.*).
IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
               "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")
UTS_SYSCTLS = ("kernel.domainname", "kernel.hostname")

# opts.ValidateDNSSearch (docker/opts), with Go's `\s` and `$` (end of text)
_ALPHA = re.compile(r"[a-zA-Z]")
_LABEL = r"(:?[a-zA-Z0-9]|(:?[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9]))"
_DOMAIN = re.compile(rf"^(:?{_LABEL}(:?\.{_LABEL})*)\.?[\t\n\f\r ]*\Z")
# Strings the kernel takes as C strings (exec args and environment, chdir,
# sethostname): a NUL would cut them short, so runc would fail on them.
PROCESS_STRINGS = ("Cmd", "Entrypoint", "Env", "WorkingDir", "User", "Hostname",
                   "Domainname")

DEVICE_CGROUP_RULE = re.compile(r"^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$")
_PORT_KEY = re.compile(r"^(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?$")
_HOST_PORT = re.compile(r"^(\d+)(?:-(\d+))?$")


def validate_create(config: Mapping, host_config: Mapping | None,
                    networking_config: Mapping | None, host: HostFacts,
                    opts: EngineOptions | None = None, *,
                    image_platform: Mapping | None = None) -> list[str]:
    """Validate a create request; return warnings, raise InvalidParameter."""
    opts = opts or EngineOptions()
    hc = dict(host_config or {})
    if not hc.get("NetworkMode"):
        hc["NetworkMode"] = "default"
    if not (hc.get("RestartPolicy") or {}).get("Name"):
        hc["RestartPolicy"] = {**(hc.get("RestartPolicy") or {}), "Name": "no"}
    warnings: list[str] = []

    # runconfig decode-time checks
    validate_net_mode(config, hc)
    iso = (hc.get("Isolation") or "").lower()
    if iso not in ("", "default"):
        raise InvalidParameter(
            f"invalid isolation ({hc.get('Isolation')}): linux only supports 'default'")

    # daemon.verifyContainerSettings
    validate_config(config)
    validate_host_config(hc, host, config)
    warnings += verify_platform_settings(config, hc, host, opts)

    # what dockerd leaves to the runtime, checked here to give a clear 400
    parse_security_opt(hc.get("SecurityOpt"), host, opts.no_new_privileges)
    validate_sysctls(hc.get("Sysctls") or {}, hc, config)
    validate_ulimits(hc.get("Ulimits") or [], host)
    validate_devices(hc)
    validate_device_requests(hc.get("DeviceRequests") or [], host)
    if image_platform:
        warnings += platform_warnings(image_platform, host)

    validate_networking_config(networking_config)
    if hc["NetworkMode"] in ("default", "bridge") and hc.get("Links"):
        warnings.append("Links on the default bridge network are deprecated and will be "
                        "removed in a future release. Use a custom network instead.")
    return warnings


def validate_net_mode(config: Mapping, hc: Mapping) -> None:
    """runconfig validateNetMode / validateNetContainerMode."""
    mode = hc.get("NetworkMode") or ""
    hostname = config.get("Hostname") or ""
    if mode == "container" or modes.is_container(mode):
        if not modes.container_ref(mode):
            raise InvalidParameter(
                "invalid network mode: invalid container format container:<name|id>")
        if hostname:
            raise InvalidParameter("conflicting options: hostname and the network mode")
        if hc.get("Links"):
            raise InvalidParameter("conflicting options: container type network can't be used "
                                   "with links. This would result in undefined behavior")
        if hc.get("Dns"):
            raise InvalidParameter("conflicting options: dns and the network mode")
        if hc.get("ExtraHosts"):
            raise InvalidParameter(
                "conflicting options: custom host-to-IP mapping and the network mode")
        if hc.get("PortBindings") or hc.get("PublishAllPorts"):
            raise InvalidParameter(
                "conflicting options: port publishing and the container type network mode")
        if config.get("ExposedPorts"):
            raise InvalidParameter(
                "conflicting options: port exposing and the container type network mode")
    if hc.get("UTSMode") == "host" and hostname:
        raise InvalidParameter("conflicting options: hostname and the UTS mode")
    if mode == "host" and hc.get("Links"):
        raise InvalidParameter("conflicting options: host type networking can't be used with "
                               "links. This would result in undefined behavior")


def check_process_strings(config: Mapping) -> None:
    """No NUL in what becomes the process's arguments, environment, working
    directory, user or host name (a container's Config or an exec's)."""
    for key in PROCESS_STRINGS:
        value = config.get(key)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and "\0" in item:
                raise InvalidParameter(f"invalid {key}: {go_quote(item)} contains a NUL byte")


def validate_dns_search(domain: str) -> None:
    value = domain.strip(" ")
    if value == ".":
        return
    m = _DOMAIN.match(value) if _ALPHA.search(value) else None
    if m is None or len(m.group(1)) >= 255:
        shown = value if value.isprintable() else go_quote(value)
        raise InvalidParameter(f"{shown} is not a valid domain")
    check_word("dns search domain", domain)


def validate_etc_options(config: Mapping, hc: Mapping) -> None:
    """What goes into the container's /etc/hostname, hosts and resolv.conf
    is one word each: no line of the client's own can be slipped in."""
    for key, what in (("Hostname", "hostname"), ("Domainname", "domainname")):
        if config.get(key):
            check_word(what, config[key])
    for server in hc.get("Dns") or []:
        parse_ip("dns", server)
    for domain in hc.get("DnsSearch") or []:
        validate_dns_search(domain)
    for option in hc.get("DnsOptions") or []:
        if option:
            check_word("dns option", option)


def validate_config(config: Mapping) -> None:
    """daemon validateContainerConfig: WorkingDir, StopSignal, Env, Healthcheck."""
    check_process_strings(config)
    wd = config.get("WorkingDir") or ""
    if wd and not posixpath.isabs(wd):
        raise InvalidParameter(
            f"the working directory '{wd}' is invalid, it needs to be an absolute path")
    if config.get("StopSignal"):
        parse_signal(config["StopSignal"])
    for env in config.get("Env") or []:
        if env.partition("=")[0] == "":
            raise InvalidParameter("invalid environment variable: " + env)
    validate_healthcheck(config.get("Healthcheck"))


def validate_healthcheck(hc: Mapping | None) -> None:
    if not hc:
        return
    # Docker's order: Interval, Timeout, Retries, StartPeriod, StartInterval
    for key in ("Interval", "Timeout", "Retries", "StartPeriod", "StartInterval"):
        v = hc.get(key) or 0
        if key == "Retries":
            if v < 0:
                raise InvalidParameter("Retries in Healthcheck cannot be negative")
        elif v != 0 and v < MIN_HEALTH_DURATION_NS:
            raise InvalidParameter(f"{key} in Healthcheck cannot be less than 1ms")


def validate_restart_policy(policy: Mapping | None) -> None:
    name = (policy or {}).get("Name") or ""
    count = (policy or {}).get("MaximumRetryCount") or 0
    if name in ("always", "unless-stopped", "no"):
        if count != 0:
            msg = "invalid restart policy: maximum retry count can only be used with 'on-failure'"
            if count < 0:
                msg += " and cannot be negative"
            raise InvalidParameter(msg)
    elif name == "on-failure":
        if count < 0:
            raise InvalidParameter("invalid restart policy: maximum retry count cannot be negative")
    elif name:
        raise InvalidParameter(
            f"invalid restart policy: unknown policy '{name}'; use one of 'no', 'always', "
            "'on-failure', or 'unless-stopped'")


def validate_port_bindings(bindings: Mapping | None) -> None:
    for port, binds in (bindings or {}).items():
        m = _PORT_KEY.match(port)
        if not m or int(m.group(1)) == 0 or int(m.group(1)) > 65535 or (
                m.group(2) and not int(m.group(1)) <= int(m.group(2)) <= 65535):
            raise InvalidParameter(f'invalid port specification: "{port}"')
        for b in binds or []:
            hp = (b or {}).get("HostPort") or ""
            if not hp:
                continue
            hm = _HOST_PORT.match(hp)
            if not hm or int(hm.group(1)) > 65535 or (
                    hm.group(2) and not int(hm.group(1)) <= int(hm.group(2)) <= 65535):
                raise InvalidParameter(f'invalid port specification: "{hp}"')


def validate_host_config(hc: Mapping, host: HostFacts, config: Mapping | None = None) -> None:
    """daemon validateHostConfig (mount specs are the volumes package's job)."""
    policy = hc.get("RestartPolicy") or {}
    if hc.get("AutoRemove") and (policy.get("Name") or "no") != "no":
        raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
    for entry in hc.get("ExtraHosts") or []:
        parse_extra_host(entry)
    validate_etc_options(config or {}, hc)
    validate_port_bindings(hc.get("PortBindings"))
    validate_restart_policy(policy)
    validate_cap_lists(hc.get("CapAdd"), hc.get("CapDrop"), host.cap_bounding)
    for key in (hc.get("Annotations") or {}):
        if key == "":
            raise InvalidParameter(
                "invalid Annotations: the empty string is not permitted as an annotation key")


def verify_platform_settings(config: Mapping, hc: Mapping, host: HostFacts,
                             opts: EngineOptions, update: bool = False) -> list[str]:
    """daemon verifyPlatformContainerSettings."""
    hostname = config.get("Hostname") or ""
    if len(hostname.encode()) > MAX_HOSTNAME_LEN:
        raise InvalidParameter(
            f'hostname "{hostname}" is too long (maximum {MAX_HOSTNAME_LEN} bytes)')
    warnings, _ = verify_resources(hc, host, update)
    for key, valid, label in (("IpcMode", modes.ipc_mode_valid, "IPC"),
                              ("PidMode", modes.pid_mode_valid, "PID")):
        if not valid(hc.get(key) or ""):
            raise InvalidParameter(f"invalid {label} mode: {hc.get(key)}")
    if (hc.get("ShmSize") or 0) < 0:
        raise InvalidParameter("SHM size can not be less than 0")
    if not modes.uts_mode_valid(hc.get("UTSMode") or ""):
        raise InvalidParameter(f"invalid UTS mode: {hc.get('UTSMode')}")
    oom = hc.get("OomScoreAdj") or 0
    if not -1000 <= oom <= 1000:
        raise InvalidParameter(f"Invalid value {oom}, range for oom score adj is [-1000, 1000]")
    net = hc.get("NetworkMode") or ""
    # bridge networking brings back the IPv4 forwarding warning, with the ip-forward option
    if net == "host" and hc.get("PortBindings"):
        warnings.append("Published ports are discarded when using host network mode")
    userns = hc.get("UsernsMode") or ""
    if not modes.userns_mode_valid(userns):
        raise InvalidParameter(f"invalid USER mode: {userns}")
    if opts.userns_remap and userns != "host":
        if hc.get("Privileged"):
            raise InvalidParameter(
                "privileged mode is incompatible with user namespaces.  You must run the "
                "container in the host namespace when running privileged mode")
        if net == "host":
            raise InvalidParameter(
                "cannot share the host's network namespace when user namespaces are enabled")
        if hc.get("PidMode") == "host":
            raise InvalidParameter(
                "cannot share the host PID namespace when user namespaces are enabled")
    parent = hc.get("CgroupParent") or ""
    validate_cgroup_parent(parent)
    if parent and opts.cgroup_driver == "systemd" and (
            len(parent) <= 6 or not parent.endswith(".slice")):
        raise InvalidParameter(
            'cgroup-parent for systemd cgroup should be a valid slice named as "xxx.slice"')
    runtime = hc.get("Runtime") or opts.default_runtime
    if runtime not in opts.runtimes:
        raise InvalidParameter(f"unknown or invalid runtime name: {runtime}")
    for dest in (hc.get("Tmpfs") or {}):
        if posixpath.normpath(dest.replace("\\", "/")) == "/":
            raise InvalidParameter("invalid specification: destination can't be '/'")
        if not posixpath.isabs(dest.replace("\\", "/")):
            raise InvalidParameter(
                f"invalid mount path: '{dest}' mount path must be absolute")
    cgns = hc.get("CgroupnsMode") or ""
    if not modes.cgroupns_mode_valid(cgns):
        raise InvalidParameter(f"invalid cgroup namespace mode: {cgns}")
    if cgns == "private" and not host.cgroup_namespaces:
        warnings.append("Your kernel does not support cgroup namespaces.  Cgroup namespace "
                        "setting discarded.")
    return warnings


def validate_sysctls(sysctls: Mapping[str, str], hc: Mapping, config: Mapping) -> None:
    """Only namespaced sysctls, and only for namespaces the container owns."""
    net = hc.get("NetworkMode") or ""
    for key in sysctls:
        if key in IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if hc.get("IpcMode") == "host":
                raise InvalidParameter(
                    f"sysctl '{key}' is not allowed when sharing the host's IPC namespace")
        elif key.startswith("net."):
            if net == "host":
                raise InvalidParameter(
                    f"sysctl '{key}' is not allowed when sharing the host's network namespace")
        elif key in UTS_SYSCTLS:
            if hc.get("UTSMode") == "host":
                raise InvalidParameter(
                    f"sysctl '{key}' is not allowed when sharing the host's UTS namespace")
            if key == "kernel.hostname" and config.get("Hostname"):
                raise InvalidParameter(
                    f"sysctl '{key}' is not allowed as it conflicts with the Hostname option")
        else:
            raise InvalidParameter(
                f"sysctl '{key}' is not allowed: it is not in a separate kernel namespace")


def validate_ulimits(ulimits: list, host: HostFacts) -> None:
    """go-units names and soft <= hard; hard within what the host can grant."""
    for ul in ulimits:
        name = (ul or {}).get("Name", "")
        soft, hard = ul.get("Soft", 0), ul.get("Hard", 0)
        if name not in ULIMIT_NAMES:
            raise InvalidParameter(f"invalid ulimit type: {name}")
        # -1 is RLIM_INFINITY (the uint64 max once converted)
        s = float("inf") if soft < 0 else soft
        h = float("inf") if hard < 0 else hard
        if s > h:
            raise InvalidParameter(
                f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
        ceiling = host.rlimit_ceilings.get(name)
        if ceiling is not None and ceiling >= 0 and h > ceiling:
            raise InvalidParameter(
                f"ulimit {name}: hard limit {hard} is above the host's hard limit of "
                f"{ceiling}; the engine lacks CAP_SYS_RESOURCE to raise it")


def validate_devices(hc: Mapping) -> None:
    for dev in hc.get("Devices") or []:
        path = (dev or {}).get("PathOnHost") or ""
        if not path:
            raise InvalidParameter("invalid device mapping: PathOnHost must not be empty")
        perms = dev.get("CgroupPermissions") or ""
        if perms and (not set(perms) <= set("rwm") or len(perms) > 3):
            raise InvalidParameter(f"invalid device mode: {perms}")
        inside = dev.get("PathInContainer") or ""
        if inside and not inside.startswith("/"):
            raise InvalidParameter(f"{inside} is not an absolute path")
    for rule in hc.get("DeviceCgroupRules") or []:
        parse_device_cgroup_rule(rule)


def parse_device_cgroup_rule(rule: str) -> dict:
    """`c 1:3 rwm` -> an OCI linux.resources.devices entry (allow)."""
    m = DEVICE_CGROUP_RULE.match(rule)
    if not m:
        raise InvalidParameter(f"invalid device cgroup rule format: '{rule}'")
    out: dict = {"allow": True, "type": m.group(1)}
    # `*` is a missing major/minor in the OCI spec (runc also reads -1 so,
    # crun writes it to devices.allow as is and the kernel refuses it)
    for key, text in (("major", m.group(2)), ("minor", m.group(3))):
        if text != "*":
            if int(text) >= 1 << 63:
                raise InvalidParameter(
                    f"invalid {key} value in device cgroup rule format: '{rule}'")
            out[key] = int(text)
    out["access"] = m.group(4)
    return out


def _go_caps(caps: list) -> str:
    return "[" + " ".join("[" + " ".join(c) + "]" for c in caps) + "]"


def validate_device_requests(requests: list, host: HostFacts) -> None:
    """Only the CDI driver exists here; GPU drivers by capability do not."""
    for req in requests:
        driver = req.get("Driver") or ""
        if driver == "cdi":
            if req.get("Count"):
                raise InvalidParameter("unexpected count in CDI device request")
            if req.get("Options"):
                raise InvalidParameter("unexpected options in CDI device request")
            unknown = [d for d in req.get("DeviceIDs") or [] if d not in host.cdi_devices]
            if unknown:
                raise InvalidParameter(
                    "CDI device injection failed: unresolvable CDI devices " + ", ".join(unknown))
            continue
        raise InvalidParameter(
            f'could not select device driver "{driver}" with capabilities: '
            f"{_go_caps(req.get('Capabilities') or [])}")


def platform_warnings(image_platform: Mapping, host: HostFacts) -> list[str]:
    """dockerd's warning when the image was built for another platform."""
    os_ = image_platform.get("os") or image_platform.get("OS") or "linux"
    arch = image_platform.get("architecture") or image_platform.get("Architecture") or ""
    variant = image_platform.get("variant") or image_platform.get("Variant") or ""
    if os_ == "linux" and (not arch or arch == host.arch or
                           (host.arch == "amd64" and arch == "386")):
        return []
    img = "/".join(p for p in (os_, arch, variant) if p)
    return [(f"The requested image's platform ({img}) does not match the detected host "
            f"platform (linux/{host.arch}) and no specific platform was requested")]


def validate_networking_config(nc: Mapping | None) -> None:
    errs: list[str] = []
    for name, ep in ((nc or {}).get("EndpointsConfig") or {}).items():
        if ep is None:
            errs.append(f"invalid config for network {name}: EndpointsConfig is nil")
            continue
        sub: list[str] = []
        if not modes.network_is_user_defined(name):
            ipam = ep.get("IPAMConfig") or {}
            if ipam.get("IPv4Address") or ipam.get("IPv6Address"):
                sub.append("user-specified IP address is supported on user-defined networks only")
            if ep.get("Aliases"):
                sub.append("network-scoped aliases are only supported for user-defined networks")
        if sub:
            inner = sub[0] if len(sub) == 1 else "* " + "\n* ".join(sub)
            errs.append(f"invalid config for network {name}: invalid endpoint settings:\n{inner}")
    if errs:
        if len(errs) == 1:
            raise InvalidParameter(errs[0].strip())
        raise InvalidParameter("* " + "\n* ".join(e.replace("\n", "\n\t") for e in errs))
