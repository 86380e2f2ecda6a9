"""`ContainerViews`: Docker's container shapes: inspect (ContainerJSON), list
(Summary) with every `docker ps` filter, and the pure helpers they use."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from dockyard.backend import InspectOptions, ListOptions
from dockyard.engine.containers.initlayer import init_lower
from dockyard.engine.containers.record import Container
from dockyard.engine.containers.store import ContainerStore
from dockyard.engine.networks import legacy_links
from dockyard.engine.networks import views as net_views
from dockyard.engine.networks.store import NetworkStore
from dockyard.engine.volumes.points import api_mounts
from dockyard.errors import DockyardError, InvalidParameter
from dockyard.images.service import ImageService
from dockyard.util.fstree import tree_size
from dockyard.util.timefmt import rfc3339

LIST_FILTERS = {"ancestor", "before", "exited", "id", "isolation", "label", "name", "status",
                "health", "since", "volume", "network", "is-task", "publish", "expose"}
STATUSES = {"created", "restarting", "running", "removing", "paused", "exited", "dead"}


def dir_size(path: Path) -> int:
    """moby's directory.Size (see fstree.tree_size: any depth, by fd)."""
    return tree_size(path)


def mounts_shape(c: Container) -> list[dict[str, Any]]:
    """Volumes, binds and `--mount` tmpfs (HostConfig.Tmpfs is not a mount
    point: dockerd does not list it either)."""
    return api_mounts(c.mounts)


def labels_match(labels: dict[str, str], filters: dict[str, list[str]]) -> bool:
    for want in filters.get("label", []):
        k, eq, v = want.partition("=")
        if k not in labels or (eq and labels[k] != v):
            return False
    for want in filters.get("label!", []):
        k, eq, v = want.partition("=")
        if k in labels and (not eq or labels[k] == v):
            return False
    return True


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)$")


def parse_until(values: list[str] | None) -> int | None:
    """`until` as a timestamp (Unix seconds, RFC3339) or a Go duration ago."""
    if not values:
        return None
    v = values[0]
    m = _DURATION.match(v)
    if m:
        mult = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}[m.group(2)]
        return int((time.time() - float(m.group(1)) * mult) * 1e9)
    try:
        return int(float(v) * 1e9)
    except ValueError:
        pass
    from datetime import datetime

    try:
        return int(datetime.fromisoformat(v).timestamp() * 1e9)
    except ValueError:
        raise InvalidParameter(f"invalid filter 'until={v}'") from None


def name_matches(pattern: str, name: str) -> bool:
    """dockerd's filters.Match on "/name" and "name": an exact match, else
    the pattern as a regular expression; one that does not compile matches
    nothing (dockerd skips it) rather than failing the listing."""
    if pattern in (name, "/" + name):
        return True
    try:
        rx = re.compile(pattern)
    except (re.error, RecursionError, OverflowError):
        return False
    return bool(rx.search("/" + name) or rx.search(name))


def _port_match(want: str, have: set[str]) -> bool:
    if "/" not in want:
        want += "/tcp"
    return want in have


