"""`HostEnv`: the host facts and daemon settings every container service reads.

Built once by the engine at start, after the probes; immutable in use.  It
holds answers (facts, options, runtimes, the default seccomp profile), not
services, so handing it to a service gives that service no way to reach
the rest of the engine.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.config import DaemonConfig
from dockyard.engine.host.emulation import Emulation
from dockyard.engine.host.seccomp import SeccompDefault
from dockyard.engine.host.userns import UsernsRemap
from dockyard.oci.cgroupparent import container_cgroups_path
from dockyard.oci.host import EngineOptions, HostFacts
from dockyard.runtime.runtimes import OCIRuntime, RuntimeSet, RuntimeVersion

log = logging.getLogger("dockyard.host")

INIT_BINARIES = ("catatonit", "tini-static", "tini", "docker-init")


@dataclass
class HostEnv:
    config: DaemonConfig
    facts: HostFacts
    runtimes: RuntimeSet
    emulation: Emulation
    userns: UsernsRemap | None = None
    runtime_versions: dict[str, RuntimeVersion] = field(default_factory=dict)
    seccomp: SeccompDefault = field(
        default_factory=lambda: SeccompDefault("unconfined", None, None, "none given"))
    options: EngineOptions = field(init=False)

    def __post_init__(self) -> None:
        self.options = engine_options(self.config, self.facts, self.runtimes)

    @property
    def data_root(self) -> Path:
        return Path(self.config.data_root)

    @property
    def exec_root(self) -> Path:
        return Path(self.config.exec_root)

    def runtime(self, name: str | None) -> OCIRuntime:
        return self.runtimes.get(name)

    def cgroups_path(self, container_id: str, host_config: Mapping[str, Any]) -> str:
        """The container's cgroup: under its own `CgroupParent`, else the
        daemon's; absolute, so that a runtime does not nest it under its own."""
        return container_cgroups_path(container_id, host_config, self.config.cgroup_parent)

    def seccomp_profile(self) -> dict[str, Any] | None:
        """The default profile (daemon `seccomp-profile`), chosen at start."""
        return self.seccomp.profile

    def builtin_seccomp_profile(self) -> dict[str, Any] | None:
        """Docker's default profile, what `--security-opt seccomp=builtin` asks for."""
        return self.seccomp.builtin

    def init_path(self) -> str | None:
        """The init `--init` runs: daemon `init-path`, else the first found."""
        if self.config.init_path:
            return self.config.init_path
        for name in INIT_BINARIES:
            found = shutil.which(name)
            if found:
                return found
            podman_copy = f"/usr/libexec/podman/{name}"
            if os.path.exists(podman_copy):
                return podman_copy
        return None


def engine_options(config: DaemonConfig, facts: HostFacts, runtimes: RuntimeSet
                   ) -> EngineOptions:
    """The daemon settings the pure `oci/` translation takes (dockerd's
    daemon.json defaults), with default-ulimits held to what the host grants."""
    ulimits = {}
    for name, v in (config.default_ulimits or {}).items():
        soft, hard = int(v.get("Soft", v.get("soft", 0))), int(v.get("Hard", v.get("hard", 0)))
        ceiling = facts.rlimit_ceilings.get(name, -1)
        if ceiling >= 0 and hard > ceiling:
            log.warning("default-ulimits %s hard %d is above what this host grants (%d): "
                        "clamped", name, hard, ceiling)
            hard = ceiling
            soft = min(soft, hard)
        ulimits[name] = (soft, hard)
    return EngineOptions(
        default_runtime=runtimes.default or "runc",
        runtimes=frozenset(runtimes.runtimes),
        cgroup_parent=config.cgroup_parent, init=config.init,
        no_new_privileges=config.no_new_privileges, default_ulimits=ulimits,
        userns_remap=bool(config.userns_remap), log_driver=config.log_driver,
        log_opts=dict(config.log_opts))
