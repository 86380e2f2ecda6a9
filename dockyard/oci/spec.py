"""Docker container -> OCI runtime spec (runtime-spec 1.0.2 shape), no I/O.

`build_runtime_spec(SpecInput) -> dict` follows dockerd's createSpec
(daemon/oci_linux.go): common options, cgroups path, resources, sysctls,
user, devices, rlimits, namespaces, capabilities, seccomp, mounts, AppArmor,
SELinux, OOM score, annotations, then no-new-privileges, console size and
masked/readonly paths.

What the engine must gather first (everything that needs the host):
- `config`: the request Config merged with the image (normalize.merge_image_config),
  with Hostname already defaulted (first 12 chars of the ID);
- `host_config`: normalize.normalize_host_config of the validated request;
- `rootfs`: the mounted overlay; `cgroups_path` (absolute, or "" for Docker's
  default `/docker/<id>` / `system.slice:docker:<id>`);
- `hostname_path`/`hosts_path`/`resolv_conf_path`: files it wrote (etcfiles.py);
- `shm_path`: host dir bound at /dev/shm for shareable / container: / host IPC;
- `mounts`: resolved Binds/Mounts/volumes as mounts.MountSpec (typed tmpfs
  mounts included; HostConfig.Tmpfs is handled here);
- `passwd`/`group`: text of the rootfs' /etc/passwd and /etc/group (None if absent);
- `devices`: HostConfig.Devices stat'ed into DeviceNode (directories expanded);
  `host_devices`: every host device, for privileged containers;
- `blkio_devices`: path -> (major, minor) for the Blkio* device lists;
- `namespace_paths`: {"network": "/run/netns/x" or "/proc/<pid>/ns/net",
  "ipc": ..., "pid": ..., "user": ...} for joined namespaces;
- `seccomp_profile`: the daemon's default profile JSON dict (Docker's
  format), `builtin_seccomp_profile`: Docker's own, for `seccomp=builtin`;
- `init_path`: host path of docker-init (catatonit/tini) when Init applies;
- `uid_mappings`/`gid_mappings` with userns-remap; SELinux labels if enabled.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from dockyard.errors import InvalidParameter
from dockyard.oci import modes
from dockyard.oci.caps import container_caps
from dockyard.oci.cgroupparent import container_cgroups_path
from dockyard.oci.host import EngineOptions, HostFacts
from dockyard.oci.mounts import INIT_PATH_IN_CONTAINER, MountPlan, MountSpec, build_mounts
from dockyard.oci.normalize import DEFAULT_READONLY_PATHS, command_of, default_masked_paths
from dockyard.oci.resources import linux_resources
from dockyard.oci.seccomp import build_seccomp
from dockyard.oci.security import (
    APPARMOR_DEFAULT,
    APPARMOR_UNCONFINED,
    SECCOMP_BUILTIN,
    SECCOMP_UNCONFINED,
    SecurityOptions,
    parse_security_opt,
)
from dockyard.oci.users import resolve_user
from dockyard.oci.validate import parse_device_cgroup_rule

OCI_VERSION = "1.0.2-dev"
DEFAULT_PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RLIM_INFINITY = 2**64 - 1

# Docker's default device cgroup: deny all, allow the basics, deny fuse.
DEFAULT_DEVICE_RULES: tuple[dict, ...] = (
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
)


@dataclass(frozen=True)
class DeviceNode:
    """A device to create in the container (from a stat of the host node)."""

    path: str                 # path inside the container
    type: str                 # "c", "b" or "p"
    major: int
    minor: int
    file_mode: int = 0o666
    uid: int = 0
    gid: int = 0
    permissions: str = "rwm"  # device-cgroup access for this node


@dataclass(frozen=True)
class IDMap:
    container_id: int
    host_id: int
    size: int


@dataclass
class SpecInput:
    container_id: str
    config: Mapping
    host_config: Mapping
    rootfs: str
    host: HostFacts = field(default_factory=HostFacts)
    opts: EngineOptions = field(default_factory=EngineOptions)
    cgroups_path: str = ""
    hostname_path: str = ""
    hosts_path: str = ""
    resolv_conf_path: str = ""
    shm_path: str = ""
    mounts: Sequence[MountSpec] = ()
    passwd: str | None = None
    group: str | None = None
    devices: Sequence[DeviceNode] = ()
    host_devices: Sequence[DeviceNode] = ()
    blkio_devices: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    namespace_paths: Mapping[str, str] = field(default_factory=dict)
    seccomp_profile: Mapping | None = None
    builtin_seccomp_profile: Mapping | None = None
    init_path: str = ""
    uid_mappings: Sequence[IDMap] = ()
    gid_mappings: Sequence[IDMap] = ()
    process_label: str = ""
    mount_label: str = ""
    linked_env: Sequence[str] = ()


def replace_or_append_env(defaults: Sequence[str], overrides: Sequence[str]) -> list[str]:
    """Docker's env merge: same key replaces in place, `KEY` alone removes."""
    env = list(defaults)
    index = {e.partition("=")[0]: i for i, e in enumerate(env)}
    removed: set[int] = set()
    for value in overrides:
        key, sep, _ = value.partition("=")
        if not sep:
            if value in index:
                removed.add(index[value])
            continue
        if key in index:
            env[index[key]] = value
            removed.discard(index[key])
        else:
            env.append(value)
    return [e for i, e in enumerate(env) if i not in removed]