class ContainerViews:
    def __init__(self, store: ContainerStore, images: ImageService,
                 networks: NetworkStore) -> None:
        self.store = store
        self.images = images
        self.networks = networks
        # each container's paths as inspect shows them: fixed once its init
        # layer exists (the strings cost a dozen path joins and a stat)
        self._paths: dict[str, dict[str, str]] = {}

    def inspect(self, ref: str, opts: InspectOptions) -> dict[str, Any]:
        return self.inspect_shape(self.store.get(ref), opts.size, opts.api_version)

    def list_containers(self, opts: ListOptions) -> list[dict[str, Any]]:
        return self._list(opts.all, opts.limit, opts.size, opts.filters, opts.api_version)

    def image_size(self, c: Container) -> int:
        return sum(dir_size(Path(p)) for p in self.images.lower_dirs(c.image_id))

    def network_settings(self, c: Container, api: tuple[int, int]) -> dict[str, Any]:
        netns = self._paths_of(c)["SandboxKey"] if c.state.running else ""
        return net_views.network_settings(c, self.networks, netns, api)

    def inspect_shape(self, c: Container, size: bool, api: tuple[int, int]
                      ) -> dict[str, Any]:
        paths = self._paths_of(c)
        log_type = (c.host_config.get("LogConfig") or {}).get("Type", "json-file")
        out: dict[str, Any] = {
            "Id": c.id,
            "Created": rfc3339(c.created),
            "Path": c.path,
            "Args": c.args,
            "State": c.state.to_json(),
            "Image": c.image_id,
            "ResolvConfPath": paths["ResolvConfPath"],
            "HostnamePath": paths["HostnamePath"],
            "HostsPath": paths["HostsPath"],
            "LogPath": paths["LogPath"] if log_type == "json-file" else "",
            "Name": f"/{c.name}",
            "RestartCount": c.state.restart_count,
            "Driver": "overlay2",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": list(c.exec_ids) or None,
            "HostConfig": c.host_config,
            "GraphDriver": {"Name": "overlay2", "Data": {
                k: paths[k] for k in ("LowerDir", "MergedDir", "UpperDir", "WorkDir")}},
            "Mounts": mounts_shape(c),
            "Config": c.config,
            "NetworkSettings": self.network_settings(c, api),
        }
        if size:
            rw = dir_size(self.store.upper_dir(c))
            out["SizeRw"] = rw
            out["SizeRootFs"] = rw + self.image_size(c)
        return out

    def _paths_of(self, c: Container) -> dict[str, str]:
        paths = self._paths.get(c.id)
        if paths is not None and paths["init"]:
            return paths
        d = self.store.dir(c)
        init = init_lower(d)                  # the first start makes it
        if paths is None:
            if len(self._paths) > 2 * len(self.store) + 64:
                self._paths = {k: v for k, v in self._paths.items()
                               if self.store.find(k) is not None}
            paths = self._paths[c.id] = {
                "ResolvConfPath": str(d / "resolv.conf"), "HostnamePath": str(d / "hostname"),
                "HostsPath": str(d / "hosts"), "LogPath": str(self.store.log_path(c)),
                "image": ":".join(self.images.lower_dirs(c.image_id)),
                "MergedDir": str(d / "merged"), "UpperDir": str(d / "upper"),
                "WorkDir": str(d / "work"), "SandboxKey": str(self.store.netns_path(c))}
        paths["init"] = ":".join(init)
        paths["LowerDir"] = ":".join(x for x in (paths["init"], paths["image"]) if x)
        return paths

    def summary_shape(self, c: Container, size: bool, api: tuple[int, int],
                      link_names: dict[str, list[str]] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Id": c.id,
            "Names": [f"/{c.name}", *(link_names or {}).get(c.id, ())],
            "Image": c.image_ref,
            "ImageID": c.image_id,
            "Command": c.command_string(),
            "Created": c.created // 1_000_000_000,
            "Ports": net_views.ps_ports(c) if c.state.running else [],
            "Labels": c.config.get("Labels") or {},
            "State": c.state.status,
            "Status": c.status_text(),
            "HostConfig": {"NetworkMode": c.host_config.get("NetworkMode") or "bridge"},
            "NetworkSettings": {"Networks": net_views.networks_shape(c, self.networks, api)},
            "Mounts": mounts_shape(c),
        }
        if c.host_config.get("Annotations"):
            out["HostConfig"]["Annotations"] = c.host_config["Annotations"]
        if size:
            rw = dir_size(self.store.upper_dir(c))
            out["SizeRw"] = rw
            out["SizeRootFs"] = rw + self.image_size(c)
        return out

    def _list(self, all_: bool, limit: int | None, size: bool,
              filters: dict[str, list[str]], api: tuple[int, int]) -> list[dict[str, Any]]:
        for k in filters:
            if k not in LIST_FILTERS:
                raise InvalidParameter(f"invalid filter '{k}'")
        for s in filters.get("status", []):
            if s not in STATUSES:
                raise InvalidParameter(f"invalid filter 'status={s}'")
        for h in filters.get("health", []):
            if h not in ("starting", "healthy", "unhealthy", "none"):
                raise InvalidParameter(f"Unrecognised filter value for health: {h}")
        exited = []
        for e in filters.get("exited", []):
            try:
                exited.append(int(e))
            except ValueError:
                raise InvalidParameter(f"invalid filter 'exited={e}'") from None
        if filters.get("status") or exited:
            all_ = True
        ctrs = sorted(self.store, key=lambda c: c.created, reverse=True)
        before = self._bound(filters.get("before"))
        since = self._bound(filters.get("since"))
        out = []
        links = legacy_links.link_names(self.store)
        # `docker ps -n N` / `-l`: the N newest in any state, as dockerd
        # (a limit lists stopped containers too, without `all`)
        any_state = all_ or (limit is not None and limit > 0)
        ancestors = self._ancestor_images(filters.get("ancestor", []))
        for c in ctrs:
            if not any_state and not c.state.running and c.state.status not in ("restarting",):
                continue
            if before is not None and c.created >= before:
                continue
            if since is not None and c.created <= since:
                continue
            if ancestors is not None and c.image_id not in ancestors:
                continue
            if not self._match(c, filters, exited):
                continue
            out.append(self.summary_shape(c, size, api, links))
            if limit is not None and limit > 0 and len(out) >= limit:
                break
        return out

    def _bound(self, values: list[str] | None) -> int | None:
        if not values:
            return None
        return self.store.get(values[0]).created

    def _match(self, c: Container, f: dict[str, list[str]], exited: list[int]) -> bool:
        if f.get("id") and not any(c.id.startswith(v) for v in f["id"]):
            return False
        if f.get("name") and not any(name_matches(v, c.name) for v in f["name"]):
            return False
        if not labels_match(c.config.get("Labels") or {}, f):
            return False
        if f.get("status") and c.state.status not in f["status"]:
            return False
        if exited and (c.state.status != "exited" or c.state.exit_code not in exited):
            return False
        if f.get("health"):
            h = c.state.health.status if c.state.health else "none"
            if h not in f["health"]:
                return False
        if f.get("is-task") and any(v in ("1", "true") for v in f["is-task"]):
            return False
        if f.get("network") and not net_views.on_network(c, self.networks, f["network"]):
            return False
        if f.get("volume"):
            # a volume's name or a bind's source, or a destination (moby)
            names = {mm.get("Name") or mm["Source"] for mm in mounts_shape(c)}
            dests = {mm["Destination"] for mm in mounts_shape(c)}
            if not any(v in dests or v in names for v in f["volume"]):
                return False
        if f.get("expose"):
            exposed = set((c.config.get("ExposedPorts") or {}).keys())
            if not any(_port_match(v, exposed) for v in f["expose"]):
                return False
        if f.get("publish"):
            published = {f"{m.container_port}/{m.protocol}" for m in net_views.published(c)}
            published |= {str(m.host_port) + "/" + m.protocol for m in net_views.published(c)}
            if not any(_port_match(v, published) for v in f["publish"]):
                return False
        return True

    def _ancestor_images(self, refs: list[str]) -> set[str] | None:
        """The `ancestor` filter as dockerd reads it: every image named
        (by name, name:tag, id or digest) and every image committed or built
        from it, at any depth.  A name that resolves to no image adds
        nothing (dockerd logs it and matches no container by it).  None:
        no ancestor filter."""
        if not refs:
            return None
        found: set[str] = set()
        for ref in refs:
            try:
                top = self.images.get(ref).id
            except DockyardError:
                continue
            todo = [top]
            while todo:
                image_id = todo.pop()
                if image_id in found:
                    continue
                found.add(image_id)
                todo.extend(child.id for child in self.images.store.children(image_id))
        return found
