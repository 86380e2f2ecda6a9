"""Docker API shapes of local images: inspect, list item, history.

Pure functions of an ImageRecord plus store facts; the API layer strips or
adds version-dependent fields (VirtualSize < 1.44).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dockyard.images.filters import created_ts
from dockyard.images.store import ImageRecord

ZERO_TIME = "0001-01-01T00:00:00Z"

# container.Config's fields in Docker's order, shown even when empty as
# dockerd did before API 1.52 (clients index these keys directly)
_CONFIG_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("Hostname", ""), ("Domainname", ""), ("User", ""), ("AttachStdin", False),
    ("AttachStdout", False), ("AttachStderr", False), ("Tty", False), ("OpenStdin", False),
    ("StdinOnce", False), ("Env", None), ("Cmd", None), ("Image", ""), ("Volumes", None),
    ("WorkingDir", ""), ("Entrypoint", None), ("OnBuild", None), ("Labels", None),
)


def full_config(cfg: dict[str, Any] | None) -> dict[str, Any]:
    cfg = dict(cfg or {})
    out = {k: cfg.pop(k, default) for k, default in _CONFIG_DEFAULTS}
    out.update(cfg)          # ExposedPorts, StopSignal, Healthcheck, Shell, ...
    return out


def graph_driver(layer_dirs: list[Path]) -> dict[str, Any]:
    """overlay2's view of an image: top layer as UpperDir, the rest as LowerDir.

    layer_dirs is ordered top layer first.
    """
    if not layer_dirs:
        return {"Name": "overlay2", "Data": {}}
    top = layer_dirs[0]
    data = {"MergedDir": str(top / "merged"), "UpperDir": str(top / "diff"),
            "WorkDir": str(top / "work")}
    if len(layer_dirs) > 1:
        data["LowerDir"] = ":".join(str(d / "diff") for d in layer_dirs[1:])
    return {"Name": "overlay2", "Data": data}


def inspect_shape(img: ImageRecord, layer_dirs: list[Path]) -> dict[str, Any]:
    cfg = img.config
    # moby's image inspect: the config's comment, else the last history entry's
    # (a commit records its message only in history)
    comment = cfg.get("comment") or ""
    history = cfg.get("history") or []
    if not comment and history:
        comment = history[-1].get("comment", "")
    out: dict[str, Any] = {
        "Id": img.id,
        "RepoTags": list(img.repo_tags),
        "RepoDigests": list(img.repo_digests),
        "Parent": img.parent,
        "Comment": comment,
        "Created": cfg.get("created") or ZERO_TIME,
        # the committing container and its config, a zero config when the
        # image has none.  dockerd stopped showing them at API 1.45, which
        # broke docker-compose v1 (it reads ContainerConfig.Volumes when it
        # recreates a container, at the newest API version); kept here at
        # every version on purpose (README, "What differs")
        "Container": cfg.get("container", ""),
        "ContainerConfig": full_config(cfg.get("container_config")),
        "DockerVersion": cfg.get("docker_version", ""),
        "Author": cfg.get("author", ""),
        "Config": full_config(cfg.get("config")),
        "Architecture": cfg.get("architecture", ""),
        "Os": cfg.get("os", ""),
        "Size": img.size,
        "GraphDriver": graph_driver(layer_dirs),
        "RootFS": {"Type": "layers", "Layers": list(img.diff_ids)},
        "Metadata": {"LastTagTime": img.last_tag_time or ZERO_TIME},
    }
    if cfg.get("variant"):
        out["Variant"] = cfg["variant"]
    if cfg.get("os.version"):
        out["OsVersion"] = cfg["os.version"]
    return out


def summary_shape(img: ImageRecord, containers: int = -1) -> dict[str, Any]:
    return {
        "Id": img.id,
        "ParentId": img.parent,
        "RepoTags": list(img.repo_tags),
        "RepoDigests": list(img.repo_digests),
        "Created": int(created_ts(img.created)),
        "Size": img.size,
        "SharedSize": -1,
        "Labels": img.labels,
        "Containers": containers,
    }


def history_shape(img: ImageRecord, layer_sizes: list[int],
                  ancestors: list[ImageRecord]) -> list[dict[str, Any]]:
    """Newest first; `<missing>` IDs except along the local parent chain.

    layer_sizes[i] is the size of the i-th (bottom-up) non-empty layer;
    ancestors is [img, parent, grandparent, ...].
    """
    items: list[dict[str, Any]] = []
    layer = 0
    for h in img.config.get("history") or []:
        size = 0
        if not h.get("empty_layer"):
            size = layer_sizes[layer] if layer < len(layer_sizes) else 0
            layer += 1
        items.insert(0, {"Id": "<missing>", "Created": int(created_ts(h.get("created", ""))),
                         "CreatedBy": h.get("created_by", ""), "Tags": None,
                         "Size": size, "Comment": h.get("comment", "")})
    if not items:
        # images without history (some imports) still show one line per layer
        items = [{"Id": "<missing>", "Created": int(created_ts(img.created)), "CreatedBy": "",
                  "Tags": None, "Size": s, "Comment": ""} for s in reversed(layer_sizes)]
    for item, anc in zip(items, ancestors):
        item["Id"] = anc.id
        item["Tags"] = list(anc.repo_tags) or None
    return items