def container_env(config: Mapping, linked_env: Sequence[str] = ()) -> list[str]:
    base = [f"PATH={DEFAULT_PATH_ENV}", f"HOSTNAME={config.get('Hostname') or ''}"]
    if config.get("Tty"):
        base.append("TERM=xterm")
    base.extend(linked_env)
    return replace_or_append_env(base, config.get("Env") or [])


def uses_init(hc: Mapping, opts: EngineOptions) -> bool:
    pid = hc.get("PidMode") or ""
    if pid == "host" or modes.is_container(pid):
        return False
    init = hc.get("Init")
    return bool(init) if init is not None else opts.init


def default_cgroups_path(container_id: str, hc: Mapping, opts: EngineOptions) -> str:
    return container_cgroups_path(container_id, hc, opts.cgroup_parent, opts.cgroup_driver)


def _rlimits(hc: Mapping, opts: EngineOptions) -> list[dict]:
    ulimits = list(hc.get("Ulimits") or [])
    names = {u.get("Name") for u in ulimits}
    for name, (soft, hard) in opts.default_ulimits.items():
        if name not in names:
            ulimits.append({"Name": name, "Soft": soft, "Hard": hard})
    return [{"type": "RLIMIT_" + u["Name"].upper(),
             "hard": RLIM_INFINITY if u.get("Hard", 0) < 0 else u.get("Hard", 0),
             "soft": RLIM_INFINITY if u.get("Soft", 0) < 0 else u.get("Soft", 0)}
            for u in ulimits]


def _ns_path(inp: SpecInput, kind: str, mode: str) -> str:
    path = inp.namespace_paths.get(kind, "")
    if not path:
        raise InvalidParameter(f"cannot join {kind} namespace of {mode}: no namespace path")
    return path


def _namespaces(inp: SpecInput, hc: Mapping) -> list[dict]:
    userns = inp.opts.userns_remap and hc.get("UsernsMode") != "host" and bool(inp.uid_mappings)
    ns: list[dict] = [{"type": "mount"}]
    join_user = False
    net = hc.get("NetworkMode") or ""
    if inp.config.get("NetworkDisabled"):
        ns.append({"type": "network"})
    elif modes.is_container(net):
        ns.append({"type": "network", "path": _ns_path(inp, "network", net)})
        join_user = True
    elif net != "host":
        entry = {"type": "network"}
        if inp.namespace_paths.get("network"):
            entry["path"] = inp.namespace_paths["network"]
        ns.append(entry)
    if inp.host.time_namespace:
        ns.append({"type": "time"})
    if hc.get("UTSMode") != "host":
        ns.append({"type": "uts"})
    pid = hc.get("PidMode") or ""
    if modes.is_container(pid):
        ns.append({"type": "pid", "path": _ns_path(inp, "pid", pid)})
        join_user = True
    elif pid != "host":
        ns.append({"type": "pid"})
    ipc = hc.get("IpcMode") or ""
    if modes.is_container(ipc):
        ns.append({"type": "ipc", "path": _ns_path(inp, "ipc", ipc)})
        join_user = True
    elif ipc != "host":
        ns.append({"type": "ipc"})
    if hc.get("CgroupnsMode") == "private" and inp.host.cgroup_namespaces:
        ns.append({"type": "cgroup"})
    if userns:
        entry = {"type": "user"}
        if join_user and inp.namespace_paths.get("user"):
            entry["path"] = inp.namespace_paths["user"]
        ns.append(entry)
    return ns


