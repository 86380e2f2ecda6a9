"""HostConfig.SecurityOpt parsing (moby daemon_unix.go parseSecurityOpt).

Accepted entries:
- `no-new-privileges` bare, or `no-new-privileges=<bool>` / `:<bool>`
  (Go ParseBool spellings);
- `seccomp=unconfined`, `seccomp=builtin`, `seccomp=<profile JSON>`;
- `apparmor=<profile>` (`unconfined` always accepted);
- `label=<opt>`, `label:disable`, bare `disable`;
- `writable-cgroups[=<bool>]`;
- `systempaths=unconfined` (the CLI normally turns it into empty
  MaskedPaths/ReadonlyPaths itself; clients that send it raw get the same).

A `:` separator is Docker's deprecated form and still works.  Errors:
`invalid --security-opt 1: "x"` (no separator) and `invalid --security-opt
2: "x"` (unknown key or bad bool).

Deliberate difference from dockerd: an AppArmor profile or SELinux label on
a host without that LSM is refused (dockerd silently ignores it, leaving the
user believing the container is confined).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from dockyard.errors import InvalidParameter
from dockyard.oci.host import HostFacts

SECCOMP_UNCONFINED = "unconfined"
SECCOMP_BUILTIN = "builtin"
APPARMOR_UNCONFINED = "unconfined"
APPARMOR_DEFAULT = "docker-default"

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}
_LABEL_KEYS = {"user", "role", "type", "level", "filetype"}


def parse_go_bool(text: str) -> bool | None:
    """Go's strconv.ParseBool; None when the text is not a boolean."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


@dataclass
class SecurityOptions:
    no_new_privileges: bool = False
    seccomp_profile: str = ""            # "", "unconfined", "builtin" or JSON text
    apparmor_profile: str = ""           # "" means the default for the container
    label_opts: list[str] = field(default_factory=list)
    writable_cgroups: bool | None = None
    systempaths_unconfined: bool = False

    @property
    def label_disabled(self) -> bool:
        return "disable" in self.label_opts


def parse_security_opt(opts: list[str] | None, host: HostFacts,
                       default_no_new_privileges: bool = False) -> SecurityOptions:
    """Parse and check SecurityOpt against the host; raise InvalidParameter."""
    so = SecurityOptions(no_new_privileges=default_no_new_privileges)
    for opt in opts or []:
        if opt == "no-new-privileges":
            so.no_new_privileges = True
            continue
        if opt == "writable-cgroups":
            so.writable_cgroups = True
            continue
        if opt == "disable":
            so.label_opts.append("disable")
            continue
        if "=" in opt:
            key, _, value = opt.partition("=")
        elif ":" in opt:
            key, _, value = opt.partition(":")
        else:
            raise InvalidParameter(f"invalid --security-opt 1: {json.dumps(opt)}")
        if key == "label":
            so.label_opts.append(value)
        elif key == "apparmor":
            so.apparmor_profile = value
        elif key == "seccomp":
            so.seccomp_profile = value
        elif key in ("no-new-privileges", "writable-cgroups"):
            b = parse_go_bool(value)
            if b is None:
                raise InvalidParameter(f"invalid --security-opt 2: {json.dumps(opt)}")
            if key == "no-new-privileges":
                so.no_new_privileges = b
            else:
                so.writable_cgroups = b
        elif key == "systempaths" and value == "unconfined":
            so.systempaths_unconfined = True
        else:
            raise InvalidParameter(f"invalid --security-opt 2: {json.dumps(opt)}")
    _check_labels(so.label_opts, host)
    _check_apparmor(so.apparmor_profile, host)
    _check_seccomp(so.seccomp_profile, host)
    return so


def _check_labels(labels: list[str], host: HostFacts) -> None:
    for lbl in labels:
        if lbl == "disable":
            continue
        key, sep, value = lbl.partition(":")
        if not sep or key not in _LABEL_KEYS or not value:
            raise InvalidParameter(
                f'bad label option "{lbl}", valid options \'disable\' or \n'
                "'user, role, level, type, filetype' followed by ':' and a value"
            )
        if not host.selinux:
            raise InvalidParameter(
                f'SELinux is not enabled on this host, cannot use label option "{lbl}"'
            )


def _check_apparmor(profile: str, host: HostFacts) -> None:
    if profile and profile != APPARMOR_UNCONFINED and not host.apparmor:
        raise InvalidParameter(
            f'AppArmor is not enabled on this host, cannot use profile "{profile}"'
        )


def _check_seccomp(profile: str, host: HostFacts) -> None:
    if profile in ("", SECCOMP_UNCONFINED, SECCOMP_BUILTIN):
        return
    if not host.seccomp:
        raise InvalidParameter(
            "seccomp is not enabled in your kernel, cannot run a custom seccomp profile"
        )
    try:
        parsed = json.loads(profile)
    except ValueError as e:
        raise InvalidParameter(f"Decoding seccomp profile failed: {e}") from None
    if not isinstance(parsed, dict):
        raise InvalidParameter("Decoding seccomp profile failed: not a JSON object")


def selinux_label_opts_for(host_config: dict) -> list[str]:
    """The `label=disable` dockerd appends to SecurityOpt at create.

    Privileged containers and those sharing the host's IPC or PID namespace
    get it unless the user gave a label option themselves.  (Copying the
    label of a `container:` IPC/PID peer is left to the engine.)
    """
    opts = host_config.get("SecurityOpt") or []
    if any(o.split("=")[0] == "label" for o in opts):
        return []
    if (host_config.get("Privileged") or host_config.get("IpcMode") == "host"
            or host_config.get("PidMode") == "host"):
        return ["label=disable"]
    return []
