"""Where a container's cgroup goes: `--cgroup-parent`, Docker's semantics.

As dockerd's withCgroups: the container's own `CgroupParent`, else the
daemon's `cgroup-parent`, else `/docker`; with the cgroupfs driver the
container's cgroup is `<parent>/<id>` in every hierarchy (v1) or in the one
tree (v2), and with systemd it is `<slice>:docker:<id>`.

The parent is confined to the cgroup root: it is cleaned as an absolute
path, so `..` cannot climb out of the hierarchy (`../../../x` is `/x`,
which is also what runc's CleanPath makes of it).  dockerd would place a
relative parent under its own cgroup; dockyard takes it from the root as it
does its own default parent, which is where both agree when the daemon runs
in the root cgroup.  Control characters are refused: a cgroup name with a
newline would corrupt every /proc/<pid>/cgroup line that shows it.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping

from dockyard.errors import InvalidParameter
from dockyard.oci.gojson import go_quote

DEFAULT_PARENT = "/docker"


def validate_cgroup_parent(parent: str) -> None:
    if not parent.isprintable():
        raise InvalidParameter(f"invalid cgroup-parent {go_quote(parent)}: control characters "
                               "are not allowed")


def clean_parent(parent: str) -> str:
    """`x`, `/x/`, `../../x` -> `/x`; the root stays `/`."""
    return posixpath.normpath("/" + parent.lstrip("/"))


def container_cgroups_path(container_id: str, hc: Mapping, daemon_parent: str = "",
                           driver: str = "cgroupfs") -> str:
    """The spec's `cgroupsPath` for a container with this HostConfig."""
    parent = hc.get("CgroupParent") or daemon_parent
    if driver == "systemd":
        return f"{parent or 'system.slice'}:docker:{container_id}"
    return posixpath.join(clean_parent(parent or DEFAULT_PARENT), container_id)