def _devices(inp: SpecInput, hc: Mapping) -> tuple[list[dict], list[dict]]:
    """(linux.devices, linux.resources.devices)."""
    def node(d: DeviceNode) -> dict:
        return {"path": d.path, "type": d.type, "major": d.major, "minor": d.minor,
                "fileMode": d.file_mode, "uid": d.uid, "gid": d.gid}

    if hc.get("Privileged"):
        devs = [node(d) for d in inp.host_devices]
        have = {d.path for d in inp.host_devices}
        # a mapping to another path adds a second node; same path is already there
        devs += [node(d) for d in inp.devices if d.path not in have]
        return devs, [{"allow": True, "access": "rwm"}]
    rules = [dict(r) for r in DEFAULT_DEVICE_RULES]
    devs = []
    for d in inp.devices:
        devs.append(node(d))
        rules.append({"allow": True, "type": d.type, "major": d.major, "minor": d.minor,
                      "access": d.permissions})
    rules += [parse_device_cgroup_rule(r) for r in hc.get("DeviceCgroupRules") or []]
    return devs, rules


def _seccomp(inp: SpecInput, so: SecurityOptions, caps: list[str]) -> dict | None:
    profile = so.seccomp_profile
    if profile == SECCOMP_UNCONFINED:
        return None
    if inp.host_config.get("Privileged") and not profile:
        return None
    if not inp.host.seccomp:
        return None
    if profile == SECCOMP_BUILTIN:
        # Docker's own profile, whatever the daemon's default is
        data = inp.builtin_seccomp_profile or inp.seccomp_profile
    elif profile:
        data = json.loads(profile)
    else:
        data = inp.seccomp_profile
    if not data:
        return None
    return build_seccomp(dict(data), caps, inp.host.arch, inp.host.kernel_version)


def _container_mounts(inp: SpecInput, hc: Mapping) -> list[MountSpec]:
    mounts = list(inp.mounts)
    dests = {m.destination for m in mounts}
    for dest, data in (hc.get("Tmpfs") or {}).items():
        mounts.append(MountSpec(destination=dest, source="tmpfs", type="tmpfs", data=data))
        dests.add(dest)
    if inp.shm_path and "/dev/shm" not in dests:
        mounts.append(MountSpec(destination="/dev/shm", source=inp.shm_path))
    ro = bool(hc.get("ReadonlyRootfs"))
    for path, dest in ((inp.resolv_conf_path, "/etc/resolv.conf"),
                       (inp.hostname_path, "/etc/hostname"),
                       (inp.hosts_path, "/etc/hosts")):
        if path and dest not in dests:
            mounts.append(MountSpec(destination=dest, source=path, read_only=ro))
    return mounts


