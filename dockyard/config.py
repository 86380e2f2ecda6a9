"""Daemon configuration: dockerd-compatible flags and daemon.json keys."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.errors import InvalidParameter
from dockyard.images.distribution.hosts import validate_insecure, validate_mirror
from dockyard.images.distribution.proxies import KEYS as PROXY_KEYS
from dockyard.images.distribution.proxies import Proxies

# daemon.json keys we honour; others are reported, since dockerd refuses
# unknown keys too.
KNOWN_KEYS = {
    "hosts", "data-root", "exec-root", "pidfile", "default-runtime", "runtimes", "log-level",
    "debug", "default-ulimits", "userns-remap", "log-driver", "log-opts", "min-api-version",
    "experimental", "features", "default-shm-size", "default-cgroupns-mode", "default-ipc-mode",
    "dns", "dns-search", "dns-opts", "init", "init-path", "emulation", "seccomp-profile",
    "no-new-privileges", "group", "live-restore", "storage-driver", "cgroup-parent",
    "shutdown-timeout", "registry-mirrors", "insecure-registries", "max-concurrent-downloads",
    "max-concurrent-uploads", "proxies", "bip", "default-address-pools", "host-gateway-ip", "ip-forward",
    "tls", "tlsverify", "tlscacert", "tlscert", "tlskey",
}
# keys whose value must be a JSON boolean / string / list of strings
_BOOL_KEYS = {"tls", "tlsverify"}
_STRING_KEYS = {"tlscacert", "tlscert", "tlskey", "seccomp-profile"}
_LIST_KEYS = {"hosts"}


@dataclass
class DaemonConfig:
    hosts: list[str] = field(default_factory=lambda: ["unix:///run/dockyard.sock"])
    data_root: Path = Path("/var/lib/dockyard")
    exec_root: Path = Path("/run/dockyard")
    pidfile: Path | None = None
    config_file: Path | None = None
    default_runtime: str | None = None
    runtimes: dict[str, dict[str, Any]] = field(default_factory=dict)
    log_level: str = "info"
    debug: bool = False
    default_ulimits: dict[str, dict[str, int]] = field(default_factory=dict)
    userns_remap: str | None = None
    log_driver: str = "json-file"
    log_opts: dict[str, str] = field(default_factory=dict)
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_opts: list[str] = field(default_factory=list)
    init: bool = False
    init_path: str | None = None
    emulation: bool = False          # register qemu-user-static with binfmt_misc
    group: str = "docker"
    cgroup_parent: str = "/dockyard"
    shutdown_timeout: int = 15
    seccomp_profile: str | None = None
    no_new_privileges: bool = False
    bip: str | None = None                 # the default bridge's gateway/subnet, e.g. 10.9.0.1/24
    default_address_pools: list[dict[str, Any]] = field(default_factory=list)
    host_gateway_ip: str | None = None     # what host-gateway stands for
    ip_forward: bool = True                # turn net.ipv4.ip_forward on for bridges
    # TLS for tcp:// hosts, as dockerd: None = not given (see listeners.py)
    tls: bool | None = None
    tlsverify: bool | None = None
    tlscacert: str | None = None           # default: $DOCKER_CERT_PATH/ca.pem
    tlscert: str | None = None             # default: $DOCKER_CERT_PATH/cert.pem
    tlskey: str | None = None              # default: $DOCKER_CERT_PATH/key.pem
    tls_handshake_timeout: float = 10.0
    # registries (images/distribution): Docker Hub mirrors, registries reached
    # over plain http or unverified TLS, transfers at once across all pulls/pushes
    registry_mirrors: list[str] = field(default_factory=list)
    insecure_registries: list[str] = field(default_factory=list)
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5
    # http-proxy, https-proxy, no-proxy for registry traffic (daemon.json's
    # "proxies"); the environment's HTTP_PROXY etc. fill what is not set
    proxies: dict[str, str] = field(default_factory=dict)

    def check_registry_options(self) -> None:
        """The registry keys' types, as dockerd's decoder checks them."""
        for key in ("registry_mirrors", "insecure_registries"):
            v = getattr(self, key)
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise InvalidParameter(f"{key.replace('_', '-')} must be a list of strings")
        if not isinstance(self.proxies, dict) or not all(
                isinstance(v, str) for v in self.proxies.values()):
            raise InvalidParameter("proxies must be an object of strings")
        unknown = sorted(set(self.proxies) - set(PROXY_KEYS))
        if unknown:
            raise InvalidParameter(f"unknown proxies option: {', '.join(unknown)}")
        resolved = Proxies.from_config(self.proxies, os.environ)
        self.proxies = {"http-proxy": resolved.http, "https-proxy": resolved.https,
                        "no-proxy": resolved.no_proxy}
        for m in self.registry_mirrors:
            validate_mirror(m)
        for i in self.insecure_registries:
            validate_insecure(i)
        for key in ("max_concurrent_downloads", "max_concurrent_uploads"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise InvalidParameter(
                    f"invalid {key.replace('_', '-')} value: {v!r}: must be a positive integer")

    def apply_file(self, path: Path, explicit: set[str]) -> None:
        """Merge daemon.json; flags given on the command line win (and a
        conflict between the two is an error, as dockerd makes it)."""
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise InvalidParameter(f"unable to configure the Docker daemon with file {path}: "
                                   "no such file") from None
        except ValueError as e:
            raise InvalidParameter(f"unable to configure the Docker daemon with file {path}: "
                                   f"{e}") from None
        if not isinstance(raw, dict):
            raise InvalidParameter(f"{path}: the configuration must be a JSON object")
        unknown = sorted(set(raw) - KNOWN_KEYS)
        if unknown:
            raise InvalidParameter(f"the following directives don't match any configuration "
                                   f"option: {', '.join(unknown)}")
        for key, value in raw.items():
            attr = key.replace("-", "_")
            if attr in explicit:
                raise InvalidParameter(
                    f"the following directives are specified both as a flag and in the "
                    f"configuration file: {key}: (from flag: {getattr(self, attr)}, "
                    f"from file: {value})")
            _check_type(key, value)
            if attr in ("data_root", "exec_root", "pidfile"):
                value = Path(value)
            if hasattr(self, attr):
                setattr(self, attr, value)


def _check_type(key: str, value: object) -> None:
    """dockerd decodes daemon.json into typed fields: a wrong type is an error."""
    ok = True
    if key in _BOOL_KEYS:
        ok = isinstance(value, bool)
        want = "bool"
    elif key in _STRING_KEYS:
        ok = isinstance(value, str)
        want = "string"
    elif key in _LIST_KEYS:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        want = "[]string"
    if not ok:
        raise InvalidParameter(f"invalid value for {key} in the configuration file: "
                               f"{json.dumps(value)} is not a {want}")