def build_runtime_spec(inp: SpecInput) -> dict:
    """The OCI config.json content for one container."""
    cfg, hc, host, opts = inp.config, inp.host_config, inp.host, inp.opts
    privileged = bool(hc.get("Privileged"))
    so = parse_security_opt(hc.get("SecurityOpt"), host, opts.no_new_privileges)

    path, args = command_of(cfg)
    argv = [path, *args]
    init_source = ""
    if uses_init(hc, opts):
        argv = [INIT_PATH_IN_CONTAINER, "--", *argv]
        init_source = inp.init_path or "/usr/libexec/docker/docker-init"

    user = resolve_user(cfg.get("User") or "", inp.passwd, inp.group, hc.get("GroupAdd"))
    caps = container_caps(privileged, hc.get("CapAdd"), hc.get("CapDrop"), host.cap_bounding)
    process: dict = {
        "terminal": bool(cfg.get("Tty")),
        "user": {"uid": user.uid, "gid": user.gid,
                 "additionalGids": list(user.additional_gids)},
        "args": argv,
        "env": container_env(cfg, inp.linked_env),
        "cwd": cfg.get("WorkingDir") or "/",
        "capabilities": {"bounding": list(caps), "effective": list(caps),
                         "permitted": list(caps)},
        "oomScoreAdj": hc.get("OomScoreAdj") or 0,
    }
    rlimits = _rlimits(hc, opts)
    if rlimits:
        process["rlimits"] = rlimits
    if so.no_new_privileges:
        process["noNewPrivileges"] = True
    console = hc.get("ConsoleSize") or [0, 0]
    if cfg.get("Tty") and (console[0] > 0 or console[1] > 0):
        process["consoleSize"] = {"height": console[0], "width": console[1]}
    if host.apparmor and (so.apparmor_profile or privileged or host.apparmor_default_loaded):
        process["apparmorProfile"] = so.apparmor_profile or (
            APPARMOR_UNCONFINED if privileged else APPARMOR_DEFAULT)
    if inp.process_label and not so.label_disabled:
        process["selinuxLabel"] = inp.process_label

    mounts, rootfs_propagation = build_mounts(MountPlan(
        container_mounts=_container_mounts(inp, hc),
        shm_size=hc.get("ShmSize") or opts.default_shm_size,
        ipc_none=hc.get("IpcMode") == "none",
        readonly_rootfs=bool(hc.get("ReadonlyRootfs")),
        privileged=privileged,
        writable_cgroups=(so.writable_cgroups if so.writable_cgroups is not None
                          else privileged) or (opts.userns_remap and bool(inp.uid_mappings)),
        rro_supported=host.rro_supported,
        init_source=init_source,
    ))

    sysctl: dict[str, str] = {}
    if cfg.get("Domainname"):
        sysctl["kernel.domainname"] = cfg["Domainname"]
    if modes.network_is_private(hc.get("NetworkMode") or ""):
        in_userns = opts.userns_remap and hc.get("UsernsMode") != "host"
        if not in_userns and not host.running_in_userns and host.has_ping_group_range:
            sysctl["net.ipv4.ping_group_range"] = "0 2147483647"
        if host.has_ip_unprivileged_port_start:
            sysctl["net.ipv4.ip_unprivileged_port_start"] = "0"
    sysctl.update(hc.get("Sysctls") or {})

    devices, device_rules = _devices(inp, hc)
    resources = linux_resources(hc, inp.blkio_devices)
    resources["devices"] = device_rules

    linux: dict = {
        "resources": resources,
        "cgroupsPath": inp.cgroups_path or default_cgroups_path(inp.container_id, hc, opts),
        "namespaces": _namespaces(inp, hc),
        "devices": devices,
    }
    if sysctl:
        linux["sysctl"] = sysctl
    if inp.opts.userns_remap and hc.get("UsernsMode") != "host" and inp.uid_mappings:
        linux["uidMappings"] = [{"containerID": m.container_id, "hostID": m.host_id,
                                 "size": m.size} for m in inp.uid_mappings]
        linux["gidMappings"] = [{"containerID": m.container_id, "hostID": m.host_id,
                                 "size": m.size} for m in inp.gid_mappings]
    seccomp = _seccomp(inp, so, caps)
    if seccomp is not None:
        linux["seccomp"] = seccomp
    if rootfs_propagation:
        linux["rootfsPropagation"] = rootfs_propagation
    masked, readonly = _system_paths(hc, host, so, privileged)
    if masked:
        linux["maskedPaths"] = masked
    if readonly:
        linux["readonlyPaths"] = readonly
    if inp.mount_label and not so.label_disabled:
        linux["mountLabel"] = inp.mount_label

    spec: dict = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": inp.rootfs, "readonly": bool(hc.get("ReadonlyRootfs"))},
        "mounts": mounts,
        "linux": linux,
    }
    if hc.get("UTSMode") != "host" and cfg.get("Hostname"):
        spec["hostname"] = cfg["Hostname"]
    if hc.get("Annotations"):
        spec["annotations"] = dict(hc["Annotations"])
    return spec


def _system_paths(hc: Mapping, host: HostFacts, so: SecurityOptions,
                  privileged: bool) -> tuple[list[str], list[str]]:
    """maskedPaths / readonlyPaths: cleared when privileged or
    systempaths=unconfined; explicit HostConfig values win (even privileged,
    as in dockerd, where they are applied after the privileged clearing)."""
    if so.systempaths_unconfined:
        return [], []
    masked: list[str] = [] if privileged else default_masked_paths(host)
    readonly: list[str] = [] if privileged else list(DEFAULT_READONLY_PATHS)
    if hc.get("MaskedPaths") is not None:
        masked = list(hc["MaskedPaths"])
    if hc.get("ReadonlyPaths") is not None:
        readonly = list(hc["ReadonlyPaths"])
    return masked, readonly
